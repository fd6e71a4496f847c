//! Durations (`"500ms"`, `"2s"`, `"5m"`, `"1h"`) and percentages (`"10%"`) of the config.
//!
//! A duration is a whole number followed by exactly one unit: `ms`, `s`, `m` or `h`. No
//! spaces, no fractions, no compound forms (`"1m30s"`): write `"90s"`. `"0s"` is a valid
//! duration; keys that need a positive one say so when validated.

use std::time::Duration;

/// Parses a config duration. Returns `None` for anything but `<digits><ms|s|m|h>`, and on
/// overflow.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => None,
    }
}

/// Formats a duration the way the config writes it (the largest exact unit).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit_ms, unit) in [(3_600_000, "h"), (60_000, "m"), (1000, "s")] {
        if (ms / unit_ms) * unit_ms == ms {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

/// Parses a percentage `"0%"`..=`"100%"` (decimals allowed: `"2.5%"`) into a fraction
/// 0.0..=1.0.
pub fn parse_percent(s: &str) -> Option<f64> {
    let num = s.strip_suffix('%')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            " 1s",
            "1s ",
            "1 s",
            "1d",
            "-1s",
            "1m30s",
            "1S",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("18446744073709551615h"), None);
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("10%"), Some(0.1));
        assert_eq!(parse_percent("0%"), Some(0.0));
        assert_eq!(parse_percent("100%"), Some(1.0));
        assert_eq!(parse_percent("2.5%"), Some(0.025));
        for bad in ["10", "%", "101%", "-1%", "1e2%", "x%", "1..2%"] {
            assert_eq!(parse_percent(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn format_parse_roundtrip(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Some(d));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_percent(&s);
        }
    }
}
