//! Active health check settings of one pool (`[pool.X.health]`), as plain runtime types.
//!
//! The TOML model lives in the config module, which validates the file and builds these.
//! Defaults follow the spec: no checks (`kind = "none"`), path `/`, expected status 200,
//! the backend's own port, every 2 s ± 10 %, 1 s timeout, up after 2 successes, down after
//! 3 failures, new backends start up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What a probe does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CheckKind {
    /// No active checks: backends keep their initial health (passive ejection still works).
    #[default]
    None,
    /// A TCP connect: up when the connection is accepted.
    Tcp,
    /// `GET path` over HTTP/1.1 on a fresh connection: up when the status is `expect`.
    Http {
        /// Request path (default `/`).
        path: String,
        /// Expected status (default 200).
        expect: u16,
    },
    /// Like [`Http`](CheckKind::Http) over TLS.
    Https {
        /// Request path (default `/`).
        path: String,
        /// Expected status (default 200).
        expect: u16,
        /// Server name to send and verify (and the `Host` header); default: the backend's IP.
        sni: Option<String>,
        /// Verify the certificate chain and name (default true); false accepts any
        /// certificate but still checks the handshake signatures.
        verify: bool,
        /// PEM file of trusted roots; without it the system bundle is used.
        ca: Option<PathBuf>,
    },
}

impl CheckKind {
    /// `GET /` expecting 200 over HTTP.
    pub fn http() -> CheckKind {
        CheckKind::Http {
            path: "/".to_owned(),
            expect: 200,
        }
    }

    /// `GET /` expecting 200 over HTTPS, verifying against the system roots.
    pub fn https() -> CheckKind {
        CheckKind::Https {
            path: "/".to_owned(),
            expect: 200,
            sni: None,
            verify: true,
            ca: None,
        }
    }

    /// `none`, `tcp`, `http` or `https`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::None => "none",
            CheckKind::Tcp => "tcp",
            CheckKind::Http { .. } => "http",
            CheckKind::Https { .. } => "https",
        }
    }
}

/// Active health checking of one pool.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HealthSettings {
    /// The probe. Default [`CheckKind::None`].
    pub kind: CheckKind,
    /// Port to probe instead of the backend's own (default: the backend's port).
    pub port: Option<u16>,
    /// Time between the starts of two probes of one backend. Default 2 s.
    pub interval: Duration,
    /// Bound on one whole probe (connect, handshake, request, response head). Default 1 s.
    pub timeout: Duration,
    /// Successes in a row to go up. Default 2.
    pub rise: u32,
    /// Failures in a row to go down. Default 3.
    pub fall: u32,
    /// Random spread of each interval, as a fraction of it (0.0–1.0). Default 0.10.
    pub jitter: f64,
    /// Health of a backend before its first checks (`initial = "up"`). Default true.
    pub initial_up: bool,
    /// How probes connect and which HTTP they speak (a PROXY header first, HTTP/2).
    /// Default: plain TCP, HTTP/1.1.
    pub probe: ProbeOptions,
}

/// How a probe talks to a backend, beyond its kind: what the pool's traffic looks like,
/// so a backend that insists on it does not fail its checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// Start every probe connection with a PROXY header of this version naming the probe's
    /// own connection (as HAProxy's `check-send-proxy`): backends that expect one from the
    /// balancer refuse connections without it. Default none.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
    /// HTTP and HTTPS probes speak HTTP/2 (prior knowledge on cleartext, ALPN `h2` over
    /// TLS), for backends that speak nothing else. Default false (HTTP/1.1).
    pub http2: bool,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            kind: CheckKind::None,
            port: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            jitter: 0.10,
            initial_up: true,
            probe: ProbeOptions::default(),
        }
    }
}

impl HealthSettings {
    /// Settings with this probe and every other value at its default.
    pub fn new(kind: CheckKind) -> HealthSettings {
        HealthSettings {
            kind,
            ..HealthSettings::default()
        }
    }

    /// These settings probing every `interval`, each probe bounded by `timeout`.
    pub fn with_timing(mut self, interval: Duration, timeout: Duration) -> HealthSettings {
        self.interval = interval;
        self.timeout = timeout;
        self
    }

    /// These settings taking a backend up after `rise` good probes in a row and down after
    /// `fall` failed ones.
    pub fn with_rise_fall(mut self, rise: u32, fall: u32) -> HealthSettings {
        self.rise = rise;
        self.fall = fall;
        self
    }

