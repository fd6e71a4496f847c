//! Shared test helpers: a real admin API (lb-core, in-process) on loopback port 0, the
//! `lb` binary, and a RESP client over a plain TCP stream.

#![allow(dead_code)]
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lb_core::admin::{AdminState, AdminView};
use lb_core::discovery::{PoolHandle, StaticSource};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A pool built the way the binaries build static pools.
pub fn pool(name: &str, kind: StrategyKind, backends: &[&str]) -> Arc<Pool> {
    let b = backends
        .iter()
        .map(|a| {
            let (addr, w) = a.split_once('=').unwrap_or((a, "1"));
            Backend::new(addr.parse().expect("test address"))
                .with_weight(w.parse().expect("test weight"))
                .expect("test weight in range")
        })
        .collect();
    Arc::new(Pool::new(name, PoolSettings::with_strategy(kind), b).expect("valid test pool"))
}

/// A running admin API; stops when dropped.
pub struct Admin {
    pub addr: SocketAddr,
    pub pools: BTreeMap<String, Arc<Pool>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Admin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Serves `pools` through lb-core's admin API on 127.0.0.1:0.
pub async fn admin(pools: Vec<Arc<Pool>>, token: Option<&str>) -> Admin {
    admin_tls(pools, token, None).await
}

/// [`admin`], over TLS when `tls` is given.
pub async fn admin_tls(
    pools: Vec<Arc<Pool>>,
    token: Option<&str>,
    tls: Option<lb_core::admin::AdminTls>,
) -> Admin {
    let mut view = AdminView {
        token: token.map(str::to_owned),
        ..AdminView::default()
    };
    let mut map = BTreeMap::new();
    for p in pools {
        map.insert(p.name().to_owned(), p.clone());
        view.pools.insert(
            p.name().to_owned(),
            PoolHandle {
                pool: p,
                source: Arc::new(StaticSource),
            },
        );
    }
    let state = Arc::new(AdminState::new(view, None));
    state.set_tls(tls);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = listener.local_addr().expect("admin addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(lb_core::admin::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Admin {
        addr,
        pools: map,
        _stop: tx,
    }
}

/// Output of one `lb` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs the `lb` binary with `args` (and extra environment) off the async threads.
pub async fn lb(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_lb"))
            .args(&args)
            .env_remove("LB_TOKEN")
            .env_remove("LB_ADMIN")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running lb: {e}"));
        Run {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("lb runner")
}

/// A RESP client over a raw TCP stream, reading replies with lb-core's codec.
pub struct Resp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    pub async fn connect(addr: SocketAddr) -> Resp {
        Resp {
            stream: TcpStream::connect(addr).await.expect("connect to ring"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        lb_core::resp::encode_command(args, &mut out);
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next reply; `None` when the server closed the connection first.
    pub async fn read(&mut self) -> Option<lb_core::resp::Frame> {
        loop {
            if let Some((f, used)) =
                lb_core::resp::parse(&self.buf).expect("server sent valid RESP")
            {
                self.buf.drain(..used);
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("reply within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn cmd(&mut self, args: &[&str]) -> lb_core::resp::Frame {
        let b: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&b).await;
        self.read().await.expect("a reply")
    }
}

/// The bulk string of a reply as text (`None` for nil).
pub fn text(f: &lb_core::resp::Frame) -> Option<String> {
    use lb_core::resp::Frame;
    match f {
        Frame::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        Frame::Bulk(None) | Frame::Null => None,
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// Starts `lb ring serve ARGS --listen 127.0.0.1:0` and returns the child and its address.
pub fn ring_binary(args: &[&str]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["ring", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lb ring serve");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("lb ring listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

/// Kills a child we started (by its handle) and reaps it.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
