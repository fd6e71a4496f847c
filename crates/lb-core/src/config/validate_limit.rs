//! Validation of `[[route]] rate_limit = { key, rate, burst, max_keys }` (lb-proxy).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use super::error::{KeyPath, Problem};
use super::file::FileRateLimit;
use super::pool::KeySpec;
use super::types::RateLimitConfig;
use super::validate::Checker;
use super::validate_pool::key_spec;

/// The default of `max_keys`.
pub(super) const DEFAULT_MAX_KEYS: usize = 100_000;

/// `rate = "COUNT/s"` or `"COUNT/m"`: requests per period.
pub(crate) fn parse_rate(s: &str) -> Option<(NonZeroU32, Duration)> {
    let (count, per) = s.trim().split_once('/')?;
    let per = match per.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        _ => return None,
    };
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count = count.parse::<u32>().ok().and_then(NonZeroU32::new)?;
    // One request per nanosecond at most: the emission interval must not be zero.
    (per.as_nanos() >= u128::from(count.get())).then_some((count, per))
}

pub(crate) fn rate_limit(
    c: &mut Checker<'_>,
    key: &KeyPath,
    r: FileRateLimit,
) -> Option<RateLimitConfig> {
    let spec = match &r.key {
        Some(s) => key_spec(c, &key.key("key"), s),
        None => KeySpec::ClientIp,
    };
    let rate = parse_rate(&r.rate);
    if rate.is_none() {
        c.fail(key.key("rate"), Problem::BadRate(r.rate.clone()));
    }
    let (count, per) = rate?;
    // One period's worth, as requests per second, at least 1.
    let per_second = u64::from(count.get()) / per.as_secs().max(1);
    let default_burst = i64::try_from(per_second.max(1)).unwrap_or(1);
    let burst: u32 = c.num(
        &key.key("burst"),
        r.burst,
        u32::try_from(default_burst).unwrap_or(1),
        (1, 1_000_000_000),
        "1 to 1000000000 (requests a key may send at once)",
    );
    let max_keys: usize = c.num(
        &key.key("max_keys"),
        r.max_keys,
        DEFAULT_MAX_KEYS,
        (1, 100_000_000),
        "1 to 100000000",
    );
    Some(RateLimitConfig {
        key: spec,
        count,
        per,
        burst: NonZeroU32::new(burst)?,
        max_keys: NonZeroUsize::new(max_keys)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let ok = |s: &str| parse_rate(s).map(|(c, p)| (c.get(), p.as_secs()));
        assert_eq!(ok("100/s"), Some((100, 1)));
        assert_eq!(ok("600/m"), Some((600, 60)));
        assert_eq!(ok(" 1 / s "), Some((1, 1)));
        for bad in [
            "",
            "100",
            "0/s",
            "-1/s",
            "+1/s",
            "1.5/s",
            "10/h",
            "10/",
            "/s",
            "abc/s",
            "99999999999/s",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
