//! Command execution of the ring server: one parsed command in, its reply appended.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lb_core::{Backend, Change, Snapshot};

use super::proto::{push_bulk, push_header, push_int};
use super::{After, Conn, Ring};

/// Appends an error reply (`-ERR ...`), CR/LF replaced so the stream stays intact.
pub(super) fn error(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

pub(super) fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn nil(conn: &Conn, out: &mut Vec<u8>) {
    out.extend_from_slice(if conn.proto == 3 {
        b"_\r\n"
    } else {
        b"$-1\r\n"
    });
}

fn wrong_arity(out: &mut Vec<u8>, name: &[u8]) {
    error(
        out,
        &format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(name).to_ascii_lowercase()
        ),
    );
}

/// The address as a bulk string, formatted on the stack.
fn push_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    // The longest SocketAddr text ("[v6%scope]:port") is 58 bytes.
    let mut tmp = [0u8; 64];
    let mut cur = &mut tmp[..];
    let len = match write!(cur, "{addr}") {
        Ok(()) => 64 - cur.len(),
        Err(_) => 0,
    };
    push_bulk(out, &tmp[..len]);
}

fn get(conn: &Conn, snap: &Arc<Snapshot>, key: &[u8], out: &mut Vec<u8>) {
    match snap.preferred(key) {
        Some(m) => push_addr(out, m.backend().addr()),
        None => nil(conn, out),
    }
}

/// Runs one command; `cmd` is the command's bytes and `conn.args` ranges into it.
#[allow(clippy::too_many_lines)] // one arm per RESP command, a dispatch table read as one match
pub(super) fn execute(
    ring: &Ring,
    conn: &mut Conn,
    cmd: &[u8],
    snap: &Arc<Snapshot>,
    out: &mut Vec<u8>,
) -> After {
    let args = &conn.args;
    let name = &cmd[args[0].clone()];
    let arg = |i: usize| &cmd[args[i].clone()];
    let n = args.len();
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    if is("GET") {
        if n != 2 {
            wrong_arity(out, name);
        } else {
            get(conn, snap, arg(1), out);
        }
    } else if is("MGET") {
        if n < 2 {
            wrong_arity(out, name);
        } else {
            push_header(out, b'*', n - 1);
            for i in 1..n {
                get(conn, snap, arg(i), out);
            }
        }
    } else if is("PING") {
        match n {
            1 => simple(out, "PONG"),
            2 => push_bulk(out, arg(1)),
            _ => wrong_arity(out, name),
        }
    } else if is("ECHO") {
        if n != 2 {
            wrong_arity(out, name);
        } else {
            push_bulk(out, arg(1));
        }
    } else if is("SELECT") {
        if n != 2 {
            wrong_arity(out, name);
        } else if std::str::from_utf8(arg(1))
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .is_none()
        {
            error(out, "ERR value is not an integer or out of range");
        } else {
            simple(out, "OK");
        }
    } else if is("QUIT") {
        simple(out, "OK");
        return After::Close;
    } else if is("HELLO") {
        hello(ring, conn, cmd, out);
    } else if is("INFO") {
        if n > 2 {
            wrong_arity(out, name);
        } else {
            let section = if n == 2 {
                String::from_utf8_lossy(arg(1)).to_ascii_lowercase()
            } else {
                "default".to_owned()
            };
            let text = info(ring, snap, &section);
            if conn.proto == 3 {
                out.push(b'=');
                push_int(out, text.len() as i64 + 4);
                out.extend_from_slice(b"\r\ntxt:");
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                push_bulk(out, text.as_bytes());
            }
        }
    } else if is("RING.NODES") {
        if n != 1 {
            wrong_arity(out, name);
        } else {
            nodes(snap, out);
        }
    } else if is("RING.ADD") {
        if !(2..=3).contains(&n) {
            wrong_arity(out, name);
        } else {
            let weight = if n == 3 { Some(arg(2)) } else { None };
            return ring_add(arg(1), weight, out);
        }
    } else if is("RING.DEL") {
        if n != 2 {
            wrong_arity(out, name);
        } else {
            return ring_del(arg(1), out);
        }
    } else if is("COMMAND") {
        push_header(out, b'*', 0);
    } else if is("CONFIG") {
        // redis-benchmark and some clients read settings at start: the ring has none of
        // Redis's, which is what an empty answer to CONFIG GET says.
        if n >= 3 && arg(1).eq_ignore_ascii_case(b"GET") {
            push_header(out, if conn.proto == 3 { b'%' } else { b'*' }, 0);
        } else {
            error(
                out,
                "ERR the ring supports only CONFIG GET (and has no settings to show)",
            );
        }
    } else if is("CLIENT") {
        let sub = if n > 1 {
            arg(1).to_ascii_uppercase()
        } else {
            Vec::new()
        };
        match sub.as_slice() {
            b"SETNAME" | b"SETINFO" => simple(out, "OK"),
            b"ID" => {
                out.push(b':');
                push_int(out, conn.id as i64);
                out.extend_from_slice(b"\r\n");
            }
            b"GETNAME" => nil(conn, out),
            _ => error(
                out,
                "ERR unknown CLIENT subcommand: the ring supports SETNAME, SETINFO, ID and GETNAME",
            ),
        }
    } else if is("AUTH") {
        error(
            out,
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    } else if is("RESET") {
        conn.proto = 2;
        simple(out, "RESET");
    } else {
        let mut msg = format!(
            "ERR unknown command '{}', with args beginning with:",
            String::from_utf8_lossy(&name[..name.len().min(128)])
        );
        for i in 1..n.min(4) {
            let a = arg(i);
            msg.push_str(&format!(
                " '{}'",
                String::from_utf8_lossy(&a[..a.len().min(64)])
            ));
        }
        error(out, &msg);
    }
    After::Continue
}

fn parse_addr(raw: &[u8]) -> Result<SocketAddr, String> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "ERR invalid node address '{}': expected ip:port or [ipv6]:port",
                String::from_utf8_lossy(&raw[..raw.len().min(64)])
            )
        })
}

