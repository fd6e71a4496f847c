//! JSON shapes of the admin API, and small helpers (RFC 3339 time, percent-decoding).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::discovery::PoolHandle;

/// `POOL` of the admin API.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct PoolJson {
    /// Pool name.
    pub name: String,
    /// Strategy name.
    pub strategy: String,
    /// `static`, `file`, `dns` or `redis`.
    pub source: String,
    /// Last sync with the source, RFC 3339.
    pub last_sync: Option<String>,
    /// Members.
    pub backends: Vec<BackendJson>,
}

/// One backend of `POOL`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct BackendJson {
    /// `host:port`.
    pub addr: String,
    /// Stable id.
    pub id: String,
    /// Weight.
    pub weight: u16,
    /// `up`, `down`, `draining` or `ejected`.
    pub state: String,
    /// Requests in flight.
    pub active: u64,
    /// Backup flag.
    pub backup: bool,
}

/// Body of `POST .../backends`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddBackend {
    pub addr: String,
    #[serde(default = "one")]
    pub weight: u32,
    pub id: Option<String>,
    #[serde(default)]
    pub backup: bool,
}

fn one() -> u32 {
    1
}

/// Body of `PATCH .../backends/{addr}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBackend {
    pub weight: Option<u32>,
    pub state: Option<String>,
}

pub(crate) fn pool_json(name: &str, h: &PoolHandle) -> PoolJson {
    let snap = h.pool.snapshot();
    let now = clock::now_nanos();
    PoolJson {
        name: name.to_owned(),
        strategy: h.pool.settings().strategy.as_str().to_owned(),
        source: h.source.kind().as_str().to_owned(),
        last_sync: h.source.last_sync().map(rfc3339),
        backends: snap
            .members()
            .iter()
            .map(|m| BackendJson {
                addr: m.backend().addr().to_string(),
                id: m.backend().id().to_owned(),
                weight: m.backend().weight(),
                state: m.status(now).as_str().to_owned(),
                active: m.state().active(),
                backup: m.backend().is_backup(),
            })
            .collect(),
    }
}

/// Formats a time as RFC 3339 UTC with second precision.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Decodes `%XX` escapes; `None` on a bad escape or non-UTF-8 result.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("%5B%3A%3A1%5D%3A80").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(
            percent_decode("127.0.0.1:80").as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
