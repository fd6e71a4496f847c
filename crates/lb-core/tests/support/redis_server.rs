//! A real `redis-server` for tests: a free loopback port, data kept in an append-only file
//! in a temporary directory so a stop and restart keeps the data, killed by PID on drop.
//! Shared by lb-core's and lb-proxy's discovery tests (included with `#[path]`).

#![allow(dead_code)]
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lb_core::resolve::RespResolver;
use lb_core::resp::Frame;

/// A running (or stopped) redis-server.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[]).await
    }

    /// Starts one on a free port with extra arguments (`--requirepass x`). With a
    /// password, readiness is only checked by the process staying up.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!("lb-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut r = RedisServer {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.resume().await;
        r
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL by PID); the append-only file keeps every write.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory, and waits for PING.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let probe = RespResolver::new(self.addr(), "", Duration::from_millis(200));
        for _ in 0..200 {
            match probe.command(&[b"PING"]).await {
                Ok(Frame::Simple(p)) if p == "PONG" => return,
                // Up, and asking for the password.
                Ok(Frame::Error(e)) if e.starts_with("NOAUTH") => return,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }

    /// Runs one command on a fresh connection.
    pub async fn cmd(&self, args: &[&str]) -> Frame {
        let c = RespResolver::new(self.addr(), "", Duration::from_secs(2));
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        c.command(&args).await.expect("redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