/// `RING.ADD addr [weight]`: the change to write through the pool's source, or an error
/// reply for a bad address or weight.
fn ring_add(addr: &[u8], weight: Option<&[u8]>, out: &mut Vec<u8>) -> After {
    let addr = match parse_addr(addr) {
        Ok(a) => a,
        Err(e) => {
            error(out, &e);
            return After::Continue;
        }
    };
    let weight = match weight {
        None => 1,
        Some(w) => match std::str::from_utf8(w)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        {
            Some(w) => w,
            None => {
                error(out, "ERR weight is not an integer in 0-256");
                return After::Continue;
            }
        },
    };
    match Backend::new(addr).with_weight(weight) {
        Ok(b) => After::Write(Change::Add(b)),
        Err(e) => {
            error(out, &format!("ERR {e}"));
            After::Continue
        }
    }
}

/// `RING.DEL addr`: the change to write through the pool's source.
fn ring_del(addr: &[u8], out: &mut Vec<u8>) -> After {
    match parse_addr(addr) {
        Ok(a) => After::Write(Change::Remove(a)),
        Err(e) => {
            error(out, &e);
            After::Continue
        }
    }
}

fn nodes(snap: &Snapshot, out: &mut Vec<u8>) {
    let now = lb_core::clock::now_nanos();
    let members = snap.members();
    push_header(out, b'*', members.len());
    for m in members {
        push_header(out, b'*', 3);
        push_addr(out, m.backend().addr());
        out.push(b':');
        push_int(out, i64::from(m.backend().weight()));
        out.extend_from_slice(b"\r\n");
        push_bulk(out, m.status(now).as_str().as_bytes());
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
fn hello(ring: &Ring, conn: &mut Conn, cmd: &[u8], out: &mut Vec<u8>) {
    let args = &conn.args;
    let arg = |i: usize| &cmd[args[i].clone()];
    let mut proto = conn.proto;
    if args.len() > 1 {
        match arg(1) {
            b"2" => proto = 2,
            b"3" => proto = 3,
            _ => {
                error(out, "NOPROTO unsupported protocol version");
                return;
            }
        }
        let mut i = 2;
        while i < args.len() {
            let opt = arg(i).to_ascii_uppercase();
            if opt == b"AUTH" && i + 2 < args.len() {
                // The ring has no users: like Redis's passwordless default user, any
                // credentials are accepted.
                i += 3;
            } else if opt == b"SETNAME" && i + 1 < args.len() {
                i += 2;
            } else {
                error(
                    out,
                    &format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(arg(i))
                    ),
                );
                return;
            }
        }
    }
    conn.proto = proto;
    let _ = ring;
    let fields: [(&str, Field<'_>); 7] = [
        ("server", Field::Str("lb-ring")),
        ("version", Field::Str(env!("CARGO_PKG_VERSION"))),
        ("proto", Field::Int(i64::from(proto))),
        ("id", Field::Int(conn.id as i64)),
        ("mode", Field::Str("standalone")),
        ("role", Field::Str("master")),
        ("modules", Field::Empty),
    ];
    push_header(
        out,
        if proto == 3 { b'%' } else { b'*' },
        if proto == 3 { 7 } else { 14 },
    );
    for (k, v) in fields {
        push_bulk(out, k.as_bytes());
        match v {
            Field::Str(s) => push_bulk(out, s.as_bytes()),
            Field::Int(i) => {
                out.push(b':');
                push_int(out, i);
                out.extend_from_slice(b"\r\n");
            }
            Field::Empty => push_header(out, b'*', 0),
        }
    }
}

enum Field<'a> {
    Str(&'a str),
    Int(i64),
    Empty,
}

/// The `INFO` text (`\r\n` line ends, as Redis sends it).
fn info(ring: &Ring, snap: &Snapshot, section: &str) -> String {
    let all = matches!(section, "all" | "default" | "everything");
    let mut s = String::new();
    let st = &ring.stats;
    if all || section == "server" {
        s.push_str(&format!(
            "# Server\r\nlb_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            ring.started.elapsed().as_secs()
        ));
    }
    if all || section == "clients" {
        s.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            st.connected.load(Ordering::Relaxed),
            ring.settings.max_connections
        ));
    }
    if all || section == "stats" {
        s.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nprotocol_errors:{}\r\n\r\n",
            st.connections.load(Ordering::Relaxed),
            st.commands.load(Ordering::Relaxed),
            st.protocol_errors.load(Ordering::Relaxed)
        ));
    }
    if all || section == "ring" {
        let now = lb_core::clock::now_nanos();
        let members = snap.members();
        let up = members
            .iter()
            .filter(|m| m.status(now) == lb_core::BackendStatus::Up)
            .count();
        s.push_str(&format!(
            "# Ring\r\npool:{}\r\nstrategy:{}\r\nvnodes:{}\r\nhealth:{}\r\nmembership_version:{}\r\nnodes:{}\r\nnodes_up:{}\r\n",
            ring.pool.name(),
            ring.pool.settings().strategy,
            ring.pool.settings().params.vnodes,
            ring.health,
            snap.version(),
            members.len(),
            up
        ));
        super::follow::info(ring, &mut s);
        for (i, m) in members.iter().enumerate() {
            s.push_str(&format!(
                "node{i}:addr={},weight={},state={}\r\n",
                m.backend().addr(),
                m.backend().weight(),
                m.status(now).as_str()
            ));
        }
        s.push_str("\r\n");
    }
    s
}
