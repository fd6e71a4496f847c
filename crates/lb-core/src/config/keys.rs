//! The keys the config file accepts, per table, read from the file model itself: every
//! table of [`file`](super::file) is a serde struct that denies unknown keys, and serde's
//! derive hands its field list to the deserializer. Asking each struct for that list gives
//! exactly the keys the parser accepts, with no second list to keep in step. The config
//! reference test (`tests/config_reference.rs`) checks docs/config.md against it.

use serde::de::{self, Deserialize, Visitor};

use super::file::{
    FileAdmin, FileBackendTable, FileCertKey, FileConfig, FileDiscovery, FileHealth, FileListener,
    FileListenerTls, FileLog, FileOutlier, FilePool, FileRateLimit, FileResolver, FileRetryBudget,
    FileRoute, FileSticky, FileUpstreamTls,
};

/// One table of the config file and the keys it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTable {
    /// Where the table is, as docs/config.md's headings write it: `""` for the top level,
    /// `"admin"`, `"listener"`, `"pool.NAME"`, `"pool.NAME.health"`, `"route"`,
    /// `"resolver.NAME"`; an inline table adds its key (`"pool.NAME.outlier"`,
    /// `"listener.tls"`), and the items of a list of tables add theirs
    /// (`"pool.NAME.backends"`, `"listener.tls.certs"`).
    pub table: &'static str,
    /// The keys it accepts, in the model's order.
    pub keys: &'static [&'static str],
}

/// Every table of the config file with the keys it accepts (both binaries together: which
/// keys belong to one binary only is checked at validation, not by the parser).
///
/// A new table struct in `file.rs` (a section or an inline table) needs its line here; a
/// new field of a listed struct is picked up by itself.
pub fn known_keys() -> Vec<KeyTable> {
    let t = |table, keys| KeyTable { table, keys };
    vec![
        t("", fields_of::<FileConfig>()),
        t("admin", fields_of::<FileAdmin>()),
        t("admin.tls", fields_of::<FileListenerTls>()),
        t("log", fields_of::<FileLog>()),
        t("listener", fields_of::<FileListener>()),
        t("listener.tls", fields_of::<FileListenerTls>()),
        t("listener.tls.certs", fields_of::<FileCertKey>()),
        t("pool.NAME", fields_of::<FilePool>()),
        t("pool.NAME.backends", fields_of::<FileBackendTable>()),
        t("pool.NAME.discovery", fields_of::<FileDiscovery>()),
        t("pool.NAME.retry_budget", fields_of::<FileRetryBudget>()),
        t("pool.NAME.outlier", fields_of::<FileOutlier>()),
        t("pool.NAME.sticky", fields_of::<FileSticky>()),
        t("pool.NAME.tls", fields_of::<FileUpstreamTls>()),
        t("pool.NAME.health", fields_of::<FileHealth>()),
        t("route", fields_of::<FileRoute>()),
        t("route.rate_limit", fields_of::<FileRateLimit>()),
        t("resolver.NAME", fields_of::<FileResolver>()),
    ]
}

/// The field names serde's derive gives the deserializer for `T` (a struct).
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut grab = FieldGrabber(&[]);
    // The grabber answers every request with an error once it has the list: the outcome
    // is always `Err`, and only the captured list matters.
    let _ = T::deserialize(&mut grab);
    grab.0
}

/// A deserializer that records the field list of the struct asked of it and fails.
struct FieldGrabber(&'static [&'static str]);

#[derive(Debug)]
struct Grabbed;

impl std::fmt::Display for Grabbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field list grabbed")
    }
}

impl std::error::Error for Grabbed {}

impl de::Error for Grabbed {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Grabbed
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldGrabber {
    type Error = Grabbed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Grabbed> {
        Err(Grabbed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Grabbed> {
        self.0 = fields;
        Err(Grabbed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_lists_the_fields_of_its_struct() {
        let all = known_keys();
        assert!(all.iter().all(|t| !t.keys.is_empty()), "{all:?}");
        let admin = all.iter().find(|t| t.table == "admin").expect("admin");
        assert!(admin.keys.starts_with(&["listen", "token"]), "{admin:?}");
        let top = all.iter().find(|t| t.table.is_empty()).expect("top level");
        assert!(
            top.keys.contains(&"threads") && top.keys.contains(&"pool"),
            "{top:?}"
        );
    }
}
