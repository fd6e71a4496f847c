//! [`StaticResolver`]: a fixed map from name to endpoints, e.g. `[resolver.X] kind = "static"`.
//!
//! Answers are immediate and never fail; a name not in the map is
//! [`Resolution::NotFound`]. Wrapping it in [`Cached`](super::Cached) is pointless.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{BoxFuture, Resolution, ResolveError, Resolver};

/// A fixed name → endpoints map.
///
/// ```
/// use lb_core::resolve::{Resolution, Resolver, StaticResolver};
///
/// let r = StaticResolver::new([("a.example".to_string(), vec!["127.0.0.1:9001".parse().unwrap()])]);
/// assert!(matches!(r.get("a.example"), Resolution::Found(eps) if eps.len() == 1));
/// assert_eq!(r.get("b.example"), Resolution::NotFound);
/// ```
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    map: HashMap<String, Resolution>,
}

impl StaticResolver {
    /// Builds the map. Names are lower-cased with any trailing dot removed (lookups
    /// arrive normalised the same way); a name with an empty endpoint list is left out,
    /// so it resolves to [`Resolution::NotFound`]. A repeated name keeps the last list.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<SocketAddr>)>) -> Self {
        let map = entries
            .into_iter()
            .filter(|(_, eps)| !eps.is_empty())
            .map(|(name, eps)| (normalise(&name), Resolution::Found(Arc::from(eps))))
            .collect();
        StaticResolver { map }
    }

    /// Builds the map from answers of any kind (endpoints, or a pool by name as
    /// `map = { "name" = "pool:pod0" }` gives). Names are normalised as in
    /// [`new`](Self::new); `NotFound` answers and empty endpoint lists are left out.
    ///
    /// ```
    /// use lb_core::resolve::{Resolution, StaticResolver};
    ///
    /// let r = StaticResolver::from_answers([("a.example".to_string(), Resolution::Pool("pod0".into()))]);
    /// assert_eq!(r.get("a.example"), Resolution::Pool("pod0".into()));
    /// ```
    pub fn from_answers(entries: impl IntoIterator<Item = (String, Resolution)>) -> Self {
        let map = entries
            .into_iter()
            .filter(|(_, r)| match r {
                Resolution::Found(eps) => !eps.is_empty(),
                Resolution::NotFound => false,
                _ => true,
            })
            .map(|(name, r)| (normalise(&name), r))
            .collect();
        StaticResolver { map }
    }

    /// The answer for `name`, synchronously.
    pub fn get(&self, name: &str) -> Resolution {
        self.map.get(name).cloned().unwrap_or(Resolution::NotFound)
    }

    /// Number of names in the map.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the map holds no names.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        let answer = self.get(name);
        Box::pin(async move { Ok(answer) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn found_not_found_and_normalised_keys() {
        let r = StaticResolver::new([
            (
                "A.Example.".to_string(),
                vec![addr("127.0.0.1:1"), addr("[::1]:2")],
            ),
            ("empty".to_string(), vec![]),
        ]);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.get("a.example"),
            Resolution::Found(Arc::from(vec![addr("127.0.0.1:1"), addr("[::1]:2")]))
        );
        assert_eq!(r.get("empty"), Resolution::NotFound);
        assert_eq!(r.get("other"), Resolution::NotFound);
    }

    #[tokio::test]
    async fn resolver_trait() {
        let r = StaticResolver::new([("x".to_string(), vec![addr("127.0.0.1:9")])]);
        let dynr: Box<dyn Resolver> = Box::new(r);
        assert!(
            matches!(dynr.resolve("x").await, Ok(Resolution::Found(e)) if e[0] == addr("127.0.0.1:9"))
        );
        assert_eq!(dynr.resolve("y").await, Ok(Resolution::NotFound));
    }
}
