//! Route URLs: `http://HOST[:PORT][/PREFIX]` or `https://…`, where HOST is a
//! name, a `*.suffix` wildcard, an IPv4 literal or a bracketed IPv6 literal.
//!
//! This module only parses and matches; which app answers lives in `apps`,
//! and how routes become sites and addresses lives in `router`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::url::Scheme;

/// What a route's HOST matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// A lower-case name without trailing dot.
    Name(String),
    /// `*.example.test` stored as `.example.test`: matches any name ending
    /// with it, not the bare suffix itself.
    Wildcard(String),
    /// An address literal; matched at connect, no name involved.
    Ip(IpAddr),
    /// `localhost`: matched at connect against the loopback addresses, so the
    /// system resolver keeps answering for it.
    Localhost,
}

impl HostPattern {
    /// Whether a (normalised) name is matched by this pattern.
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            HostPattern::Name(n) => n == name,
            HostPattern::Wildcard(suffix) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
            HostPattern::Ip(_) | HostPattern::Localhost => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Wildcard(s) => write!(f, "*{s}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
            HostPattern::Localhost => f.write_str("localhost"),
        }
    }
}

/// A parsed route URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// `http` or `https`: whether the route's clients speak TLS.
    pub scheme: Scheme,
    /// What HOST the route answers for.
    pub host: HostPattern,
    /// The port given, else the scheme's.
    pub port: u16,
    /// The mount point without trailing slash: `""` for the whole site,
    /// otherwise `/api` style.
    pub prefix: String,
}

impl fmt::Display for RouteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}{}", self.scheme.as_str(), self.host, self.port, self.prefix)?;
        if self.prefix.is_empty() {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// Lower-cases a host name and drops one trailing dot, as DNS compares.
pub fn normalize_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// Parses the URL half of a route value: a URL as [`crate::url`] reads
/// every URL, with no query or fragment, a plain path as its prefix, and a
/// host that is a name, a `*.` wildcard or an address.
pub fn parse_url(url: &str) -> Result<RouteUrl, String> {
    let bad = |why: &str| format!("bad URL `{url}`: {why}");
    let parts = crate::url::parse(url).map_err(|why| match why.as_str() {
        "expected http:// or https://" => bad("expected http://HOST[:PORT][/PREFIX]"),
        _ => bad(&why),
    })?;
    if parts.query.is_some() || parts.fragment.is_some() {
        return Err(bad("a route prefix cannot have a query or fragment"));
    }
    let host = parse_host(parts.host, parts.bracketed).map_err(|why| format!("bad host in `{url}`: {why}"))?;
    let prefix = parts.path.trim_end_matches('/');
    if prefix.contains("//") || prefix.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(bad("the prefix must be a plain path"));
    }
    Ok(RouteUrl { scheme: parts.scheme, host, port: parts.port, prefix: prefix.to_string() })
}

fn parse_host(text: &str, bracketed: bool) -> Result<HostPattern, String> {
    if bracketed {
        return text.parse::<Ipv6Addr>().map(|ip| HostPattern::Ip(IpAddr::V6(ip))).map_err(|_| format!("`{text}` is not an IPv6 address"));
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    let name = normalize_name(text);
    let (wild, labels) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.is_empty() || !labels.split('.').all(label_ok) {
        return Err(format!("`{text}` is not a host name"));
    }
    if labels.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("`{text}` is not an IPv4 address"));
    }
    Ok(if wild {
        HostPattern::Wildcard(format!(".{labels}"))
    } else if name == "localhost" {
        HostPattern::Localhost
    } else {
        HostPattern::Name(name)
    })
}

/// Whether a request path lies under a mount prefix (`""` mounts everything;
/// `/api` covers `/api`, `/api/…` and `/api?…`, not `/apix`).
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ports_prefixes() {
        let u = parse_url("http://API.Example.TEST./v1/").unwrap();
        assert_eq!(u.host, HostPattern::Name("api.example.test".into()));
        assert_eq!((u.scheme, u.port, u.prefix.as_str()), (Scheme::Http, 80, "/v1"));
        let u = parse_url("https://x.test").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (443, ""));
        let u = parse_url("http://x.test:8080/").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (8080, ""));
    }

    #[test]
    fn parses_wildcards_and_literals() {
        assert_eq!(parse_url("http://*.svc.test").unwrap().host, HostPattern::Wildcard(".svc.test".into()));
        assert_eq!(parse_url("http://10.1.2.3:81").unwrap().host, HostPattern::Ip("10.1.2.3".parse().unwrap()));
        let u = parse_url("http://[::1]:81/p").unwrap();
        assert_eq!((u.host, u.port), (HostPattern::Ip("::1".parse().unwrap()), 81));
        assert_eq!(parse_url("http://LocalHost:9").unwrap().host, HostPattern::Localhost);
    }

    #[test]
    fn rejects_bad_urls() {
        for (url, why) in [
            ("ftp://x.test", "scheme"),
            ("x.test", "expected http://"),
            ("http://x.test:0", "bad port"),
            ("http://x.test:70000", "bad port"),
            ("http://x.test:8a", "bad port"),
            ("http://x.test:", "bad port"),
            ("http://", "empty"),
            ("http://bad host.test", "not a host name"),
            ("http://[::1", "unclosed"),
            ("http://[zz]", "IPv6"),
            ("http://1.2.3", "IPv4"),
            ("http://x.test/a?b", "query"),
            ("http://x.test/a/../b", "plain path"),
            ("http://u@x.test", "user info"),
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn wildcard_matching_and_prefixes() {
        let w = HostPattern::Wildcard(".svc.test".into());
        assert!(w.matches_name("a.svc.test") && w.matches_name("a.b.svc.test"));
        assert!(!w.matches_name("svc.test") && !w.matches_name("asvc.test"));
        assert!(under_prefix("/api", "/api") && under_prefix("/api/x", "/api") && under_prefix("/x", ""));
        assert!(!under_prefix("/apix", "/api"));
    }
}
