//! The RESP ring server in-process, over real TCP on loopback: commands, pipelining, RESP3,
//! membership changes, bounds and malformed input.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{pool, text, Resp};
use lb_cli::ring::{serve, Limits, Ring, RingSettings};
use lb_core::resp::Frame;
use lb_core::{Pool, StrategyKind};
use tokio::io::AsyncReadExt;

const NODES: &[&str] = &["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003=2"];

struct Server {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(pool: Arc<Pool>, settings: RingSettings) -> Server {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ring = Ring::new(pool, settings, "none");
    tokio::spawn(serve(l, ring, async move {
        let _ = rx.await;
    }));
    Server { addr, _stop: tx }
}

fn owner(p: &Pool, key: &str) -> Option<String> {
    p.snapshot()
        .preferred(key.as_bytes())
        .map(|m| m.backend().addr().to_string())
}

#[tokio::test]
async fn get_mget_ping_select_echo() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let s = start(p.clone(), RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    assert_eq!(c.cmd(&["PING"]).await, Frame::Simple("PONG".into()));
    assert_eq!(text(&c.cmd(&["ping", "hi"]).await).as_deref(), Some("hi"));
    assert_eq!(c.cmd(&["SELECT", "3"]).await, Frame::Simple("OK".into()));
    assert!(
        matches!(c.cmd(&["SELECT", "x"]).await, Frame::Error(e) if e.contains("not an integer"))
    );
    assert_eq!(text(&c.cmd(&["ECHO", "e"]).await).as_deref(), Some("e"));
    for key in ["user:1", "user:2", "", "ключ", "a b"] {
        assert_eq!(text(&c.cmd(&["GET", key]).await), owner(&p, key), "{key:?}");
    }
    let r = c.cmd(&["MGET", "k1", "k2", "k3"]).await;
    let Frame::Array(Some(items)) = r else {
        panic!("{r:?}")
    };
    let got: Vec<_> = items.iter().map(text).collect();
    assert_eq!(got, ["k1", "k2", "k3"].map(|k| owner(&p, k)));
    assert!(
        matches!(c.cmd(&["GET"]).await, Frame::Error(e) if e == "ERR wrong number of arguments for 'get' command")
    );
    assert!(matches!(c.cmd(&["GET", "a", "b"]).await, Frame::Error(_)));
    assert!(matches!(c.cmd(&["MGET"]).await, Frame::Error(_)));
    assert!(matches!(c.cmd(&["FLUSHALL", "now"]).await,
        Frame::Error(e) if e.starts_with("ERR unknown command 'FLUSHALL', with args beginning with: 'now'")));
    // The connection is still fine after errors.
    assert_eq!(c.cmd(&["PING"]).await, Frame::Simple("PONG".into()));
}

#[tokio::test]
async fn pipelined_commands_in_one_write_answered_in_order() {
    let p = pool("ring", StrategyKind::Maglev, NODES);
    let s = start(p.clone(), RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    let keys: Vec<String> = (0..5000).map(|i| format!("key-{i}")).collect();
    let mut wire = Vec::new();
    for k in &keys {
        lb_core::resp::encode_command(&[b"GET", k.as_bytes()], &mut wire);
    }
    // One write of ~110 KB, larger than the server's flush threshold and read size.
    c.raw(&wire).await;
    for k in &keys {
        let r = c.read().await.expect("a reply per command");
        assert_eq!(text(&r), owner(&p, k), "{k}");
    }
    // Commands split at every byte boundary still parse.
    let mut wire = Vec::new();
    lb_core::resp::encode_command(&[b"GET", b"split-key"], &mut wire);
    for b in &wire {
        c.raw(std::slice::from_ref(b)).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(text(&c.read().await.unwrap()), owner(&p, "split-key"));
}

#[tokio::test]
async fn inline_commands_like_a_person_with_nc() {
    let p = pool("ring", StrategyKind::Rendezvous, NODES);
    let s = start(p.clone(), RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    c.raw(b"PING\r\n\r\nGET \"a key\"\nget plain\r\n").await;
    assert_eq!(c.read().await, Some(Frame::Simple("PONG".into())));
    assert_eq!(text(&c.read().await.unwrap()), owner(&p, "a key"));
    assert_eq!(text(&c.read().await.unwrap()), owner(&p, "plain"));
}

#[tokio::test]
async fn hello_3_switches_to_resp3_nil_and_maps() {
    let p = pool("ring", StrategyKind::Consistent, &[]);
    let s = start(p.clone(), RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    // RESP2: nil bulk for an empty ring, HELLO as a flat array.
    assert_eq!(c.cmd(&["GET", "k"]).await, Frame::Bulk(None));
    let r = c.cmd(&["HELLO"]).await;
    let Frame::Array(Some(items)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(items.len(), 14);
    assert_eq!(text(&items[0]).as_deref(), Some("server"));
    assert_eq!(items[5], Frame::Integer(2));
    let r = c
        .cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "me"])
        .await;
    let Frame::Map(pairs) = r else {
        panic!("{r:?}")
    };
    assert!(
        pairs.contains(&(Frame::Bulk(Some(b"proto".to_vec())), Frame::Integer(3))),
        "{pairs:?}"
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, Frame::Null);
    let r = c.cmd(&["MGET", "a", "b"]).await;
    assert_eq!(r, Frame::Array(Some(vec![Frame::Null, Frame::Null])));
    let r = c.cmd(&["INFO", "ring"]).await;
    let Frame::Verbatim { format, data } = r else {
        panic!("{r:?}")
    };
    assert_eq!(&format, b"txt");
    assert!(String::from_utf8_lossy(&data).contains("nodes:0"));
    assert!(matches!(c.cmd(&["HELLO", "4"]).await, Frame::Error(e) if e.starts_with("NOPROTO")));
    let Frame::Array(Some(items)) = c.cmd(&["HELLO", "2"]).await else {
        panic!("HELLO 2 answers a flat array")
    };
    assert_eq!(items[5], Frame::Integer(2));
    assert_eq!(c.cmd(&["GET", "k"]).await, Frame::Bulk(None));
}

#[tokio::test]
async fn ring_add_del_nodes_change_answers_like_the_pool() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let s = start(p.clone(), RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let before: Vec<_> = keys.iter().map(|k| owner(&p, k)).collect();
    assert_eq!(
        c.cmd(&["RING.ADD", "127.0.0.1:7004", "2"]).await,
        Frame::Simple("OK".into())
    );
    assert!(
        matches!(c.cmd(&["RING.ADD", "127.0.0.1:7004"]).await, Frame::Error(e) if e.contains("already a node"))
    );
    assert!(
        matches!(c.cmd(&["RING.ADD", "nope"]).await, Frame::Error(e) if e.contains("invalid node address"))
    );
    assert!(
        matches!(c.cmd(&["RING.ADD", "127.0.0.1:1", "300"]).await, Frame::Error(e) if e.contains("out of range"))
    );
    assert!(matches!(
        c.cmd(&["RING.ADD", "127.0.0.1:1", "x"]).await,
        Frame::Error(_)
    ));
    assert_eq!(p.snapshot().members().len(), 4);
    let mut moved = 0;
    for (k, b) in keys.iter().zip(&before) {
        let now = text(&c.cmd(&["GET", k]).await);
        assert_eq!(now, owner(&p, k));
        if &now != b {
            // Only to the new node.
            assert_eq!(now.as_deref(), Some("127.0.0.1:7004"));
            moved += 1;
        }
    }
    assert!(moved > 0, "the new node owns some keys");
    // A pipelined add and get see the new membership at once.
    let mut wire = Vec::new();
    lb_core::resp::encode_command(&[b"RING.DEL", b"127.0.0.1:7004"], &mut wire);
    lb_core::resp::encode_command(&[b"MGET", b"k1", b"k2"], &mut wire);
    c.raw(&wire).await;
    assert_eq!(c.read().await, Some(Frame::Simple("OK".into())));
    let r = c.read().await.unwrap();
    assert_eq!(
        r,
        Frame::Array(Some(vec![
            Frame::Bulk(before[1].clone().map(String::into_bytes)),
            Frame::Bulk(before[2].clone().map(String::into_bytes))
        ]))
    );
    assert!(
        matches!(c.cmd(&["RING.DEL", "127.0.0.1:7004"]).await, Frame::Error(e) if e.contains("not a node"))
    );
    p.snapshot().members()[0].state().set_healthy(false);
    let r = c.cmd(&["RING.NODES"]).await;
    let Frame::Array(Some(nodes)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(nodes.len(), 3);
    assert_eq!(
        nodes[0],
        Frame::Array(Some(vec![
            Frame::Bulk(Some(b"127.0.0.1:7001".to_vec())),
            Frame::Integer(1),
            Frame::Bulk(Some(b"down".to_vec()))
        ]))
    );
    assert_eq!(
        nodes[2],
        Frame::Array(Some(vec![
            Frame::Bulk(Some(b"127.0.0.1:7003".to_vec())),
            Frame::Integer(2),
            Frame::Bulk(Some(b"up".to_vec()))
        ]))
    );
    // A down node's keys go to the next node; no key of another node moves.
    for (k, b) in keys.iter().zip(&before) {
        let now = text(&c.cmd(&["GET", k]).await);
        if b.as_deref() == Some("127.0.0.1:7001") {
            assert_ne!(now, *b);
        } else {
            assert_eq!(now, *b, "{k}");
        }
    }
}

#[tokio::test]
async fn info_quit_and_client_commands() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let s = start(p, RingSettings::default()).await;
    let mut c = Resp::connect(s.addr).await;
    let info = text(&c.cmd(&["INFO"]).await).unwrap();
    for want in [
        "# Server",
        "# Clients",
        "connected_clients:1",
        "# Ring",
        "strategy:consistent",
        "nodes:3",
        "nodes_up:3",
        "node2:addr=127.0.0.1:7003,weight=2,state=up",
    ] {
        assert!(info.contains(want), "{want} in {info}");
    }
    let stats = text(&c.cmd(&["info", "STATS"]).await).unwrap();
    assert!(
        stats.starts_with("# Stats") && !stats.contains("# Ring"),
        "{stats}"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME", "x"]).await,
        Frame::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["COMMAND", "DOCS"]).await,
        Frame::Array(Some(vec![]))
    );
    assert_eq!(c.cmd(&["QUIT"]).await, Frame::Simple("OK".into()));
    assert_eq!(c.read().await, None, "closed after QUIT");
}

async fn closed_after(c: &mut Resp) -> Vec<u8> {
    let mut all = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), c.stream.read_to_end(&mut all)).await;
    assert!(r.is_ok(), "server closes the connection");
    all
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_close() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let s = start(p.clone(), RingSettings::default()).await;
    for bad in [
        &b"*2\r\n$3\r\nGET\r\n:12\r\n"[..],
        b"*x\r\n",
        b"*1\r\n$3\r\nGETxx\r\n",
        b"*1\r\n$-5\r\n",
        b"*99999999\r\n",
        b"*1\r\n$999999999\r\n",
    ] {
        let mut c = Resp::connect(s.addr).await;
        // A good command first: answered before the garbage closes the connection.
        let mut wire = b"PING\r\n".to_vec();
        wire.extend_from_slice(bad);
        c.raw(&wire).await;
        let all = closed_after(&mut c).await;
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.starts_with("+PONG\r\n-ERR Protocol error: "),
            "{bad:?}: {text}"
        );
        assert!(
            text.ends_with("\r\n") && text.matches("\r\n").count() == 2,
            "{text}"
        );
    }
    // The server is still up.
    let mut c = Resp::connect(s.addr).await;
    assert_eq!(c.cmd(&["PING"]).await, Frame::Simple("PONG".into()));
}

