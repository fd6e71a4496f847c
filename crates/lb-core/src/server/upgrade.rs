//! Zero-downtime binary upgrade (SIGUSR2) and systemd socket activation: listening sockets
//! that outlive a process.
//!
//! On SIGUSR2 the running process (the *old* one) starts its executable again, from the
//! path it was started with (so a newly installed file takes over), with the same
//! `--config` and `--pid-file`, and an environment variable ([`UPGRADE_ENV`]) naming a
//! Unix socket in a private directory. The new process connects to it at start-up and
//! receives every listening socket (the listeners' and the admin API's) with `SCM_RIGHTS`,
//! each with the address it was configured for; it serves on them (none is ever closed, so
//! no connection is refused), writes its pid to `--pid-file`, and answers `ready`. Only
//! then does the old process stop accepting and drain as on SIGTERM. If the new process
//! exits, or is not ready within [`READY_TIMEOUT`], the old one keeps serving, logs why,
//! and puts its own pid back into the pid file.
//!
//! The same start-up step takes sockets from systemd socket activation (`LISTEN_FDS`,
//! `LISTEN_PID`), matched to `[[listener]] listen` and `[admin] listen` by address.
//!
//! No `unsafe`: sockets passed by `SCM_RIGHTS` arrive as owned descriptors (rustix), and
//! systemd's descriptors 3.. are taken with `pidfd_getfd` on this process's own pidfd,
//! which returns an owned duplicate. The inherited originals 3.. stay open (closing a raw
//! descriptor number is not possible in safe Rust); they are the same sockets, so they
//! only matter if a reload drops one of those listeners (its port then stays bound).

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The environment variable that names the parent's handover socket.
pub const UPGRADE_ENV: &str = "LB_UPGRADE_SOCKET";

/// How long the old process waits for the new one to be serving.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets handed over at most (listeners and the admin API).
const MAX_SOCKETS: usize = 64;

struct Inherited {
    /// The address it was configured for in the process that handed it over (`None`
    /// from systemd: matched by its bound address).
    configured: Option<SocketAddr>,
    bound: Option<SocketAddr>,
    listener: TcpListener,
}

static INHERITED: Mutex<Vec<Inherited>> = Mutex::new(Vec::new());
static READY: Mutex<Option<UnixStream>> = Mutex::new(None);
static EXE: OnceLock<PathBuf> = OnceLock::new();

/// Why an upgrade did not happen; the running process keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The new process could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The new process exited before it was serving.
    #[error("the new process exited ({status}) before it was serving")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// The new process was not serving within [`READY_TIMEOUT`] (it was stopped).
    #[error("the new process was not serving within {0:?}; stopped it")]
    Timeout(Duration),
    /// The handover itself failed.
    #[error("socket handover: {0}")]
    Io(#[from] io::Error),
}

/// Records the executable's path as this process was started (`argv[0]`, made absolute
/// against the working directory, or looked up in `PATH`), for [`Upgrade`]: unlike
/// `/proc/self/exe`, it names the newly installed file once the old one is replaced.
pub fn remember_exe() {
    let _ = EXE.get_or_init(started_as);
}

fn started_as() -> PathBuf {
    let fallback = || std::env::current_exe().unwrap_or_default();
    let Some(arg0) = std::env::args_os().next().map(PathBuf::from) else {
        return fallback();
    };
    if arg0.components().count() > 1 {
        return std::env::current_dir().map_or(arg0.clone(), |d| d.join(&arg0));
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(&arg0))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(fallback)
}

/// Takes the listening sockets this process was given at start-up: from the process it
/// replaces ([`UPGRADE_ENV`]) or from systemd (`LISTEN_FDS` for this pid). Returns how many.
/// Call before the listeners are bound; [`take_inherited`] then hands them out.
pub fn inherit() -> io::Result<usize> {
    let mut got = Vec::new();
    if let Some(path) = std::env::var_os(UPGRADE_ENV) {
        let stream = UnixStream::connect(&path)?;
        got = receive(&stream)?;
        *lock(&READY) = Some(stream);
    } else if let Some(n) = systemd_fds() {
        let me = rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        )?;
        for fd in 3..3 + n {
            let owned =
                rustix::process::pidfd_getfd(&me, fd, rustix::process::PidfdGetfdFlags::empty())?;
            let listener = TcpListener::from(owned);
            let bound = listener.local_addr().ok();
            got.push(Inherited {
                configured: None,
                bound,
                listener,
            });
        }
    }
    let n = got.len();
    for i in &got {
        tracing::info!(listen = ?i.bound, "inherited a listening socket");
    }
    lock(&INHERITED).extend(got);
    Ok(n)
}

/// `LISTEN_FDS` when `LISTEN_PID` names this process.
fn systemd_fds() -> Option<i32> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let n: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (1..=MAX_SOCKETS as i32).contains(&n).then_some(n)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The inherited listening socket for `configured`, if there is one: the one handed
/// over for that configured address, else one bound to it.
pub fn take_inherited(configured: SocketAddr) -> Option<TcpListener> {
    let mut v = lock(&INHERITED);
    let i = v
        .iter()
        .position(|i| i.configured == Some(configured))
        .or_else(|| {
            v.iter()
                .position(|i| configured.port() != 0 && i.bound == Some(configured))
        })?;
    Some(v.swap_remove(i).listener)
}

/// Closes inherited sockets no listener took (the new config dropped them).
pub fn drop_unused() {
    for i in lock(&INHERITED).drain(..) {
        tracing::warn!(listen = ?i.bound, "inherited socket not in the config: closed");
    }
}

