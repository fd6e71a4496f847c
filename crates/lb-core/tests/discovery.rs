//! Discovery sources against the real thing: files renamed into place and cut short, a UDP
//! DNS server on loopback started by the test, and a real `redis-server`.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use lb_core::config::{Discovery, RedisUrl};
use lb_core::discovery::{start_with, Options, SourceKind, WriteError};
use lb_core::resp::Frame;
use lb_core::{Backend, BackendStatus, Change, Pool, PoolError, PoolSettings, StrategyKind};
use lb_test_support::{temp_dir, until_timed};
use redis_server::RedisServer;
use tokio::net::UdpSocket;

fn empty_pool() -> Arc<Pool> {
    Arc::new(
        Pool::new(
            "d",
            PoolSettings::with_strategy(StrategyKind::Consistent),
            vec![],
        )
        .unwrap(),
    )
}

/// Members as (addr, weight, backup), sorted.
fn members(pool: &Pool) -> Vec<(String, u16, bool)> {
    let mut v: Vec<_> = pool
        .snapshot()
        .members()
        .iter()
        .map(|m| {
            (
                m.backend().addr().to_string(),
                m.backend().weight(),
                m.backend().is_backup(),
            )
        })
        .collect();
    v.sort();
    v
}

fn addrs(pool: &Pool) -> Vec<String> {
    members(pool).into_iter().map(|m| m.0).collect()
}

fn fast() -> Options {
    {
        let mut s = Options::default();
        s.file_poll = Duration::from_millis(50);
        s
    }
}

// ------------------------------------------------------------------------------ file