#[tokio::test]
async fn sizes_are_bounded_before_buffering() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let settings = RingSettings {
        limits: Limits {
            max_args: 8,
            max_arg_len: 100,
            max_command_len: 400,
        },
        ..RingSettings::default()
    };
    let s = start(p, settings).await;
    let mut c = Resp::connect(s.addr).await;
    let keys: Vec<Vec<u8>> = (0..9).map(|i| vec![b'k'; i + 1]).collect();
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(Vec::as_slice));
    c.send(&args).await;
    let all = closed_after(&mut c).await;
    assert!(
        String::from_utf8_lossy(&all).contains("too many arguments (10 > 8)"),
        "{all:?}"
    );
    let mut c = Resp::connect(s.addr).await;
    c.raw(b"*2\r\n$3\r\nGET\r\n$101\r\n").await;
    let all = closed_after(&mut c).await;
    assert!(
        String::from_utf8_lossy(&all).contains("argument of 101 bytes exceeds the limit of 100"),
        "{all:?}"
    );
    // A long inline line with no newline is cut at the bound, not buffered forever.
    let mut c = Resp::connect(s.addr).await;
    c.raw(&vec![b'a'; 1000]).await;
    let all = closed_after(&mut c).await;
    assert!(
        String::from_utf8_lossy(&all).contains("longer than 400 bytes"),
        "{all:?}"
    );
    // Many small arguments adding up past the command bound.
    let mut c = Resp::connect(s.addr).await;
    let big = vec![b'x'; 90];
    c.send(&[b"MGET", &big, &big, &big, &big, &big]).await;
    let all = closed_after(&mut c).await;
    assert!(
        String::from_utf8_lossy(&all).contains("command longer than 400 bytes"),
        "{all:?}"
    );
}

