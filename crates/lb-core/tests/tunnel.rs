//! The TCP tunnel (`splice_tcp`, splice(2) through pipes) and the generic one, on real
//! loopback sockets: bytes intact both ways, half-close both ways, idle timeout, byte
//! counts, and the user-space copy for a stream that is not a TcpStream.

mod tunnel_support;

use std::time::{Duration, Instant};

use lb_core::server::tunnel::{splice, End, Moved, BUFFER, PIPE_BYTES};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;
use tunnel_support::{pair, receive, send, tcp_tunnel};

const GENEROUS: Duration = Duration::from_secs(60);

/// Random payloads cross both ways at once, in full and in order (hashes), the tunnel
/// ends `Closed` once both sides have shut down, and its counts (its own and the shared
/// totals) are exactly what was sent; bulk bytes went through the pipes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_payloads_cross_both_ways_intact_and_counted() {
    let (client, backend, task) = tcp_tunnel(GENEROUS).await;
    let (up_len, down_len) = (3_000_017usize, 5_000_011usize);
    let (mut cr, mut cw) = client.into_split();
    let (mut br, mut bw) = backend.into_split();
    let up_sent = tokio::spawn(async move {
        let h = send(&mut cw, 11, up_len).await;
        cw.shutdown().await.expect("shutdown");
        h
    });
    let down_sent = tokio::spawn(async move {
        let h = send(&mut bw, 22, down_len).await;
        bw.shutdown().await.expect("shutdown");
        h
    });
    let up_got = tokio::spawn(async move { receive(&mut br).await });
    let (down_hash, down_n) = receive(&mut cr).await;
    let (up_hash, up_n) = up_got.await.expect("join");
    assert_eq!((up_n, down_n), (up_len as u64, down_len as u64));
    assert_eq!(
        up_hash,
        up_sent.await.expect("join"),
        "client → backend bytes"
    );
    assert_eq!(
        down_hash,
        down_sent.await.expect("join"),
        "backend → client bytes"
    );
    let (end, up, down) = task.await.expect("join");
    let End::Closed(m) = end else {
        panic!("expected Closed, got {end:?}")
    };
    assert_eq!((m.up, m.down), (up_len as u64, down_len as u64));
    assert_eq!((up, down), (up_len as u64, down_len as u64));
    assert!(
        m.spliced > 0,
        "bulk data should go through splice(2): {m:?}"
    );
    assert!(m.spliced <= m.up + m.down);
}

/// Short exchanges stay in user space: no read fills the buffer, so no pipe is made.
#[tokio::test]
async fn short_exchanges_are_copied_without_a_pipe() {
    let (mut client, mut backend, task) = tcp_tunnel(GENEROUS).await;
    for i in 0..20u8 {
        let msg = [i; 300];
        client.write_all(&msg).await.expect("write");
        let mut got = [0u8; 300];
        tokio::io::AsyncReadExt::read_exact(&mut backend, &mut got)
            .await
            .expect("read");
        assert_eq!(got, msg);
        backend.write_all(&msg[..100]).await.expect("write");
        let mut back = [0u8; 100];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut back)
            .await
            .expect("read");
        assert_eq!(back, msg[..100]);
    }
    drop(client);
    drop(backend);
    let (end, up, down) = task.await.expect("join");
    let m = moved(&end);
    assert_eq!((m.up, m.down, m.spliced), (6000, 2000, 0), "{end:?}");
    assert_eq!((up, down), (6000, 2000));
}

fn moved(end: &End) -> Moved {
    match end {
        End::Closed(m) | End::Idle(m) | End::Error(m, _) => *m,
    }
}

/// The client shuts its write half after a bulk upload: the backend reads it all, then
/// EOF, and can still send a bulk answer that reaches the client in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_half_close_lets_the_backend_keep_sending() {
    half_close(true).await;
}

/// The same the other way: the backend shuts first, the client keeps sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_half_close_lets_the_client_keep_sending() {
    half_close(false).await;
}

async fn half_close(client_first: bool) {
    let (client, backend, task) = tcp_tunnel(GENEROUS).await;
    let (first, second) = if client_first {
        (client, backend)
    } else {
        (backend, client)
    };
    let (mut fr, mut fw) = first.into_split();
    let (mut sr, mut sw) = second.into_split();
    let n1 = 2 * PIPE_BYTES + 12_345;
    let sent1 = send(&mut fw, 1, n1).await;
    fw.shutdown().await.expect("shutdown");
    // Everything, then EOF, while `second` has not written a byte yet.
    let (got1, len1) = receive(&mut sr).await;
    assert_eq!((got1, len1), (sent1, n1 as u64));
    // The other direction still works after the half-close.
    let n2 = 3 * BUFFER + 777;
    let sent2 = send(&mut sw, 2, n2).await;
    sw.shutdown().await.expect("shutdown");
    let (got2, len2) = receive(&mut fr).await;
    assert_eq!((got2, len2), (sent2, n2 as u64));
    let (end, up, down) = task.await.expect("join");
    let (want_up, want_down) = if client_first { (n1, n2) } else { (n2, n1) };
    let End::Closed(m) = end else {
        panic!("expected Closed, got {end:?}")
    };
    assert_eq!((m.up, m.down), (want_up as u64, want_down as u64));
    assert_eq!((up, down), (want_up as u64, want_down as u64));
}