/// Writes `text` to a temporary file beside `path` and renames it into place.
fn atomic_write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn file_atomic_rename_and_truncated_write() {
    let dir = temp_dir("rename");
    let path = dir.join("web.json");
    atomic_write(
        &path,
        r#"["127.0.0.1:9001", {"addr": "127.0.0.1:9002", "weight": 2}]"#,
    );
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &Discovery::File { path: path.clone() },
        &fast(),
    )
    .unwrap();
    // Read before start returns.
    assert_eq!(
        members(&pool),
        vec![
            ("127.0.0.1:9001".into(), 1, false),
            ("127.0.0.1:9002".into(), 2, false)
        ]
    );
    assert_eq!(src.kind(), SourceKind::File);
    assert!(src.last_sync().is_some());
    let version = pool.snapshot().version();

    // A half-written file (written in place, cut mid-entry) is rejected; nothing changes.
    std::fs::write(&path, r#"["127.0.0.1:9001", {"addr": "127.0.0.1:90"#).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(addrs(&pool), ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert_eq!(
        pool.snapshot().version(),
        version,
        "no snapshot was published"
    );
    // So is a file with a bad entry, and an empty file.
    std::fs::write(
        &path,
        r#"["127.0.0.1:9001", {"addr": "127.0.0.1:9003", "weight": 999}]"#,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.snapshot().version(), version);

    // An atomic rename publishes the new list; backends that stay keep their live state.
    let kept = pool
        .snapshot()
        .member("127.0.0.1:9001".parse().unwrap())
        .unwrap()
        .state()
        .clone();
    atomic_write(
        &path,
        r#"["127.0.0.1:9001", "127.0.0.1:9003", "127.0.0.1:9004"]"#,
    );
    let took = until_timed(Duration::from_secs(3), || {
        addrs(&pool) == ["127.0.0.1:9001", "127.0.0.1:9003", "127.0.0.1:9004"]
    })
    .await;
    assert!(took.is_some(), "rename not picked up: {:?}", members(&pool));
    let now = pool.snapshot();
    assert!(Arc::ptr_eq(
        now.member("127.0.0.1:9001".parse().unwrap())
            .unwrap()
            .state(),
        &kept
    ));

    // The file owns the pool: a change made behind its back is undone on the next poll.
    pool.apply(Change::Remove("127.0.0.1:9003".parse().unwrap()))
        .unwrap();
    assert!(
        until_timed(Duration::from_secs(3), || addrs(&pool).len() == 3)
            .await
            .is_some(),
        "the file's list was not restored"
    );

    // The file vanishing keeps the last good membership.
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(addrs(&pool).len(), 3);

    // The file owns membership: admin writes are refused.
    let add = Change::Add(Backend::new("127.0.0.1:9009".parse().unwrap()));
    assert!(matches!(
        src.write(&pool, add).await,
        Err(WriteError::Conflict(_))
    ));

    // Dropping the source stops its task: later files are not read.
    drop(src);
    tokio::time::sleep(Duration::from_millis(100)).await;
    atomic_write(&path, r#"["127.0.0.1:9005"]"#);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(addrs(&pool).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn file_that_appears_later_and_toml() {
    let dir = temp_dir("later");
    let path = dir.join("web.toml");
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &Discovery::File { path: path.clone() },
        &fast(),
    )
    .unwrap();
    assert!(addrs(&pool).is_empty());
    assert!(src.last_sync().is_none());
    atomic_write(
        &path,
        "backends = [\"127.0.0.1:9001\", { addr = \"[::1]:9002\", weight = 3, backup = true }]\n",
    );
    assert!(
        until_timed(Duration::from_secs(3), || addrs(&pool).len() == 2)
            .await
            .is_some()
    );
    assert_eq!(members(&pool)[1], ("[::1]:9002".into(), 3, true));
    assert!(src.last_sync().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------------- dns

/// A tiny authoritative DNS server on loopback UDP: names → A/AAAA or SRV records, with a
/// TTL; unknown names get NXDOMAIN. Counts the queries it answers per (name, type).
/// SRV records of one name: (priority, weight, port, target).
type SrvRecords = Vec<(u16, u16, u16, String)>;

#[derive(Default)]
struct Zone {
    ips: HashMap<String, (Vec<IpAddr>, u32)>,
    srv: HashMap<String, (SrvRecords, u32)>,
}

struct Dns {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<HashMap<(String, RecordType), usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dns {
    async fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let (z, q) = (zone.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(msg) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(query) = msg.queries.first().cloned() else {
                    continue;
                };
                let name = query
                    .name()
                    .to_string()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                *q.lock()
                    .unwrap()
                    .entry((name.clone(), query.query_type()))
                    .or_insert(0) += 1;
                let mut resp = Message::response(msg.metadata.id, OpCode::Query);
                resp.metadata.recursion_desired = msg.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.metadata.authoritative = true;
                resp.add_query(query.clone());
                {
                    let zone = z.lock().unwrap();
                    let qn = query.name().clone();
                    match (query.query_type(), zone.ips.get(&name), zone.srv.get(&name)) {
                        (RecordType::A, Some((ips, ttl)), _) => {
                            for ip in ips {
                                if let IpAddr::V4(v4) = ip {
                                    resp.add_answer(Record::from_rdata(
                                        qn.clone(),
                                        *ttl,
                                        RData::A(A(*v4)),
                                    ));
                                }
                            }
                        }
                        (RecordType::AAAA, Some((ips, ttl)), _) => {
                            for ip in ips {
                                if let IpAddr::V6(v6) = ip {
                                    resp.add_answer(Record::from_rdata(
                                        qn.clone(),
                                        *ttl,
                                        RData::AAAA(AAAA(*v6)),
                                    ));
                                }
                            }
                        }
                        (RecordType::SRV, _, Some((recs, ttl))) => {
                            for (prio, weight, port, target) in recs {
                                let t = Name::from_ascii(target).unwrap();
                                resp.add_answer(Record::from_rdata(
                                    qn.clone(),
                                    *ttl,
                                    RData::SRV(SRV::new(*prio, *weight, *port, t)),
                                ));
                            }
                        }
                        (_, None, None) => resp.metadata.response_code = ResponseCode::NXDomain,
                        _ => {} // the name exists, not this type: NOERROR, no answers
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, peer).await;
                }
            }
        });
        Dns {
            addr,
            zone,
            queries,
            task,
        }
    }

    fn set_ips(&self, name: &str, ips: &[&str], ttl: u32) {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.zone
            .lock()
            .unwrap()
            .ips
            .insert(name.into(), (ips, ttl));
    }

    fn remove(&self, name: &str) {
        let mut z = self.zone.lock().unwrap();
        z.ips.remove(name);
        z.srv.remove(name);
    }

    fn count(&self, name: &str, t: RecordType) -> usize {
        *self
            .queries
            .lock()
            .unwrap()
            .get(&(name.to_owned(), t))
            .unwrap_or(&0)
    }

    fn options(&self) -> Options {
        {
            let mut s = Options::default();
            s.dns_nameservers = vec![self.addr];
            s
        }
    }
}

