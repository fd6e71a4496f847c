//! `lb check`, `lb hash` and `lb ring serve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::hash::{analyse, HashArgs};
use crate::serve::ServeOptions;
use lb_core::config::{Binary, Config};

pub(super) fn check(binary: &str, path: &std::path::Path) -> ExitCode {
    let bin: Binary = match binary {
        "lb-proxy" => Binary::Proxy,
        "lb-sni" => Binary::Sni,
        other => {
            eprintln!("lb check: --binary {other:?}: expected lb-proxy or lb-sni");
            return ExitCode::from(2);
        }
    };
    match Config::load(path, bin) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn hash(args: HashArgs, svg: Option<PathBuf>) -> ExitCode {
    let a = match analyse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lb hash: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = print_out(format_args!("{}", a.report())) {
        return stdout_failed(e);
    }
    if let Some(path) = svg {
        if let Err(e) = std::fs::write(&path, crate::svg::svg(&a)) {
            eprintln!("lb hash: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = print_out(format_args!("svg: {}\n", path.display())) {
            return stdout_failed(e);
        }
    }
    ExitCode::SUCCESS
}

/// Writes to a locked stdout and flushes, returning the error instead of
/// panicking as `print!` does when the reader has gone (`lb hash | head`).
fn print_out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// A reader that closed the pipe early (`| head`) is not an error: exit 0
/// quietly, as `cat` or `rg` do. Any other write error is reported.
fn stdout_failed(e: std::io::Error) -> ExitCode {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("lb hash: writing stdout: {e}");
    ExitCode::FAILURE
}

pub(super) fn ring_serve(listen: &str, threads: usize, opts: ServeOptions) -> ExitCode {
    lb_core::server::logging::init();
    let prepared = match crate::serve::prepare(&opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lb ring serve: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match lb_core::rt::runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb ring serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        // Before binding: from the `listening` line on, SIGTERM and SIGINT stop gracefully
        // (until a handler is registered they end the process on the spot).
        let stop = shutdown().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        // `run` prints `lb ring listening on ADDR` once the pool is ready.
        crate::serve::run(prepared, listener, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb ring serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Listens for SIGINT and SIGTERM from now on; the future ends at the first of them.
fn shutdown() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("lb ring stopping");
    })
}
