//! The `main` of `lb-proxy` and `lb-sni`: one command line ([`ServerArgs`]) and one run
//! ([`main`]): `--check`, process logs, the runtime, `--pid-file`, signals and drain.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::{Generation, Shell, ShellError};
use crate::config::{Binary, Config};

/// How long a drain (SIGTERM, SIGINT) lets in-flight work finish.
pub const GRACE: Duration = Duration::from_secs(30);

/// The options every server binary takes (flattened into each binary's clap parser).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// The config file (TOML; see docs/config.md).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the config (FILE, or the one of --config), print `FILE: ok` or every
    /// problem, and exit (0 valid, 1 invalid).
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub check: Option<Option<PathBuf>>,
    /// Write the process id to FILE once serving (removed on a clean exit if it still
    /// names this process).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The file `--check` validates: its own argument, else `--config`'s.
    pub fn check_file(&self) -> Option<&Path> {
        match &self.check {
            Some(Some(f)) => Some(f),
            Some(None) => self.config.as_deref(),
            None => None,
        }
    }
}

/// Runs a server binary to its end: `--check`, or the process logs ([`logging`](super::logging)),
/// the config, the runtime of its `threads`, `start` (the binary's [`Shell`]), the pid
/// file, then signals (`supervise` in `run`) until SIGTERM/SIGINT and a drain of at most
/// [`GRACE`]. Exit codes: 0 after a drain or a valid check, 1 for a bad config or a failed
/// start, 2 for a usage error.
pub fn main<G, F, Fut>(name: &str, binary: Binary, args: ServerArgs, start: F) -> ExitCode
where
    G: Generation,
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<Shell<G>, ShellError<G::Error>>>,
{
    if args.check.is_some() {
        let Some(file) = args.check_file() else {
            eprintln!("{name}: --check needs a FILE (--check FILE or --config FILE --check)");
            return ExitCode::from(2);
        };
        return exit(super::check(file, binary));
    }
    let Some(path) = args.config.clone() else {
        eprintln!("{name}: --config FILE is required (see --help)");
        return ExitCode::from(2);
    };
    super::upgrade::remember_exe();
    // Absolute, so a successor started from another directory finds the same files.
    let path = std::env::current_dir().map_or(path.clone(), |d| d.join(&path));
    let pid_file = args
        .pid_file
        .as_ref()
        .map(|p| std::env::current_dir().map_or(p.clone(), |d| d.join(p)));
    super::logging::init();
    let config = match Config::load(&path, binary) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match super::runtime(config.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = super::upgrade::inherit() {
        eprintln!("{name}: cannot take the inherited listening sockets: {e}");
        return ExitCode::FAILURE;
    }
    let upgrade = super::upgrade::Upgrade {
        config: path.clone(),
        pid_file: pid_file.clone(),
    };
    rt.block_on(async move {
        // Before anything binds: see `Signals`.
        let signals = match super::Signals::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: cannot handle signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shell = match start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match serve(
            shell,
            Some(&path),
            binary,
            pid_file.as_deref(),
            Some(&upgrade),
            signals,
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Serves a started [`Shell`] until SIGTERM/SIGINT (or a finished upgrade), then drains
/// it: writes `pid_file` first (and then tells the process it replaces that it serves),
/// reloads `path` on SIGHUP, upgrades on SIGUSR2 with `upgrade`, and removes `pid_file`
/// at the end if it still holds this process's id. `signals` were made before the shell
/// started (see [`Signals`](super::Signals)).
pub async fn serve<G: Generation>(
    mut shell: Shell<G>,
    path: Option<&Path>,
    binary: Binary,
    pid_file: Option<&Path>,
    upgrade: Option<&super::upgrade::Upgrade>,
    signals: super::Signals,
) -> Result<(), String> {
    if let Some(f) = pid_file {
        write_pid(f).map_err(|e| format!("--pid-file {}: {e}", f.display()))?;
    }
    super::upgrade::notify_ready();
    super::supervise_upgradable(&mut shell, path, binary, upgrade, signals)
        .await
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    shell.shutdown(GRACE).await;
    if let Some(f) = pid_file {
        remove_pid(f);
    }
    tracing::info!("drained; exiting");
    Ok(())
}

/// Writes this process's id and a newline to `file` (replaced whole: written beside it,
/// then renamed, so a reader never sees a partial id).
pub fn write_pid(file: &Path) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, file)
}

/// The pid `file` holds, if it holds one.
pub fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Removes `file` if it names this process (after an upgrade it names the successor).
fn remove_pid(file: &Path) {
    if read_pid(file) == Some(std::process::id()) {
        let _ = std::fs::remove_file(file);
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