fn dns(name: &str, port: Option<u16>, min_ttl: u64, max_ttl: u64) -> Discovery {
    Discovery::Dns {
        name: name.into(),
        port,
        min_ttl: Duration::from_secs(min_ttl),
        max_ttl: Duration::from_secs(max_ttl),
    }
}

#[tokio::test]
async fn dns_a_and_aaaa_follow_the_ttl() {
    let server = Dns::start().await;
    server.set_ips("web.test", &["127.0.0.10", "127.0.0.11", "::1"], 1);
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &dns("web.test", Some(8080), 0, 60),
        &server.options(),
    )
    .unwrap();
    assert_eq!(src.kind(), SourceKind::Dns);
    let first = until_timed(Duration::from_secs(5), || addrs(&pool).len() == 3).await;
    assert!(
        first.is_some(),
        "first answer never published: {:?}",
        addrs(&pool)
    );
    assert_eq!(
        addrs(&pool),
        ["127.0.0.10:8080", "127.0.0.11:8080", "[::1]:8080"]
    );
    assert!(src.last_sync().is_some());

    // The records change; a 1 s TTL means the change is seen within about a second.
    server.set_ips("web.test", &["127.0.0.12"], 1);
    let took = until_timed(Duration::from_secs(5), || {
        addrs(&pool) == ["127.0.0.12:8080"]
    })
    .await;
    assert!(
        took.is_some(),
        "TTL-driven change not seen: {:?}",
        addrs(&pool)
    );
    assert!(took.unwrap() < Duration::from_secs(3), "took {took:?}");
    let asked = server.count("web.test", RecordType::A);
    assert!(asked >= 2, "re-resolved only {asked} times");

    // The name disappearing (NXDOMAIN) keeps the last good membership.
    server.remove("web.test");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(addrs(&pool), ["127.0.0.12:8080"]);
    assert!(
        server.count("web.test", RecordType::A) > asked,
        "kept asking after failures"
    );

    let add = Change::Add(Backend::new("127.0.0.1:1".parse().unwrap()));
    assert!(matches!(
        src.write(&pool, add).await,
        Err(WriteError::Conflict(_))
    ));
}

#[tokio::test]
async fn dns_ttl_is_clamped_to_min_and_max() {
    let server = Dns::start().await;
    // A day-long TTL clamped to max_ttl = 1 s: changes still show within ~1 s.
    server.set_ips("long.test", &["127.0.0.20"], 86_400);
    // A zero TTL held for min_ttl = 2 s: at most a couple of lookups in 3 s.
    server.set_ips("zero.test", &["127.0.0.30"], 0);
    let long = empty_pool();
    let zero = empty_pool();
    let _a = start_with(
        long.clone(),
        &dns("long.test", Some(80), 0, 1),
        &server.options(),
    )
    .unwrap();
    let started = Instant::now();
    let _b = start_with(
        zero.clone(),
        &dns("zero.test", Some(80), 2, 60),
        &server.options(),
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&long) == ["127.0.0.20:80"])
            .await
            .is_some()
    );
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&zero) == ["127.0.0.30:80"])
            .await
            .is_some()
    );
    server.set_ips("long.test", &["127.0.0.21"], 86_400);
    assert!(
        until_timed(Duration::from_secs(4), || addrs(&long) == ["127.0.0.21:80"])
            .await
            .is_some(),
        "max_ttl did not bound a day-long TTL"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = server.count("zero.test", RecordType::A);
    let secs = started.elapsed().as_secs_f64();
    // One lookup at start, then one every min_ttl = 2 s; the 250 ms floor alone would
    // have made secs / 0.25 of them.
    assert!(n >= 2, "only {n} lookups in {secs:.1} s");
    assert!(
        n as f64 <= secs / 2.0 + 2.0,
        "{n} lookups of a 0 s TTL in {secs:.1} s with min_ttl = 2s"
    );
}

