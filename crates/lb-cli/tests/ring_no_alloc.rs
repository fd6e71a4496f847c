//! The ring server answers `GET` and `MGET` without allocating per command: a counting
//! global allocator, enabled only on the server's thread, sees no allocation over 20 000
//! pipelined `GET`s and 2 000 `MGET` keys once the connection is warm (its read, reply and
//! argument buffers grown to the batch size).

use std::io::{Read, Write};
use std::sync::Arc;

use lb_cli::ring::{serve, Ring, RingSettings};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};
use lb_test_support::alloc::{count_this_thread, tracked_allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Every node address is 14 bytes, so every GET reply is `$14\r\n...\r\n`: 21 bytes.
/// Warm-up batches before counting.
const WARM: usize = 5;
const NODES: [&str; 3] = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];

fn batch(from: usize, n: usize, out: &mut Vec<u8>) {
    out.clear();
    for i in from..from + n {
        let key = format!("user:{i}");
        lb_core::resp::encode_command(&[b"GET", key.as_bytes()], out);
    }
}

#[test]
fn get_and_mget_allocate_nothing_per_command() {
    let backends = NODES
        .iter()
        .map(|a| Backend::new(a.parse().expect("address")))
        .collect();
    let pool = Arc::new(
        Pool::new(
            "ring",
            PoolSettings::with_strategy(StrategyKind::Consistent),
            backends,
        )
        .expect("pool"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let ring = Ring::new(pool, RingSettings::default(), "none");
            count_this_thread(true);
            serve(listener, ring, async move {
                let _ = stop_rx.await;
            })
            .await;
            count_this_thread(false);
        });
    });

    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut wire = Vec::with_capacity(64 << 10);
    let mut replies = vec![0u8; 200 * 21];
    // Warm-up: the connection task starts, its buffers grow to the batch size.
    for round in 0..WARM {
        batch(round * 200, 200, &mut wire);
        client.write_all(&wire).unwrap();
        client.read_exact(&mut replies).unwrap();
    }
    let before = tracked_allocations();
    for round in WARM..WARM + 100 {
        batch(round * 200, 200, &mut wire);
        client.write_all(&wire).unwrap();
        client.read_exact(&mut replies).unwrap();
        assert!(
            replies.starts_with(b"$14\r\n127.0.0.1:700"),
            "{:?}",
            &replies[..21]
        );
    }
    assert_eq!(tracked_allocations() - before, 0, "GETs allocated");
    // MGET of 100 keys, 20 times.
    let keys: Vec<String> = (0..100).map(|i| format!("order:{i}")).collect();
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(|k| k.as_bytes()));
    wire.clear();
    lb_core::resp::encode_command(&args, &mut wire);
    let mut mget = vec![0u8; 6 + 100 * 21]; // "*100\r\n" and 100 bulk strings
                                            // The first MGET of 100 keys grows the connection's argument vector (4 doublings).
    client.write_all(&wire).unwrap();
    client.read_exact(&mut mget).unwrap();
    let before = tracked_allocations();
    for _ in 0..20 {
        client.write_all(&wire).unwrap();
        client.read_exact(&mut mget).unwrap();
        assert!(mget.starts_with(b"*100\r\n$14\r\n"));
    }
    let allocated = tracked_allocations() - before;
    drop(client);
    let _ = stop_tx.send(());
    server.join().unwrap();
    assert_eq!(
        allocated, 0,
        "the server thread allocated {allocated} times over 2 000 MGET keys"
    );
}