    /// True when probes run (`kind` is not `none`).
    pub fn enabled(&self) -> bool {
        self.kind != CheckKind::None
    }

    /// Where to probe a backend at `addr`: its address, with `port` if set.
    pub fn probe_addr(&self, addr: SocketAddr) -> SocketAddr {
        match self.port {
            Some(port) => SocketAddr::new(addr.ip(), port),
            None => addr,
        }
    }

    /// One interval spread by the jitter: `interval × (1 + jitter × u)` with `u` uniform in
    /// [-1, 1) drawn from the random word `random`. The jitter is clamped to 0.0–1.0.
    pub fn jittered_interval(&self, random: u64) -> Duration {
        self.interval
            .mul_f64(1.0 + self.jitter_fraction() * unit(random))
    }

    /// Delay before a backend's first probe: uniform in [0, jitter × interval), so the
    /// first check is prompt and backends added together are not all probed at once.
    pub fn first_delay(&self, random: u64) -> Duration {
        self.interval
            .mul_f64(self.jitter_fraction() * (unit(random) + 1.0) / 2.0)
    }

    /// The worst time a backend that stops answering stays in rotation: `fall × interval +
    /// interval + timeout`, with every interval stretched by the jitter (the spec's bound).
    pub fn detection_bound(&self) -> Duration {
        let stretched = self.interval.mul_f64(1.0 + self.jitter_fraction());
        stretched * self.fall.max(1) + stretched + self.timeout
    }

    fn jitter_fraction(&self) -> f64 {
        if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Maps a random word to [-1, 1) using its top 53 bits.
fn unit(random: u64) -> f64 {
    let frac = (random >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    frac * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_follow_the_spec() {
        let s = HealthSettings::default();
        assert_eq!(s.kind, CheckKind::None);
        assert!(!s.enabled());
        assert_eq!(s.port, None);
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.rise, s.fall), (2, 3));
        assert!((s.jitter - 0.10).abs() < 1e-12);
        assert!(s.initial_up);
        assert_eq!(
            CheckKind::http(),
            CheckKind::Http {
                path: "/".into(),
                expect: 200
            }
        );
        match CheckKind::https() {
            CheckKind::Https {
                path,
                expect,
                sni,
                verify,
                ca,
            } => {
                assert_eq!(
                    (path.as_str(), expect, sni, verify, ca),
                    ("/", 200, None, true, None)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn port_override() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut s = HealthSettings::new(CheckKind::Tcp);
        assert_eq!(s.probe_addr(addr), addr);
        s.port = Some(9090);
        assert_eq!(s.probe_addr(addr), "127.0.0.1:9090".parse().unwrap());
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(s.probe_addr(v6), "[::1]:9090".parse().unwrap());
    }

    #[test]
    fn jitter_extremes() {
        let s = HealthSettings::default();
        assert_eq!(s.jittered_interval(1u64 << 63), s.interval); // u = 0
        let lo = s.jittered_interval(0);
        assert_eq!(lo, Duration::from_millis(1800));
        let hi = s.jittered_interval(u64::MAX);
        assert!(hi <= Duration::from_millis(2200) && hi > Duration::from_millis(2199));
        let none = HealthSettings {
            jitter: 0.0,
            ..s.clone()
        };
        assert_eq!(none.jittered_interval(12345), none.interval);
        assert_eq!(none.first_delay(u64::MAX), Duration::ZERO);
        let wild = HealthSettings {
            jitter: f64::NAN,
            ..s
        };
        assert_eq!(wild.jittered_interval(0), wild.interval);
    }

    #[test]
    fn detection_bound_is_the_spec_formula() {
        let s = HealthSettings {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(50),
            jitter: 0.0,
            ..HealthSettings::default()
        };
        assert_eq!(s.detection_bound(), Duration::from_millis(450));
    }

    proptest! {
        #[test]
        fn jitter_stays_in_bounds(random: u64, jitter in 0.0f64..=1.0, ms in 1u64..100_000) {
            let s = HealthSettings {
                interval: Duration::from_millis(ms),
                jitter,
                ..HealthSettings::default()
            };
            let d = s.jittered_interval(random).as_secs_f64();
            let i = s.interval.as_secs_f64();
            prop_assert!(d >= i * (1.0 - jitter) - 1e-9);
            prop_assert!(d <= i * (1.0 + jitter) + 1e-9);
            let f = s.first_delay(random).as_secs_f64();
            prop_assert!(f >= 0.0 && f <= i * jitter + 1e-9);
        }
    }
}
