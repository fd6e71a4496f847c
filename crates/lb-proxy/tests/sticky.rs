//! Sticky sessions (`sticky = { cookie }`) across two proxy instances: the cookie names a
//! backend by a hash of its id, every instance maps it the same way, and a drained,
//! removed or unreachable backend gives way to another with a new cookie.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::*;

const TOKEN: &str = "s3cret";

async fn start(b: &[&Backend]) -> Proxy {
    let list: Vec<String> = b
        .iter()
        .map(|x| format!("{{ addr = \"{}\", id = \"web-{}\" }}", x.addr, x.name))
        .collect();
    proxy_text(&format!(
        "{}[pool.web]\nstrategy = \"round-robin\"\nbackends = [{}]\n\
         sticky = {{ cookie = \"lb_sticky\" }}\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(Some(TOKEN)),
        list.join(", ")
    ))
    .await
}

fn enc(addr: SocketAddr) -> String {
    addr.to_string().replace(':', "%3A")
}

/// The `lb_sticky` value of a response's Set-Cookie, checking its attributes.
fn set_cookie(r: &Resp) -> Option<String> {
    let v = r.header("set-cookie");
    if v.is_empty() {
        return None;
    }
    let (pair, attrs) = v.split_once(';').expect("attributes");
    assert_eq!(attrs, " Path=/; HttpOnly", "{v}");
    let value = pair.strip_prefix("lb_sticky=").expect("the pool's cookie");
    assert_eq!(value.len(), 16, "{v}");
    assert!(
        value
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "{v}"
    );
    Some(value.to_owned())
}

async fn with_cookie(p: &Proxy, cookie: &str) -> Resp {
    get_h(p.addr, "web.test", "/", &[("cookie", cookie)]).await
}

#[allow(clippy::too_many_lines)] // one scenario, step by step: split, its steps would lose their order
#[tokio::test]
async fn a_cookie_pins_a_backend_on_every_instance_until_it_goes() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let one = start(&refs).await;
    let two = start(&refs).await;

    // No cookie: picked as usual, and told where it went.
    let first = get(one.addr, "web.test", "/").await;
    assert_eq!(first.status, 200);
    let pinned = first.text();
    let cookie = set_cookie(&first).expect("a new cookie");
    let pinned_addr = backends
        .iter()
        .find(|b| b.name == pinned)
        .expect("a backend")
        .addr;
    for part in [
        pinned_addr.to_string(),
        pinned_addr.ip().to_string(),
        pinned_addr.port().to_string(),
    ] {
        assert!(!cookie.contains(&part), "{cookie} reveals {part}");
    }

    // The other instance maps the same cookie to the same backend, and 50 requests with
    // it all land there (round-robin would spread them), with no new cookie.
    let c = format!("lb_sticky={cookie}");
    for i in 0..50 {
        let p = if i % 2 == 0 { &two } else { &one };
        let r = with_cookie(p, &c).await;
        assert_eq!((r.status, r.text()), (200, pinned.clone()));
        assert_eq!(set_cookie(&r), None);
    }
    // Among other cookies, in a second Cookie header, with odd spacing.
    let r = get_h(
        two.addr,
        "web.test",
        "/",
        &[("cookie", "a=1"), ("cookie", "x=y;  lb_sticky = ")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get_h(
        two.addr,
        "web.test",
        "/",
        &[
            ("cookie", "a=1"),
            (
                "cookie",
                &format!("session=s1;  lb_sticky={cookie} ;theme=dark"),
            ),
        ],
    )
    .await;
    assert_eq!(r.text(), pinned);
    assert_eq!(set_cookie(&r), None);

    // Garbage is ignored: a normal pick and a fresh cookie.
    for junk in [
        "lb_sticky=zzz",
        "lb_sticky=0123456789ABCDEF",
        "lb_sticky=127.0.0.1:80",
        "lb_sticky=ffffffffffffffff",
    ] {
        let r = with_cookie(&one, junk).await;
        assert_eq!(r.status, 200, "{junk}");
        let fresh = set_cookie(&r).expect("a fresh cookie");
        let named = backends
            .iter()
            .find(|b| b.name == r.text())
            .expect("a backend");
        // The fresh cookie pins where the response came from.
        let again = with_cookie(&two, &format!("lb_sticky={fresh}")).await;
        assert_eq!(again.text(), named.name, "{junk}");
    }

    // Drained on instance one: the cookie is no longer honoured there; the request goes
    // elsewhere and gets a new cookie, which then sticks.
    let r = admin(
        one.admin,
        "POST",
        &format!("/api/v1/pools/web/backends/{}/drain", enc(pinned_addr)),
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = with_cookie(&one, &c).await;
    assert_eq!(r.status, 200);
    let moved_to = r.text();
    assert_ne!(moved_to, pinned);
    let new_cookie = set_cookie(&r).expect("a new cookie");
    assert_ne!(new_cookie, cookie);
    let nc = format!("lb_sticky={new_cookie}");
    for _ in 0..10 {
        let r = with_cookie(&one, &nc).await;
        assert_eq!(r.text(), moved_to);
        assert_eq!(set_cookie(&r), None);
    }

    // Removed on instance two: the same.
    let r = admin(
        two.admin,
        "DELETE",
        &format!("/api/v1/pools/web/backends/{}", enc(pinned_addr)),
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = with_cookie(&two, &c).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.text(), pinned);
    assert!(set_cookie(&r).is_some());

    // Unreachable (killed, and no health check has noticed): connecting fails, the request
    // falls back to the preference order and gets the cookie of where it went.
    let victim = backends
        .iter()
        .find(|b| b.name == moved_to)
        .expect("a backend");
    victim.kill();
    let before: usize = backends.iter().map(Backend::count).sum();
    let r = with_cookie(&one, &nc).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let landed = r.text();
    assert!(landed != moved_to && landed != pinned, "{landed}");
    let last = set_cookie(&r).expect("a new cookie");
    let seen: HashSet<&String> = [&cookie, &new_cookie, &last].into_iter().collect();
    assert_eq!(seen.len(), 3, "one cookie value per backend");
    assert_eq!(
        backends.iter().map(Backend::count).sum::<usize>(),
        before + 1
    );
}

#[tokio::test]
async fn pools_without_sticky_set_no_cookie() {
    let a = Backend::start("a").await;
    let p = proxy(&format!(
        "[pool.web]\nbackends = [\"{}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        a.addr
    ))
    .await;
    let r = get_h(
        p.addr,
        "web.test",
        "/",
        &[("cookie", "lb_sticky=0000000000000000")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("set-cookie"), "");
}