#[tokio::test]
async fn dns_srv_weights_and_priorities() {
    let server = Dns::start().await;
    server.zone.lock().unwrap().srv.insert(
        "_http._tcp.web.test".into(),
        (
            vec![
                (10, 5, 9001, "a.web.test.".into()),
                (10, 0, 9002, "b.web.test.".into()),
                (20, 1, 9003, "c.web.test.".into()),
                (10, 1000, 9004, "d.web.test.".into()),
            ],
            30,
        ),
    );
    server.set_ips("a.web.test", &["127.0.0.1"], 30);
    server.set_ips("b.web.test", &["127.0.0.2"], 30);
    server.set_ips("c.web.test", &["127.0.0.3"], 30);
    server.set_ips("d.web.test", &["127.0.0.4"], 30);
    let pool = empty_pool();
    let _src = start_with(
        pool.clone(),
        &dns("_http._tcp.web.test", None, 1, 60),
        &server.options(),
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&pool).len() == 4)
            .await
            .is_some(),
        "{:?}",
        members(&pool)
    );
    assert_eq!(
        members(&pool),
        vec![
            ("127.0.0.1:9001".into(), 5, false),
            ("127.0.0.2:9002".into(), 1, false), // SRV weight 0 → 1
            ("127.0.0.3:9003".into(), 1, true),  // a higher priority value → backup
            ("127.0.0.4:9004".into(), 256, false), // clamped to 256
        ]
    );
}

// ----------------------------------------------------------------------------- redis

fn redis(r: &RedisServer, key: &str, resync: Duration) -> Discovery {
    Discovery::Redis {
        url: RedisUrl::parse(&r.url()).unwrap(),
        key: key.into(),
        resync,
    }
}

fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

#[tokio::test]
async fn redis_follows_events_and_resyncs_missed_writes() {
    let r = RedisServer::start().await;
    assert_eq!(
        r.cmd(&[
            "HSET",
            "lb:web",
            "127.0.0.1:9001",
            "1",
            "127.0.0.1:9002",
            "2"
        ])
        .await,
        int(2)
    );
    // resync = 30 s: anything seen within the next seconds came through pub/sub.
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &redis(&r, "lb:web", Duration::from_secs(30)),
        &Options::default(),
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&pool).len() == 2)
            .await
            .is_some()
    );
    assert_eq!(members(&pool)[1], ("127.0.0.1:9002".into(), 2, false));
    assert!(src.last_sync().is_some());

    // An operator's own tooling: HSET + PUBLISH.
    r.cmd(&["HSET", "lb:web", "127.0.0.1:9003", "0"]).await;
    r.cmd(&["PUBLISH", "lb:web:events", "127.0.0.1:9003"]).await;
    let took = until_timed(Duration::from_secs(3), || addrs(&pool).len() == 3).await;
    assert!(took.is_some(), "event not followed");
    let m = pool.snapshot();
    let drained = m.member("127.0.0.1:9003".parse().unwrap()).unwrap();
    assert_eq!(
        drained.status(lb_core::clock::now_nanos()),
        BackendStatus::Draining
    );

    // A write without PUBLISH is healed by the periodic re-read (a second source, 200 ms).
    let other = empty_pool();
    let _o = start_with(
        other.clone(),
        &redis(&r, "lb:web", Duration::from_millis(200)),
        &Options::default(),
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(3), || addrs(&other).len() == 3)
            .await
            .is_some()
    );
    r.cmd(&["HDEL", "lb:web", "127.0.0.1:9001"]).await;
    assert!(
        until_timed(Duration::from_secs(3), || addrs(&other).len() == 2)
            .await
            .is_some(),
        "resync missed a silent write"
    );
    // Bad entries are skipped, the rest still applies.
    r.cmd(&["HSET", "lb:web", "garbage", "1", "127.0.0.1:9004", "x"])
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(addrs(&other), ["127.0.0.1:9002", "127.0.0.1:9003"]);
}