#[tokio::test]
async fn idle_clients_are_cut_off() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let settings = RingSettings {
        idle_timeout: Some(Duration::from_millis(200)),
        ..RingSettings::default()
    };
    let s = start(p, settings).await;
    // A client that keeps talking outlives the timeout many times over.
    let mut c = Resp::connect(s.addr).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(c.cmd(&["PING"]).await, Frame::Simple("PONG".into()));
    }
    c.raw(b"*2\r\n$3\r\nGET").await; // half a command, then silence
    let started = std::time::Instant::now();
    let all = closed_after(&mut c).await;
    assert!(all.is_empty(), "closed without a reply: {all:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "not before the timeout"
    );
}

#[tokio::test]
async fn connection_limit_holds_new_clients_until_one_leaves() {
    let p = pool("ring", StrategyKind::Consistent, NODES);
    let settings = RingSettings {
        max_connections: 1,
        ..RingSettings::default()
    };
    let s = start(p, settings).await;
    let mut first = Resp::connect(s.addr).await;
    assert_eq!(first.cmd(&["PING"]).await, Frame::Simple("PONG".into()));
    let mut second = Resp::connect(s.addr).await; // accepted by the kernel, not served
    second.send(&[b"PING"]).await;
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read()).await;
    assert!(
        waited.is_err(),
        "the second client waits while the first is connected"
    );
    assert_eq!(first.cmd(&["QUIT"]).await, Frame::Simple("OK".into()));
    drop(first);
    assert_eq!(second.read().await, Some(Frame::Simple("PONG".into())));
}
