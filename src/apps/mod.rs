//! Apps: what answers a request once the dispatcher has framed it. What
//! an app is lives in [`app`]; each kind of app in a module of its own;
//! app specs from the env file (`echo`, `static:…`) are parsed and built
//! here.

pub mod app;
pub mod cgi;
pub mod dylib;
mod echo;
mod files;
mod fixed;
pub mod forward;
pub mod har;
pub mod origin;
pub mod stubs;
pub mod wsgi;

use std::path::{Path, PathBuf};

pub use app::{App, Body, Duplex, Opener, Request, Response, Upgraded, Wait, content_type, discard, query_pairs, wait_readable};
pub use fixed::StaticBody;

/// A parsed app spec from a route value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSpec {
    /// `echo`: answers with a JSON description of the request (and echoes WebSocket messages).
    Echo,
    /// `static:STATUS [BODY]`: the same answer to every request.
    Static {
        /// The status code, 100 to 599.
        status: u16,
        /// The body: text, or `@FILE`.
        body: StaticBody,
    },
    /// `cgi:…`: a CGI program run per request.
    Cgi(cgi::CgiSpec),
    /// A canonical directory.
    Files(PathBuf),
    /// Not an HTTP app: the router hands the whole connection over
    /// (`forward:` or `tunnel:`).
    Forward(crate::apps::forward::Relay),
    /// `dylib:PATH[#SYMBOL]`: a native app in a shared library.
    Dylib(crate::apps::dylib::DylibSpec),
    /// `wsgi:MODULE:CALLABLE`: a Python WSGI app.
    Wsgi(wsgi::WsgiSpec),
    /// A directory of WireMock stub mappings.
    Stubs(PathBuf),
    /// A HAR file to replay (and record into).
    Har(har::HarSpec),
}

impl std::fmt::Display for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppSpec::Echo => f.write_str("echo"),
            AppSpec::Static { status, body: StaticBody::Text(t) } if t.is_empty() => write!(f, "static:{status}"),
            AppSpec::Static { status, body: StaticBody::Text(t) } => write!(f, "static:{status} {t:?}"),
            AppSpec::Static { status, body: StaticBody::File(p) } => write!(f, "static:{status} @{}", p.display()),
            AppSpec::Files(dir) => write!(f, "files:{}", dir.display()),
            AppSpec::Stubs(dir) => write!(f, "stubs:{}", dir.display()),
            AppSpec::Har(h) => write!(f, "har:{} (record: {})", h.file.display(), h.mode.as_str()),
            AppSpec::Forward(relay) => write!(f, "{relay}"),
            AppSpec::Dylib(d) => write!(f, "dylib:{}#{}", d.path.display(), d.symbol),
            AppSpec::Wsgi(w) => write!(f, "wsgi:{}:{} (python: {})", w.module, w.callable, w.python),
            AppSpec::Cgi(c) => {
                f.write_str("cgi:")?;
                for (k, v) in &c.env {
                    write!(f, "{k}={v} ")?;
                }
                write!(f, "{}", c.program.display())?;
                c.args.iter().try_for_each(|a| write!(f, " {a}"))
            }
        }
    }
}

/// Parses `APP` from `URL -> APP`; relative `@FILE` paths are taken from `base`.
pub fn parse_spec(spec: &str, base: &Path) -> Result<AppSpec, String> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a)),
        None => (spec.trim(), None),
    };
    match (kind, arg) {
        ("echo", None) => Ok(AppSpec::Echo),
        ("echo", Some(_)) => Err("the echo app takes no argument".into()),
        ("static", Some(arg)) => parse_static(arg.trim_start(), base),
        ("static", None) => Err("expected static:STATUS [BODY]".into()),
        ("cgi", Some(arg)) => cgi::parse(arg, base).map(AppSpec::Cgi),
        ("files", Some(arg)) => files::parse(arg, base).map(AppSpec::Files),
        ("files", None) => Err("expected files:DIR".into()),
        ("forward" | "tunnel", Some(arg)) => forward::parse(arg, base)
            .map(|to| AppSpec::Forward(forward::Relay { to, tunnel: kind == "tunnel" }))
            .map_err(|e| if kind == "tunnel" { e.replace("forward:", "tunnel:") } else { e }),
        ("forward", None) => Err("expected forward:HOST:PORT or forward:unix:PATH".into()),
        ("tunnel", None) => Err("expected tunnel:HOST:PORT or tunnel:unix:PATH".into()),
        ("dylib", Some(arg)) => crate::apps::dylib::parse(arg, base).map(AppSpec::Dylib),
        ("dylib", None) => Err("expected dylib:PATH[#SYMBOL]".into()),
        ("wsgi", Some(arg)) => wsgi::parse(arg, base).map(AppSpec::Wsgi),
        ("wsgi", None) => Err("expected wsgi:MODULE:CALLABLE".into()),
        ("stubs", Some(arg)) => stubs::parse(arg, base).map(AppSpec::Stubs),
        ("stubs", None) => Err("expected stubs:DIR".into()),
        ("har", Some(arg)) => har::parse(arg, base).map(AppSpec::Har),
        ("har", None) => Err("expected har:FILE".into()),
        ("cgi", None) => Err("expected cgi:PROGRAM [ARG...]".into()),
        (k, _) => Err(format!(
            "unknown app kind `{k}` (expected echo, static:STATUS [BODY], files:DIR, cgi:PROGRAM, forward:HOST:PORT, tunnel:HOST:PORT, dylib:PATH, wsgi:MODULE:CALLABLE, stubs:DIR or har:FILE)"
        )),
    }
}

