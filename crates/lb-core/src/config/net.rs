//! Small network value types of the config: socket addresses, CIDR blocks, directory and
//! Redis URLs, and HTTP header and cookie names.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Parses `ip:port` or `[v6]:port` (IP literals only: the config never resolves host
/// names, so validation has no side effects and every instance reads the same address).
pub fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address (`/32`,
/// `/128` implied when the prefix is omitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("not an IP address")]
    BadAddress,
    /// The prefix length is not a number within the address size.
    #[error("prefix length must be 0..=32 (IPv4) or 0..=128 (IPv6)")]
    BadPrefix,
    /// Bits are set after the prefix.
    #[error("host bits set after the prefix: did you mean {0}?")]
    HostBits(Cidr),
}

impl Cidr {
    /// A block from an address and prefix length; host bits must be zero.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::BadPrefix);
        }
        let c = Cidr { addr, prefix };
        let masked = c.network();
        if masked != addr {
            return Err(CidrError::HostBits(Cidr {
                addr: masked,
                prefix,
            }));
        }
        Ok(c)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask4(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask6(self.prefix)).into()),
        }
    }

    /// True when `ip` is inside the block. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`,
    /// as a dual-stack socket reports IPv4 peers) matches IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask4(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| CidrError::BadAddress)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| CidrError::BadPrefix)?
            }
            Some(_) => return Err(CidrError::BadPrefix),
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// True when `ip` is inside any of `blocks`.
pub fn any_contains(blocks: &[Cidr], ip: IpAddr) -> bool {
    blocks.iter().any(|c| c.contains(ip))
}

/// The URL of an HTTP directory: `http://host[:port]/path` containing `{name}` once or
/// more, replaced by the percent-encoded name on each lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate {
    raw: String,
    host: String,
    port: u16,
}

impl UrlTemplate {
    /// Parses and checks a template; the error says what is wrong.
    pub fn parse(s: &str) -> Result<UrlTemplate, &'static str> {
        let rest = s.strip_prefix("http://").ok_or("expected an http:// URL")?;
        if !s.contains("{name}") {
            return Err("the URL must contain {name}");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains("{name}") {
            return Err("{name} may only appear in the path or query");
        }
        let (host, port) =
            split_host_port(authority, 80).ok_or("expected http://host[:port]/path")?;
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("the path contains spaces or control characters");
        }
        Ok(UrlTemplate {
            raw: s.to_owned(),
            host,
            port,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The directory host (name or IP literal, without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The directory port (80 when omitted).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL for `name`, percent-encoded (every byte but unreserved characters).
    pub fn render(&self, name: &str) -> String {
        let mut enc = String::with_capacity(name.len());
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                enc.push(char::from(b));
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        self.raw.replace("{name}", &enc)
    }
}

/// A Redis server: `redis://[[user]:password@]host[:port][/db]` (port 6379 by default).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (6379 when omitted).
    pub port: u16,
    /// Database number (`SELECT`), 0 when omitted.
    pub db: u32,
    /// `AUTH` user, if any.
    pub username: Option<String>,
    /// `AUTH` password, if any.
    pub password: Option<String>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RedisUrl {
    /// Parses a `redis://` URL; the error says what is wrong.
    pub fn parse(s: &str) -> Result<RedisUrl, &'static str> {
        let rest = s
            .strip_prefix("redis://")
            .ok_or("expected a redis:// URL")?;
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, d)) => (
                a,
                d.parse()
                    .map_err(|_| "the database after '/' must be a number")?,
            ),
            None => (rest, 0),
        };
        let (host, port) =
            split_host_port(authority, 6379).ok_or("expected redis://host[:port]")?;
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    (!user.is_empty()).then(|| user.to_owned()),
                    Some(pass.to_owned()),
                ),
                None => (None, Some(u.to_owned())),
            },
        };
        Ok(RedisUrl {
            host,
            port,
            db,
            username,
            password,
        })
    }

    /// `host:port` for connecting (`[v6]:port` for IPv6 literals).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host[:port]` / `[v6][:port]`; the host must be an IP literal or a DNS name.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (h, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || (!host.contains(':') && crate::name::normalize_name(host).is_err()) {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    Some((host.to_owned(), port))
}

/// True for an HTTP token (header names, cookie names): `!#$%&'*+-.^_`|~`, letters, digits.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for a header value we are willing to send: visible ASCII, spaces and tabs.
pub fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains("::1".parse().unwrap()));
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0/8".parse::<Cidr>(), Err(CidrError::BadAddress));
        assert_eq!("::/129".parse::<Cidr>(), Err(CidrError::BadPrefix));
    }

    #[test]
    fn url_templates() {
        let t = UrlTemplate::parse("http://127.0.0.1:6280/backend/{name}").unwrap();
        assert_eq!((t.host(), t.port()), ("127.0.0.1", 6280));
        assert_eq!(t.render("a.test"), "http://127.0.0.1:6280/backend/a.test");
        assert_eq!(t.render("::1"), "http://127.0.0.1:6280/backend/%3A%3A1");
        let t = UrlTemplate::parse("http://[::1]/x?n={name}").unwrap();
        assert_eq!((t.host(), t.port()), ("::1", 80));
        assert!(UrlTemplate::parse("https://a/{name}").is_err());
        assert!(UrlTemplate::parse("http://a/x").is_err());
        assert!(UrlTemplate::parse("http://{name}/").is_err());
        assert!(UrlTemplate::parse("http://a:99999/{name}").is_err());
        assert!(UrlTemplate::parse("http:///{name}").is_err());
    }

    #[test]
    fn redis_urls() {
        let r = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.db), ("127.0.0.1", 6379, 0));
        assert_eq!(r.authority(), "127.0.0.1:6379");
        let r = RedisUrl::parse("redis://:pw@[::1]/2").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.db), ("::1", 6379, 2));
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert_eq!(r.authority(), "[::1]:6379");
        assert!(!format!("{r:?}").contains("pw"));
        assert!(RedisUrl::parse("http://a").is_err());
        assert!(RedisUrl::parse("redis://").is_err());
        assert!(RedisUrl::parse("redis://a:b").is_err());
        assert!(RedisUrl::parse("redis://a/x").is_err());
    }

    #[test]
    fn tokens() {
        assert!(is_token("x-tenant"));
        assert!(!is_token("x tenant"));
        assert!(!is_token(""));
        assert!(!is_token("a:b"));
        assert!(is_header_value("a b\tc"));
        assert!(!is_header_value("a\r\nb"));
    }

    proptest! {
        #[test]
        fn cidr_contains_its_network(a in any::<u32>(), p in 0u8..=32, b in any::<u32>()) {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
            let c = Cidr::new(IpAddr::V4((a & mask).into()), p).expect("masked");
            prop_assert!(c.contains(IpAddr::V4(a.into())));
            prop_assert_eq!(c.contains(IpAddr::V4(b.into())), (a & mask) == (b & mask));
            prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = s.parse::<Cidr>();
            let _ = UrlTemplate::parse(&s);
            let _ = RedisUrl::parse(&s);
        }
    }
}