/// With no byte either way for the idle timeout, the tunnel ends `Idle` (real time, no
/// paused clock: the pipes and sockets are real), counting what moved before; the peers
/// see their connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_fires_after_bulk_traffic() {
    let idle = Duration::from_millis(400);
    let (client, backend, task) = tcp_tunnel(idle).await;
    let (mut cr, mut cw) = client.into_split();
    let (mut br, mut bw) = backend.into_split();
    let n = 4 * PIPE_BYTES;
    let sent = send(&mut cw, 3, n).await;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; n];
    tokio::io::AsyncReadExt::read_exact(&mut br, &mut buf)
        .await
        .expect("read");
    h.update(&buf);
    assert_eq!(h.digest(), sent);
    bw.write_all(b"ok").await.expect("write");
    let mut ok = [0u8; 2];
    tokio::io::AsyncReadExt::read_exact(&mut cr, &mut ok)
        .await
        .expect("read");
    let quiet = Instant::now();
    let (end, up, down) = tokio::time::timeout(GENEROUS, task)
        .await
        .expect("the idle timeout should end the tunnel")
        .expect("join");
    assert!(
        quiet.elapsed() >= idle - Duration::from_millis(50),
        "ended early"
    );
    let End::Idle(m) = end else {
        panic!("expected Idle, got {end:?}")
    };
    assert_eq!((m.up, m.down), (n as u64, 2));
    assert_eq!((up, down), (n as u64, 2));
    // The tunnel's sockets are closed: both peers read EOF.
    let (_, rest) = tokio::time::timeout(GENEROUS, receive(&mut br))
        .await
        .expect("EOF");
    assert_eq!(rest, 0);
    let (_, rest) = tokio::time::timeout(GENEROUS, receive(&mut cr))
        .await
        .expect("EOF");
    assert_eq!(rest, 0);
}

/// A reset from the backend ends the tunnel with an error, counted up to then.
#[tokio::test]
async fn a_reset_ends_the_tunnel_with_an_error() {
    let (mut client, backend, task) = tcp_tunnel(GENEROUS).await;
    client.write_all(&[7u8; 1000]).await.expect("write");
    let mut got = [0u8; 1000];
    let mut backend = backend;
    tokio::io::AsyncReadExt::read_exact(&mut backend, &mut got)
        .await
        .expect("read");
    socket2::SockRef::from(&backend)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(backend);
    let (end, up, _) = tokio::time::timeout(GENEROUS, task)
        .await
        .expect("ends")
        .expect("join");
    assert!(matches!(end, End::Error(m, _) if m.up == 1000), "{end:?}");
    assert_eq!(up, 1000);
}

/// The fallback copy: a stream that is not a TcpStream (an in-memory duplex) on one side,
/// TCP on the other, random payloads both ways, half-close passed on both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_streams_are_copied_intact() {
    let (mut near, far) = tokio::io::duplex(8 * 1024);
    let (backend_end, backend) = pair().await;
    let task = tokio::spawn(async move {
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut b = backend_end;
        let end = splice(tokio::io::split(far), b.split(), GENEROUS, &up, &down).await;
        (
            end,
            up.load(Ordering::Relaxed),
            down.load(Ordering::Relaxed),
        )
    });
    let (mut br, mut bw) = backend.into_split();
    let (up_len, down_len) = (1_000_003usize, 2_000_029usize);
    let down_sent = tokio::spawn(async move {
        let h = send(&mut bw, 5, down_len).await;
        bw.shutdown().await.expect("shutdown");
        h
    });
    let up_got = tokio::spawn(async move { receive(&mut br).await });
    let (mut nr, mut nw) = tokio::io::split(&mut near);
    let (up_sent, (down_hash, down_n)) = tokio::join!(
        async {
            let h = send(&mut nw, 4, up_len).await;
            nw.shutdown().await.expect("shutdown");
            h
        },
        receive(&mut nr)
    );
    let (up_hash, up_n) = up_got.await.expect("join");
    assert_eq!((up_n, down_n), (up_len as u64, down_len as u64));
    assert_eq!(up_hash, up_sent);
    assert_eq!(down_hash, down_sent.await.expect("join"));
    let (end, up, down) = task.await.expect("join");
    let End::Closed(m) = end else {
        panic!("expected Closed, got {end:?}")
    };
    assert_eq!(
        (m.up, m.down, m.spliced),
        (up_len as u64, down_len as u64, 0)
    );
    assert_eq!((up, down), (up_len as u64, down_len as u64));
}
