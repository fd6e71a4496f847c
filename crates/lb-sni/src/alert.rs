//! Plaintext TLS alert records lb-sni sends before closing a connection it cannot route.
//!
//! lb-sni never terminates TLS, so when it refuses a connection it answers the ClientHello
//! with an unencrypted alert (allowed before the handshake is done, RFC 8446 §6): a TLS
//! record of content type 21 (alert), version `0x0303`, length 2, then the alert level
//! (2 = fatal) and its description. Clients report these as e.g.
//! `tlsv1 unrecognized name` instead of a bare connection reset.
//!
//! ```
//! assert_eq!(lb_sni::alert::unrecognized_name_alert(), [21, 3, 3, 0, 2, 2, 112]);
//! ```

/// Content type of an alert record.
pub const CONTENT_TYPE_ALERT: u8 = 21;
/// Alert level `fatal`.
pub const LEVEL_FATAL: u8 = 2;
/// Alert description `unrecognized_name` (RFC 6066 §3).
pub const UNRECOGNIZED_NAME: u8 = 112;
/// Alert description `internal_error` (RFC 8446 §6.2).
pub const INTERNAL_ERROR: u8 = 80;

/// A fatal alert record with the given description.
pub const fn fatal_alert(description: u8) -> [u8; 7] {
    [
        CONTENT_TYPE_ALERT,
        0x03,
        0x03,
        0x00,
        0x02,
        LEVEL_FATAL,
        description,
    ]
}

/// The fatal `unrecognized_name` alert: no route for the SNI (or no SNI and no `*` route),
/// or a name that is not a valid DNS name.
pub const fn unrecognized_name_alert() -> [u8; 7] {
    fatal_alert(UNRECOGNIZED_NAME)
}

/// The fatal `internal_error` alert: a route exists but no healthy backend could take
/// the connection.
pub const fn internal_error_alert() -> [u8; 7] {
    fatal_alert(INTERNAL_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_records_are_well_formed() {
        for (record, description) in [
            (unrecognized_name_alert(), 112),
            (internal_error_alert(), 80),
        ] {
            assert_eq!(record[0], 21, "content type alert");
            assert_eq!(&record[1..3], &[0x03, 0x03], "record version TLS 1.2");
            assert_eq!(u16::from_be_bytes([record[3], record[4]]), 2, "length");
            assert_eq!(record[5], 2, "level fatal");
            assert_eq!(record[6], description);
        }
        assert_eq!(
            unrecognized_name_alert(),
            [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]
        );
        assert_eq!(
            internal_error_alert(),
            [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]
        );
    }
}