#[tokio::test]
async fn redis_admin_writes() {
    let r = RedisServer::start().await;
    r.cmd(&["HSET", "lb:api", "127.0.0.1:9001", "1"]).await;
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &redis(&r, "lb:api", Duration::from_secs(30)),
        &Options::default(),
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&pool).len() == 1)
            .await
            .is_some()
    );
    let a2: SocketAddr = "127.0.0.1:9002".parse().unwrap();

    // Add: in Redis, and visible here before write returns.
    src.write(&pool, Change::Add(Backend::new(a2).with_weight(3).unwrap()))
        .await
        .unwrap();
    assert_eq!(addrs(&pool), ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert_eq!(
        r.cmd(&["HGET", "lb:api", "127.0.0.1:9002"]).await,
        Frame::Bulk(Some(b"3".to_vec()))
    );
    assert_eq!(
        src.write(&pool, Change::Add(Backend::new(a2))).await,
        Err(WriteError::Pool(PoolError::Duplicate(a2)))
    );
    // Drain writes 0; "up" on a drained backend writes 1; a weight writes the weight.
    let upd = |weight, draining| Change::Update {
        addr: a2,
        weight,
        draining,
    };
    src.write(&pool, upd(None, Some(true))).await.unwrap();
    assert_eq!(
        r.cmd(&["HGET", "lb:api", "127.0.0.1:9002"]).await,
        Frame::Bulk(Some(b"0".to_vec()))
    );
    assert_eq!(members(&pool)[1].1, 0);
    src.write(&pool, upd(None, Some(false))).await.unwrap();
    assert_eq!(members(&pool)[1].1, 1);
    src.write(&pool, upd(Some(7), None)).await.unwrap();
    assert_eq!(members(&pool)[1].1, 7);
    assert_eq!(
        src.write(&pool, upd(Some(300), None)).await,
        Err(WriteError::Pool(PoolError::BadWeight(300)))
    );
    // Remove, and the unknown cases.
    src.write(&pool, Change::Remove(a2)).await.unwrap();
    assert_eq!(addrs(&pool), ["127.0.0.1:9001"]);
    assert_eq!(
        r.cmd(&["HEXISTS", "lb:api", "127.0.0.1:9002"]).await,
        int(0)
    );
    assert_eq!(
        src.write(&pool, Change::Remove(a2)).await,
        Err(WriteError::Pool(PoolError::UnknownBackend(a2)))
    );
    assert_eq!(
        src.write(&pool, upd(Some(2), None)).await,
        Err(WriteError::Pool(PoolError::UnknownBackend(a2)))
    );
    // What the hash cannot hold is refused.
    let with_id = Backend::new("127.0.0.1:9005".parse().unwrap()).with_id("x");
    assert!(matches!(
        src.write(&pool, Change::Add(with_id)).await,
        Err(WriteError::Unsupported(_))
    ));
}