/// Tells the process being replaced that this one serves (after the pid file is written).
pub fn notify_ready() {
    if let Some(mut s) = lock(&READY).take() {
        let _ = writeln!(s, "ready {}", std::process::id());
    }
}

/// The child side of the handover: one message, `configured-address` per line, and the
/// sockets in the same order.
fn receive(stream: &UnixStream) -> io::Result<Vec<Inherited>> {
    let mut text = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let text = String::from_utf8_lossy(&text[..got.bytes]);
    let addrs: Vec<Option<SocketAddr>> = text.lines().map(|l| l.trim().parse().ok()).collect();
    if addrs.len() != fds.len() {
        return Err(io::Error::other(format!(
            "{} addresses for {} sockets",
            addrs.len(),
            fds.len()
        )));
    }
    Ok(addrs
        .into_iter()
        .zip(fds)
        .map(|(configured, fd)| {
            let listener = TcpListener::from(fd);
            Inherited {
                configured,
                bound: listener.local_addr().ok(),
                listener,
            }
        })
        .collect())
}

/// How this process starts its successor: the same executable path, `--config` and
/// `--pid-file`.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The config file (absolute).
    pub config: PathBuf,
    /// `--pid-file`, if given.
    pub pid_file: Option<PathBuf>,
}

impl Upgrade {
    /// Starts the successor, hands it `sockets` (configured address, listening socket) and
    /// waits until it serves: `Ok(pid)`, after which this process should drain. On error
    /// the successor is gone and this process keeps serving (the pid file names it again).
    pub async fn run(&self, sockets: Vec<(SocketAddr, OwnedFd)>) -> Result<u32, UpgradeError> {
        let this = self.clone();
        let r = tokio::task::spawn_blocking(move || this.run_blocking(&sockets))
            .await
            .unwrap_or_else(|e| Err(UpgradeError::Io(io::Error::other(e.to_string()))));
        if r.is_err() {
            if let Some(f) = &self.pid_file {
                if super::main::read_pid(f) != Some(std::process::id()) {
                    let _ = super::main::write_pid(f);
                }
            }
        }
        r
    }

    fn run_blocking(&self, sockets: &[(SocketAddr, OwnedFd)]) -> Result<u32, UpgradeError> {
        let dir = private_dir()?;
        let path = dir.join("handover.sock");
        let listener = UnixListener::bind(&path)?;
        let exe = EXE.get_or_init(started_as).clone();
        let mut args: Vec<OsString> = vec!["--config".into(), self.config.clone().into()];
        if let Some(p) = &self.pid_file {
            args.push("--pid-file".into());
            args.push(p.clone().into());
        }
        let child = Command::new(&exe)
            .args(&args)
            .env(UPGRADE_ENV, &path)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| UpgradeError::Spawn {
                exe: exe.clone(),
                source,
            });
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        tracing::info!(exe = %exe.display(), pid = child.id(), "upgrade: started the new process");
        let r = handover(&listener, &mut child, sockets);
        let _ = std::fs::remove_dir_all(&dir);
        match r {
            Ok(()) => Ok(child.id()),
            Err(e) => {
                if child.try_wait().ok().flatten().is_none() {
                    let _ = child.kill();
                }
                // Reaped here, or by the runtime when this process exits.
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

/// A directory only this user can enter, for the handover socket.
fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("lb-upgrade-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Accepts the child's connection, sends the sockets, waits for `ready`, all within
/// [`READY_TIMEOUT`], failing as soon as the child exits.
fn handover(
    listener: &UnixListener,
    child: &mut Child,
    sockets: &[(SocketAddr, OwnedFd)],
) -> Result<(), UpgradeError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    listener.set_nonblocking(true)?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        exited_or_late(child, deadline)?;
        std::thread::sleep(Duration::from_millis(10));
    };
    stream.set_nonblocking(false)?;
    send(&stream, sockets)?;
    // Wait for `ready`, waking to check on the child.
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => {
                // Closed without `ready`: it exited (or is exiting).
                let end = Instant::now() + Duration::from_secs(1);
                while Instant::now() < end {
                    exited_or_late(child, deadline)?;
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Err(io::Error::other("the new process closed the handover").into());
            }
            Ok(_) if line.starts_with("ready") => return Ok(()),
            Ok(_) => line.clear(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        exited_or_late(child, deadline)?;
    }
}

fn exited_or_late(child: &mut Child, deadline: Instant) -> Result<(), UpgradeError> {
    if let Some(status) = child.try_wait()? {
        return Err(UpgradeError::Exited { status });
    }
    if Instant::now() >= deadline {
        return Err(UpgradeError::Timeout(READY_TIMEOUT));
    }
    Ok(())
}

fn send(stream: &UnixStream, sockets: &[(SocketAddr, OwnedFd)]) -> io::Result<()> {
    if sockets.len() > MAX_SOCKETS {
        return Err(io::Error::other(format!(
            "{} listening sockets; at most {MAX_SOCKETS} can be handed over",
            sockets.len()
        )));
    }
    let text: String = sockets.iter().map(|(a, _)| format!("{a}\n")).collect();
    let fds: Vec<_> = sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("socket list too large"));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != text.len() {
        return Err(io::Error::other("short handover message"));
    }
    Ok(())
}

/// True when `path` is where this process was started from (for tests and logs).
pub fn started_from() -> &'static Path {
    EXE.get_or_init(started_as)
}
