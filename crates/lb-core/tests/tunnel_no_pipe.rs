//! When no pipe can be created (`EMFILE`: the process is out of file descriptors), a TCP
//! tunnel still carries bulk data, copying it through user space. Its own test binary:
//! it lowers the process's descriptor limit and fills every free descriptor.

mod tunnel_support;

use std::time::Duration;

use lb_core::server::tunnel::{End, PIPE_BYTES};
use tokio::io::AsyncWriteExt;
use tunnel_support::{receive, send, tcp_tunnel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pipes_bulk_data_is_copied() {
    let (client, backend, task) = tcp_tunnel(Duration::from_secs(60)).await;
    // Fill every descriptor below a lowered limit, so pipe2() fails with EMFILE.
    let limit = rustix::process::Rlimit {
        current: Some(256),
        maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).expect("setrlimit");
    let mut hold = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hold.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE: {e}");
                break;
            }
        }
    }
    assert!(
        rustix::pipe::pipe().is_err(),
        "no descriptor should be left"
    );

    let (mut cr, mut cw) = client.into_split();
    let (mut br, mut bw) = backend.into_split();
    let (up_len, down_len) = (10 * PIPE_BYTES + 3, 7 * PIPE_BYTES + 5);
    let up = tokio::spawn(async move {
        let h = send(&mut cw, 8, up_len).await;
        cw.shutdown().await.expect("shutdown");
        h
    });
    let down = tokio::spawn(async move {
        let h = send(&mut bw, 9, down_len).await;
        bw.shutdown().await.expect("shutdown");
        h
    });
    let up_got = tokio::spawn(async move { receive(&mut br).await });
    let (down_hash, down_n) = receive(&mut cr).await;
    let (up_hash, up_n) = up_got.await.expect("join");
    assert_eq!((up_n, down_n), (up_len as u64, down_len as u64));
    assert_eq!(up_hash, up.await.expect("join"));
    assert_eq!(down_hash, down.await.expect("join"));
    let (end, _, _) = task.await.expect("join");
    let End::Closed(m) = end else {
        panic!("expected Closed, got {end:?}")
    };
    assert_eq!(
        (m.up, m.down, m.spliced),
        (up_len as u64, down_len as u64, 0)
    );
    drop(hold);
}