#[tokio::test]
async fn redis_outage_keeps_membership_and_resyncs_after() {
    let mut r = RedisServer::start().await;
    r.cmd(&["HSET", "lb:o", "127.0.0.1:9001", "1", "127.0.0.1:9002", "1"])
        .await;
    let pool = empty_pool();
    let opts = {
        let mut s = Options::default();
        s.redis_backoff_max = Duration::from_millis(500);
        s
    };
    let src = start_with(
        pool.clone(),
        &redis(&r, "lb:o", Duration::from_millis(300)),
        &opts,
    )
    .unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || addrs(&pool).len() == 2)
            .await
            .is_some()
    );

    r.stop();
    let synced = src.last_sync();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        addrs(&pool).len(),
        2,
        "an outage must not change membership"
    );
    assert_eq!(src.last_sync(), synced, "no sync while Redis is down");
    let add = Change::Add(Backend::new("127.0.0.1:9003".parse().unwrap()));
    assert!(matches!(
        src.write(&pool, add.clone()).await,
        Err(WriteError::Unavailable(_))
    ));

    r.resume().await;
    // Data survived the restart; a write made while instances reconnect is picked up.
    r.cmd(&["HSET", "lb:o", "127.0.0.1:9004", "1"]).await;
    let took = until_timed(Duration::from_secs(5), || addrs(&pool).len() == 3).await;
    assert!(
        took.is_some(),
        "no resync after the restart: {:?}",
        addrs(&pool)
    );
    assert!(src.last_sync() > synced);
    // Writes work again (the write connection reconnects on demand).
    src.write(&pool, add).await.unwrap();
    assert_eq!(addrs(&pool).len(), 4);
}

#[tokio::test]
async fn wait_ready_is_bounded_and_names_late_sources() {
    let dir = temp_dir("ready");
    let path = dir.join("b.json");
    atomic_write(&path, r#"["127.0.0.1:9001"]"#);
    let file = start_with(empty_pool(), &Discovery::File { path }, &fast()).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = RedisUrl::parse(&format!("redis://{dead}")).unwrap();
    let disc = Discovery::Redis {
        url,
        key: "k".into(),
        resync: Duration::from_secs(1),
    };
    let redis = start_with(empty_pool(), &disc, &Options::default()).unwrap();
    let t0 = Instant::now();
    let late =
        lb_core::discovery::wait_ready([file.clone(), redis.clone()], Duration::from_millis(300))
            .await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].kind(), SourceKind::Redis);
    assert!(
        lb_core::discovery::wait_ready([file], Duration::from_millis(1))
            .await
            .is_empty()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn redis_auth_and_database() {
    let r = RedisServer::start_with(&["--requirepass", "s3cret"]).await;
    let url = |auth: &str, db: u32| {
        RedisUrl::parse(&format!("redis://{auth}127.0.0.1:{}/{db}", r.port)).unwrap()
    };
    let disc = |auth: &str, db: u32| Discovery::Redis {
        url: url(auth, db),
        key: "lb:db".into(),
        resync: Duration::from_millis(200),
    };
    let (a, b, wrong) = (empty_pool(), empty_pool(), empty_pool());
    let src_a = start_with(a.clone(), &disc(":s3cret@", 2), &Options::default()).unwrap();
    let _b = start_with(b.clone(), &disc(":s3cret@", 0), &Options::default()).unwrap();
    let src_w = start_with(wrong.clone(), &disc(":nope@", 2), &Options::default()).unwrap();
    assert!(
        until_timed(Duration::from_secs(5), || src_a.last_sync().is_some())
            .await
            .is_some()
    );
    let add = Change::Add(Backend::new("127.0.0.1:9001".parse().unwrap()));
    src_a.write(&a, add.clone()).await.unwrap();
    assert_eq!(addrs(&a), ["127.0.0.1:9001"]);
    // Database 0 is another hash; the wrong password never syncs and cannot write.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(addrs(&b).is_empty());
    assert!(src_w.last_sync().is_none());
    assert!(matches!(
        src_w.write(&wrong, add).await,
        Err(WriteError::Unavailable(_))
    ));
}

#[tokio::test]
async fn redis_first_write_after_a_restart_succeeds() {
    let mut r = RedisServer::start().await;
    let pool = empty_pool();
    let src = start_with(
        pool.clone(),
        &redis(&r, "lb:w", Duration::from_secs(1)),
        &Options::default(),
    )
    .unwrap();
    let add = |p| Change::Add(Backend::new(SocketAddr::from(([127, 0, 0, 1], p))));
    src.write(&pool, add(9001)).await.unwrap();
    r.stop();
    r.resume().await;
    // The write connection kept from before the restart is dead; the write must not be.
    src.write(&pool, add(9002)).await.unwrap();
    assert_eq!(r.cmd(&["HLEN", "lb:w"]).await, int(2));
}
