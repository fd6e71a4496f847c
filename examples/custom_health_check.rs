//! A health probe of your own: Redis `PING`, plugged into lb-core's health monitor with
//! rise/fall, against two real `redis-server`s that this example starts on loopback (it
//! needs `redis-server` on the PATH: `apt-get install redis-server`).
//!
//! The probe answers `Ok(())` for `+PONG` and a [`CheckError`] otherwise: the monitor
//! takes a backend down after `fall` failed probes in a row and back up after `rise`
//! good ones, so one slow answer never flaps it. Here redis-b starts requiring a password
//! (every `PING` answers `-NOAUTH`), goes down, gets no traffic, and comes back when the
//! password is lifted.
//!
//! Run: `cargo run -p lb-examples --bin custom_health_check`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lb_core::health::{BoxFuture, CheckError, CheckKind, Checker, HealthMonitor, HealthSettings};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};
use lb_examples::demo::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Healthy when the server answers `PING` with `+PONG` within `timeout`.
struct RedisPing {
    timeout: Duration,
}

impl Checker for RedisPing {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        Box::pin(async move {
            // Bound the whole probe: the contract asks for it (the monitor bounds it too).
            match tokio::time::timeout(self.timeout, ping(addr)).await {
                Ok(result) => result,
                Err(_) => Err(CheckError::Timeout(self.timeout)),
            }
        })
    }
}

/// One `PING` on a fresh connection (what a new client would see).
async fn ping(addr: SocketAddr) -> Result<(), CheckError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| CheckError::Connect(Arc::new(e)))?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .await
        .map_err(|e| CheckError::other("redis", e))?;
    let mut line = String::new();
    // A reply line is short; cap what a broken server can make us read.
    let mut reader = BufReader::new(stream.take(512));
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| CheckError::other("redis", e))?;
    match line.trim_end() {
        "+PONG" => Ok(()),
        "" => Err(CheckError::other("redis", "closed without answering")),
        other => Err(CheckError::other("redis", format!("PING answered {other}"))),
    }
}

/// A `redis-server` child on a free loopback port, killed on drop.
struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    async fn start() -> Result<RedisServer, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        for _ in 0..200 {
            if ping(server.addr).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("redis-server on {} did not answer PING", server.addr).into())
    }

    /// Sends commands on one connection and returns the first line of each reply.
    async fn cmds(&self, cmds: &[&[&str]]) -> Result<Vec<String>, Error> {
        let mut stream = BufReader::new(TcpStream::connect(self.addr).await?);
        let mut out = Vec::new();
        for args in cmds {
            let mut req = format!("*{}\r\n", args.len());
            for a in *args {
                req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            stream.get_mut().write_all(req.as_bytes()).await?;
            let mut line = String::new();
            stream.read_line(&mut line).await?;
            out.push(line.trim_end().to_owned());
        }
        Ok(out)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the next health event and prints it.
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<lb_core::health::HealthEvent>,
    names: &[(SocketAddr, &str)],
) -> Result<(), Error> {
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv()).await??;
    let name = names
        .iter()
        .find(|(a, _)| *a == ev.addr)
        .map_or("?", |(_, n)| n);
    match ev.reason {
        Some(reason) => println!("event {name} down kind={} reason={reason}", reason.kind()),
        None => println!("event {name} up"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = RedisServer::start().await?;
    let b = RedisServer::start().await?;
    let names = [(a.addr, "redis-a"), (b.addr, "redis-b")];
    let backends = vec![
        Backend::new(a.addr).with_id("redis-a"),
        Backend::new(b.addr).with_id("redis-b"),
    ];
    let pool = Arc::new(Pool::new(
        "cache",
        PoolSettings::with_strategy(StrategyKind::Rendezvous),
        backends,
    )?);

    // Rise/fall, interval and timeout come from the settings; the probe is ours (the
    // monitor does not read `kind` when it is given a checker).
    let settings = HealthSettings::new(CheckKind::Tcp)
        .with_timing(Duration::from_millis(100), Duration::from_millis(500))
        .with_rise_fall(2, 2);
    let checker = Arc::new(RedisPing {
        timeout: settings.timeout,
    });
    println!("rise={} fall={}", settings.rise, settings.fall);
    let monitor = HealthMonitor::spawn(
        pool.clone(),
        settings,
        checker,
        std::future::pending::<()>(),
    );
    let mut events = monitor.subscribe();

    let set = b
        .cmds(&[&["CONFIG", "SET", "requirepass", "s3cret"]])
        .await?;
    println!("redis-b requirepass {}", set.join(" "));
    next_event(&mut events, &names).await?;

    let snap = pool.snapshot();
    let mut on_b = 0;
    for i in 0..50 {
        let lease = snap
            .select(format!("key:{i}").as_bytes())
            .next()
            .ok_or("no backend")?;
        on_b += usize::from(lease.addr() == b.addr);
    }
    println!("picks while down: redis-b={on_b}/50");

    let lifted = b
        .cmds(&[&["AUTH", "s3cret"], &["CONFIG", "SET", "requirepass", ""]])
        .await?;
    println!("redis-b requirepass lifted {}", lifted.join(" "));
    next_event(&mut events, &names).await?;
    let status = pool
        .snapshot()
        .member(b.addr)
        .map(|m| m.status(lb_core::clock::now_nanos()).as_str());
    println!("redis-b status {}", status.unwrap_or("missing"));
    monitor.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract check a user runs against their own probe.
    #[tokio::test]
    async fn redis_ping_keeps_the_checker_contract() {
        let server = RedisServer::start().await.unwrap();
        let checker = RedisPing {
            timeout: Duration::from_secs(1),
        };
        lb_core::health::testing::check_checker(&checker, server.addr, Duration::from_secs(2))
            .await
            .unwrap();
    }
}
