//! URLs and authorities: the one reading of `scheme://host[:port][/path]
//! [?query][#fragment]` and of `host:port` that routes, upstreams (a
//! stub's `proxyBaseUrl`), `forward:` and `tunnel:` targets, recorded
//! entries, request targets and `verify` share, so that they cannot
//! disagree about what a URL says.
//!
//! The rules: the scheme is `http` or `https`, in any case (RFC 3986
//! §3.1); the host is a name, an IPv4 address or an IPv6 address in
//! brackets, never empty; a port is 1 to 65535 written in digits only (no
//! sign, no `0`); user info (`user@`) is refused, as no client we serve
//! needs it and it would hide the host from a reader.

use std::borrow::Cow;
use std::fmt;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`: plain TCP.
    Http,
    /// `https`: HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme means when it names none: 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// Whether the scheme runs over TLS (`https`).
    pub fn is_tls(self) -> bool {
        self == Scheme::Https
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An absolute URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    /// `http` or `https`, written in any case.
    pub scheme: Scheme,
    /// Without brackets: `::1` for `[::1]`.
    pub host: &'a str,
    /// Whether the host was written in brackets (an IPv6 address).
    pub bracketed: bool,
    /// The port given, else the scheme's.
    pub port: u16,
    /// The path as written, percent-encoded; `""` when there is none.
    pub path: &'a str,
    /// What follows `?`, as written; None without a `?`.
    pub query: Option<&'a str>,
    /// What follows `#`, as written; None without a `#`.
    pub fragment: Option<&'a str>,
}

/// Splits an absolute `http` or `https` URL. The error says what is wrong,
/// without the URL (callers name it as they quote it).
pub fn parse(url: &str) -> Result<Url<'_>, String> {
    let (scheme, rest) = url.split_once("://").ok_or("expected http:// or https://")?;
    let scheme = match scheme {
        s if s.eq_ignore_ascii_case("http") => Scheme::Http,
        s if s.eq_ignore_ascii_case("https") => Scheme::Https,
        s => return Err(format!("scheme `{s}` is not http or https")),
    };
    let (rest, fragment) = rest.split_once('#').map_or((rest, None), |(r, f)| (r, Some(f)));
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, bracketed, port) = split_authority(authority)?;
    Ok(Url { scheme, host, bracketed, port: port.unwrap_or(scheme.default_port()), path, query, fragment })
}

/// `host:port` (`[v6]:port`), both required.
pub fn host_and_port(text: &str) -> Result<(&str, u16), String> {
    match split_authority(text)? {
        (host, _, Some(port)) => Ok((host, port)),
        (_, _, None) => Err("expected HOST:PORT".into()),
    }
}

/// `host[:port]` or `[v6][:port]`: the host without brackets, whether it
/// had them, and the port if one is written.
fn split_authority(authority: &str) -> Result<(&str, bool, Option<u16>), String> {
    if authority.contains('@') {
        return Err("user info (`user@`) is not allowed".into());
    }
    let (host, bracketed, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
            match after {
                "" => (host, true, None),
                _ => (host, true, Some(after.strip_prefix(':').ok_or_else(|| format!("unexpected `{after}` after the host"))?)),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, false, Some(p)),
            None => (authority, false, None),
        },
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    Ok((host, bracketed, port.map(port_number).transpose()?))
}

/// A port: 1 to 65535, digits only.
fn port_number(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("bad port `{text}`: expected a number from 1 to 65535")),
    }
}

/// `host[:port]` as a URL or `Host` header writes it: an IPv6 host in
/// brackets, the port only when not the scheme's.
pub fn authority(host: &str, port: u16, scheme: Scheme) -> String {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    if port == scheme.default_port() { host } else { format!("{host}:{port}") }
}

/// A request target's path and query: a target in origin form (`/p?q`)
/// as it is; an absolute URL (from a client that takes us for a proxy, or
/// a journal's `url`) without its scheme, authority and fragment. The
/// path is `/` when an absolute URL has none.
pub fn target_parts(target: &str) -> (&str, Option<&str>) {
    // Origin form, the usual one, needs no search for a scheme.
    let absolute = if target.starts_with('/') { None } else { target.split_once("://") };
    let rest = match absolute {
        Some((_, rest)) => {
            let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
            rest.find(['/', '?']).map_or("", |i| &rest[i..])
        }
        None => target,
    };
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    (if path.is_empty() { "/" } else { path }, query)
}

/// [`target_parts`] joined again: `/p?q`.
pub fn origin_form(target: &str) -> Cow<'_, str> {
    match target_parts(target) {
        (path, None) => Cow::Borrowed(path),
        (path, Some(query)) if target.starts_with('/') => Cow::Borrowed(&target[..path.len() + 1 + query.len()]),
        (path, Some(query)) => Cow::Owned(format!("{path}?{query}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        let u = parse("HTTPS://API.example.test:8443/v1/items?b=2&a=1#top").unwrap();
        assert_eq!(
            (u.scheme, u.host, u.port, u.path, u.query, u.fragment),
            (Scheme::Https, "API.example.test", 8443, "/v1/items", Some("b=2&a=1"), Some("top"))
        );
        let u = parse("http://[::1]").unwrap();
        assert_eq!((u.host, u.bracketed, u.port, u.path, u.query), ("::1", true, 80, "", None));
        let u = parse("http://a.test?x").unwrap();
        assert_eq!((u.host, u.path, u.query), ("a.test", "", Some("x")));
        assert_eq!(parse("https://a.test/").unwrap().port, 443);
    }

    #[test]
    fn one_set_of_rules_refuses_the_same_urls() {
        for (url, why) in [
            ("ftp://x.test", "scheme `ftp`"),
            ("x.test", "expected http://"),
            ("http://x.test:0", "bad port `0`"),
            ("http://x.test:+80", "bad port `+80`"),
            ("http://x.test:70000", "bad port"),
            ("http://x.test:", "bad port ``"),
            ("http://", "the host is empty"),
            ("http://:80", "the host is empty"),
            ("http://[::1", "unclosed"),
            ("http://[::1]x", "unexpected `x`"),
            ("http://u@x.test", "user info"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn host_and_port_need_both() {
        assert_eq!(host_and_port("api.test:8080").unwrap(), ("api.test", 8080));
        assert_eq!(host_and_port("[::1]:81").unwrap(), ("::1", 81));
        for bad in ["api.test", "api.test:0", ":80", "[::1]", "api.test:+80"] {
            assert!(host_and_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorities_are_written_as_urls_write_them() {
        assert_eq!(authority("a.test", 80, Scheme::Http), "a.test");
        assert_eq!(authority("a.test", 80, Scheme::Https), "a.test:80");
        assert_eq!(authority("::1", 443, Scheme::Https), "[::1]");
        assert_eq!(authority("::1", 8443, Scheme::Https), "[::1]:8443");
    }

    #[test]
    fn targets_in_either_form_give_their_path_and_query() {
        assert_eq!(target_parts("/a?b=1"), ("/a", Some("b=1")));
        assert_eq!(target_parts("/a"), ("/a", None));
        assert_eq!(target_parts("https://h.test:8443/a/b?c#d"), ("/a/b", Some("c")));
        assert_eq!(target_parts("http://h.test#d"), ("/", None));
        assert_eq!(origin_form("/a?b"), "/a?b");
        assert_eq!(origin_form("http://h.test/a?b"), "/a?b");
        assert_eq!(origin_form("http://h.test"), "/");
        assert_eq!(origin_form("http://h.test?q=1"), "/?q=1");
        assert_eq!(origin_form("*"), "*");
    }
}