fn parse_static(arg: &str, base: &Path) -> Result<AppSpec, String> {
    let (code, rest) = match arg.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim_start()),
        None => (arg, ""),
    };
    let status = match code.parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) && code.len() == 3 => s,
        _ => return Err(format!("bad status code `{code}`: expected a number from 100 to 599")),
    };
    let body = match rest.strip_prefix('@') {
        Some(file) => {
            let path = base.join(file);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => StaticBody::File(path),
                Ok(_) => return Err(format!("@{file}: {} is not a regular file", path.display())),
                Err(e) => return Err(format!("@{file}: cannot open {}: {e}", path.display())),
            }
        }
        None => StaticBody::Text(rest.to_string()),
    };
    Ok(AppSpec::Static { status, body })
}

/// Makes the app a spec describes; None for `forward`, which is not an
/// HTTP app (the router keeps its target on the site instead).
pub fn build(spec: &AppSpec) -> Option<Box<dyn App>> {
    Some(match spec {
        AppSpec::Echo => Box::new(echo::Echo),
        AppSpec::Static { status, body } => Box::new(fixed::Static { status: *status, body: body.clone() }),
        AppSpec::Cgi(spec) => Box::new(cgi::Cgi { spec: spec.clone() }),
        AppSpec::Files(root) => Box::new(files::Files { root: root.clone() }),
        AppSpec::Forward(_) => return None,
        AppSpec::Dylib(spec) => Box::new(crate::apps::dylib::Native::new(crate::apps::dylib::Source::Dylib(spec.clone()))),
        AppSpec::Wsgi(spec) => Box::new(wsgi::Wsgi::new(spec.clone())),
        AppSpec::Stubs(dir) => Box::new(stubs::Stubs::new(dir.clone())),
        AppSpec::Har(spec) => Box::new(har::Har::new(spec.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn request<'a>(body: &'a mut (dyn Read + Send)) -> Request<'a> {
        Request {
            method: "POST".into(),
            scheme: "http",
            host: "h.test".into(),
            port: 80,
            target: "/m/p%20q?a=1".into(),
            script_name: "/m".into(),
            path_info: "/p q".into(),
            query: "a=1".into(),
            headers: vec![("X-One".into(), "1".into()), ("x-two".into(), "2".into())],
            body,
            client: None,
            opener: None,
        }
    }

    fn bytes(r: Response) -> Vec<u8> {
        match r.body {
            Body::Bytes(b) | Body::Raw(b) => b,
            Body::Reset | Body::Upgrade(_) => Vec::new(),
            Body::Stream { mut reader, .. } => {
                let mut v = Vec::new();
                reader.read_to_end(&mut v).unwrap();
                v
            }
        }
    }

    #[test]
    fn echo_describes_the_request() {
        let mut body: &[u8] = b"hello";
        let r = echo::Echo.call(&mut request(&mut body));
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&bytes(r)).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["script_name"], "/m");
        assert_eq!(v["path_info"], "/p q");
        assert_eq!(v["query"], "a=1");
        assert_eq!(v["headers"], serde_json::json!([["X-One", "1"], ["x-two", "2"]]));
        assert_eq!(v["body"], "hello");
        assert!(v.get("body_encoding").is_none());
    }

    #[test]
    fn echo_base64_encodes_binary_bodies() {
        let mut body: &[u8] = &[0xff, 0x00, 0x41];
        let v: serde_json::Value = serde_json::from_slice(&bytes(echo::Echo.call(&mut request(&mut body)))).unwrap();
        assert_eq!((v["body"].as_str(), v["body_encoding"].as_str()), (Some("/wBB"), Some("base64")));
    }

    #[test]
    fn static_specs() {
        let base = Path::new("/");
        assert_eq!(
            parse_spec("static:201 made it", base).unwrap(),
            AppSpec::Static { status: 201, body: StaticBody::Text("made it".into()) }
        );
        assert_eq!(parse_spec("static: 204", base).unwrap(), AppSpec::Static { status: 204, body: StaticBody::Text("".into()) });
        assert_eq!(parse_spec("echo", base).unwrap(), AppSpec::Echo);
        assert!(parse_spec("static:99", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:600 x", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:abc", base).unwrap_err().contains("bad status code"));
        assert!(parse_spec("static:200 @no/such/file", base).unwrap_err().contains("cannot open"));
        assert!(parse_spec("bogus:1", base).unwrap_err().contains("unknown app kind `bogus`"));
    }

    #[test]
    fn static_file_is_served_with_its_type() {
        let dir = crate::testing::temp_dir("static");
        std::fs::write(dir.join("a.json"), b"{\"x\":1}").unwrap();
        let spec = parse_spec("static:200 @a.json", &dir).unwrap();
        let mut body: &[u8] = b"";
        let r = build(&spec).unwrap().call(&mut request(&mut body));
        assert_eq!(r.headers[0].1, "application/json");
        assert_eq!(bytes(r), b"{\"x\":1}");
    }
}
