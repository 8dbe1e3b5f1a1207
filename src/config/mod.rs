//! The configuration: the env file named by `INTERCEPT_ENV_FILE` overlaid by
//! `INTERCEPT_*` variables from the environment (the environment wins),
//! validated into routes and settings.
//!
//! Every error says where the bad value came from (`FILE:LINE` or
//! `environment:KEY`) so the CLI and the shim can print it and exit 2.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
pub mod dotenv;
pub mod route;

use std::time::Duration;

use crate::apps::{self, AppSpec};
use crate::log::Level;
use crate::supervision;
use route::{HostPattern, RouteUrl};

/// The key naming the env file to read (relative to the current directory).
pub const ENV_FILE: &str = "INTERCEPT_ENV_FILE";
/// What every route's key starts with: `INTERCEPT_ROUTE_<NAME>`.
pub const ROUTE_PREFIX: &str = "INTERCEPT_ROUTE_";

/// Keys that are known but read by other parts of the tool (the trust
/// bundle's path, set by `intercept run` for the shim; the Python
/// package's: where its CLI is, whose binaries its build takes, whether its
/// pytest plugin starts pytest again); accepted so that they are not an
/// error.
const OTHER_KEYS: &[&str] = &[
    ENV_FILE,
    "INTERCEPT_TRUST_BUNDLE",
    apps::har::NEW_FILES_KEY,
    "INTERCEPT_BIN",
    "INTERCEPT_BIN_DIR",
    "INTERCEPT_SOURCE",
    "INTERCEPT_PURE_PYTHON",
    "INTERCEPT_PYTEST",
    supervision::SOCKET_KEY,
    crate::run::DIR_KEY,
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the env file.
    File {
        /// The env file, absolute.
        path: PathBuf,
        /// The 1-based line the entry starts on.
        line: usize,
    },
    /// A variable of the process's environment.
    Env {
        /// The variable's name.
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env { key } => write!(f, "environment:{key}"),
        }
    }
}

/// A configuration error, displayed as `ORIGIN: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad value came from.
    pub origin: Origin,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What unrouted connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Passthrough {
    /// `allow` (the default): they go out as they would without the shim.
    #[default]
    Allow,
    /// `loopback`: only those to a loopback (or unspecified) address go out;
    /// the rest are refused.
    Loopback,
    /// `deny`: every one is refused, and names no route uses do not resolve.
    Deny,
}

impl Passthrough {
    /// The setting's name, as `INTERCEPT_PASSTHROUGH` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Passthrough::Allow => "allow",
            Passthrough::Loopback => "loopback",
            Passthrough::Deny => "deny",
        }
    }
}

/// One `INTERCEPT_ROUTE_<NAME>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `<NAME>` from the key.
    pub name: String,
    /// The URL half of the value: what the route intercepts.
    pub url: RouteUrl,
    /// The app half of the value: what answers.
    pub app: AppSpec,
    /// Where the entry was written.
    pub origin: Origin,
}

/// Every route and setting, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The env file, absolute, if one was used.
    pub env_file: Option<PathBuf>,
    /// The routes in the order written: the env file's by line, then the environment's.
    pub routes: Vec<RouteSpec>,
    /// What unrouted connections get (`INTERCEPT_PASSTHROUGH`).
    pub passthrough: Passthrough,
    /// How much goes to stderr (`INTERCEPT_LOG`).
    pub log: Level,
    /// The journal file, absolute (`INTERCEPT_JOURNAL`); None for no journal.
    pub journal: Option<PathBuf>,
    /// How long a dispatcher waits for a quiet client before closing.
    pub idle_timeout: Duration,
    /// Where the CA for https routes lives, when `INTERCEPT_CA_DIR` says
    /// (else [`Config::ca_dir`] asks [`default_ca_dir`] when it is needed:
    /// the shim loads in every process and reads no other variable).
    pub ca_dir: Option<PathBuf>,
    /// Which programs `intercept run` supervises: those that bypass the
    /// shim (`INTERCEPT_SUPERVISE=auto`, the default), `all`, or `never`.
    pub supervise: supervision::Mode,
}

/// Where the CA lives unless `INTERCEPT_CA_DIR` says: the user's cache
/// directory.
pub fn default_ca_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("intercept-cache"));
    cache.join("intercept").join("ca")
}

/// The idle timeout unless `INTERCEPT_IDLE_TIMEOUT` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Config {
    fn default() -> Config {
        Config {
            env_file: None,
            routes: Vec::new(),
            passthrough: Passthrough::default(),
            log: Level::default(),
            journal: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            ca_dir: None,
            supervise: supervision::Mode::Auto,
        }
    }
}

impl Config {
    /// Where the CA for https routes lives.
    pub fn ca_dir(&self) -> PathBuf {
        self.ca_dir.clone().unwrap_or_else(default_ca_dir)
    }

    /// Whether the shim has anything to do: routes to serve or connections
    /// to refuse.
    pub fn is_active(&self) -> bool {
        !self.routes.is_empty() || self.passthrough != Passthrough::Allow
    }

    /// Whether any route is `https://` (and so the CA is needed).
    pub fn has_https(&self) -> bool {
        self.routes.iter().any(|r| r.url.scheme == crate::config::route::Scheme::Https)
    }
}

/// The process's `INTERCEPT_*` variables (those that are UTF-8), read
/// straight from `environ`, as `getenv` reads it: the shim loads in every
/// process, and copying every variable first (`std::env::vars_os`) took
/// about 6 µs of the 60 its loading took. For the shim's loading, before
/// the host's `main`, which reads every variable it needs from this one
/// scan: the environment is read without std's lock, which a thread
/// calling `std::env::set_var` would hold.
pub fn process_vars() -> Vec<(String, String)> {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut vars = Vec::new();
    // SAFETY: `environ` is libc's array of C strings, ended by a null
    // entry (or itself null when a program cleared it), read while the
    // shim loads, before the host's `main` can change it.
    let mut entry = unsafe { environ };
    // SAFETY: as above: each entry up to the null one is a NUL-terminated
    // string, and `entry` never moves past that null one.
    while !entry.is_null() && unsafe { !(*entry).is_null() } {
        // SAFETY: a non-null entry, as just checked.
        let bytes = unsafe { std::ffi::CStr::from_ptr(*entry) }.to_bytes();
        if bytes.starts_with(b"INTERCEPT_")
            && let Some(eq) = bytes.iter().position(|&b| b == b'=')
            && let (Ok(k), Ok(v)) = (std::str::from_utf8(&bytes[..eq]), std::str::from_utf8(&bytes[eq + 1..]))
        {
            vars.push((k.to_string(), v.to_string()));
        }
        // SAFETY: the current entry was not the null one, so the next is
        // still within the array.
        entry = unsafe { entry.add(1) };
    }
    vars
}

/// Loads from `INTERCEPT_*` variables given as pairs, reading the env file
/// they name (relative to the current directory).
pub fn load(vars: &[(String, String)]) -> Result<Config, ConfigError> {
    let env_origin = |key: &str| Origin::Env { key: key.to_string() };
    // key -> (value, origin, base directory for relative paths: None for
    // the current one, which is asked for only when a path needs it)
    let mut values: BTreeMap<String, (String, Origin, Option<PathBuf>)> = BTreeMap::new();
    let cwd = std::cell::OnceCell::new();
    let base_dir = |base: &Option<PathBuf>| match base {
        Some(dir) => dir.clone(),
        None => cwd.get_or_init(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))).clone(),
    };
    let mut env_file = None;
    if let Some((_, file)) = vars.iter().rev().find(|(k, _)| k == ENV_FILE) {
        let file = Path::new(file);
        let path = if file.is_absolute() { file.to_path_buf() } else { base_dir(&None).join(file) };
        let bytes = read_small(&path)
            .map_err(|e| ConfigError { origin: env_origin(ENV_FILE), message: format!("cannot read env file {}: {e}", path.display()) })?;
        let at = |line: usize| Origin::File { path: path.clone(), line };
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            ConfigError { origin: at(line), message: "the env file is not UTF-8 text".into() }
        })?;
        let entries = dotenv::parse(text).map_err(|e| ConfigError { origin: at(e.line), message: e.message })?;
        let base = path.parent().map(Path::to_path_buf);
        for e in entries.into_iter().filter(|e| e.key.starts_with("INTERCEPT_")) {
            if let Some((_, Origin::File { line: first, .. }, _)) = values.get(&e.key).filter(|_| e.key.starts_with(ROUTE_PREFIX)) {
                let message = format!("{} is defined twice, on lines {first} and {}: give each route a name of its own", e.key, e.line);
                return Err(ConfigError { origin: at(e.line), message });
            }
            values.insert(e.key, (e.value, at(e.line), base.clone()));
        }
        env_file = Some(path);
    }
    for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("INTERCEPT_")) {
        values.insert(k.clone(), (v.clone(), env_origin(k), None));
    }

    let mut config = Config { env_file, ..Config::default() };
    let mut routes: Vec<(Origin, RouteSpec)> = Vec::new();
    let mut python = None;
    let (mut cgi_timeout, mut wsgi_timeout) = (None, None);
    let (mut record, mut keep) = (apps::har::Mode::default(), Vec::new());
    for (key, (value, origin, base)) in values {
        let fail = |message: String| ConfigError { origin: origin.clone(), message };
        if let Some(name) = key.strip_prefix(ROUTE_PREFIX) {
            if name.is_empty() {
                return Err(fail(format!("{key} needs a name after {ROUTE_PREFIX}")));
            }
            let (url, app) = parse_route(&value, &base_dir(&base)).map_err(|m| match origin {
                Origin::File { .. } => fail(format!("{key}: {m}")),
                Origin::Env { .. } => fail(m),
            })?;
            routes.push((origin.clone(), RouteSpec { name: name.to_string(), url, app, origin }));
            continue;
        }
        match key.as_str() {
            "INTERCEPT_PASSTHROUGH" => {
                config.passthrough = match value.trim().to_ascii_lowercase().as_str() {
                    "allow" => Passthrough::Allow,
                    "loopback" => Passthrough::Loopback,
                    "deny" => Passthrough::Deny,
                    _ => return Err(fail(format!("{key}=`{value}`: expected allow, loopback or deny"))),
                }
            }
            "INTERCEPT_SUPERVISE" => {
                config.supervise =
                    supervision::Mode::parse(&value).ok_or_else(|| fail(format!("{key}=`{value}`: expected auto, all or never")))?
            }
            "INTERCEPT_LOG" => {
                config.log =
                    Level::parse(value.trim()).ok_or_else(|| fail(format!("{key}=`{value}`: expected off, error, info or debug")))?
            }
            "INTERCEPT_IDLE_TIMEOUT" => config.idle_timeout = seconds(&key, &value).map_err(fail)?,
            "INTERCEPT_CGI_TIMEOUT" => cgi_timeout = Some(seconds(&key, &value).map_err(fail)?),
            "INTERCEPT_WSGI_TIMEOUT" => wsgi_timeout = Some(seconds(&key, &value).map_err(fail)?),
            apps::har::RECORD_KEY => record = apps::har::Mode::parse(&value).map_err(|m| fail(format!("{key}={m}")))?,
            apps::har::KEEP_KEY => keep = value.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect(),
            "INTERCEPT_PYTHON" if !value.trim().is_empty() => python = Some(value.trim().to_string()),
            "INTERCEPT_PYTHON" => {}
            "INTERCEPT_CA_DIR" if !value.trim().is_empty() => config.ca_dir = Some(absolute(&base_dir(&base), Path::new(value.trim()))),
            "INTERCEPT_CA_DIR" => {}
            "INTERCEPT_JOURNAL" if value.trim().is_empty() => config.journal = None,
            "INTERCEPT_JOURNAL" => {
                let path = absolute(&base_dir(&base), Path::new(value.trim()));
                check_journal(&path).map_err(|m| fail(format!("{key}={}: {m}", path.display())))?;
                config.journal = Some(path);
            }
            k if OTHER_KEYS.contains(&k) => {}
            _ => return Err(fail(format!("unknown key {key}"))),
        }
    }
    // Settings of every route of a kind, whichever line set them.
    for (_, r) in &mut routes {
        match &mut r.app {
            AppSpec::Wsgi(w) => {
                if let Some(python) = &python {
                    w.python = python.clone();
                }
                w.timeout = wsgi_timeout.unwrap_or(w.timeout);
            }
            AppSpec::Cgi(c) => c.timeout = cgi_timeout.unwrap_or(c.timeout),
            AppSpec::Har(h) => {
                h.mode = record;
                h.keep = keep.clone();
            }
            _ => {}
        }
    }
    // Keep the order the user wrote: file routes by line, then environment ones.
    routes.sort_by_key(|(a, _)| origin_order(a));
    check_routes(&routes)?;
    config.routes = routes.into_iter().map(|(_, r)| r).collect();
    Ok(config)
}

/// A duration in seconds, more than 0 and at most a day. Under a
/// millisecond is a millisecond: a timeout that rounds to zero would mean
/// "wait forever" to the kernel.
fn seconds(key: &str, value: &str) -> Result<Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs).max(Duration::from_millis(1))),
        _ => Err(format!("{key}=`{value}`: expected seconds, more than 0 and at most 86400")),
    }
}

/// The value for `NO_PROXY` and `no_proxy`: every entry the user's two
/// variables hold (clients read one or the other, so both get all),
/// then each routed host not already there, so a client told to use a
/// proxy still reaches the apps. A wildcard route `*.example.test` is the
/// suffix entry `.example.test`, as curl and Python read it.
pub fn no_proxy<'a>(user: impl IntoIterator<Item = &'a str>, hosts: impl IntoIterator<Item = &'a HostPattern>) -> String {
    let mut entries: Vec<String> = Vec::new();
    let mut add = |entry: String| {
        if !entry.is_empty() && !entries.iter().any(|e| e.eq_ignore_ascii_case(&entry)) {
            entries.push(entry);
        }
    };
    user.into_iter().flat_map(|v| v.split(',')).for_each(|e| add(e.trim().to_string()));
    for host in hosts {
        add(match host {
            HostPattern::Name(name) => name.clone(),
            HostPattern::Wildcard(suffix) => suffix.clone(),
            HostPattern::Ip(ip) => ip.to_string(),
            HostPattern::Localhost => "localhost".into(),
        });
    }
    entries.join(",")
}

/// A journal must be a file we can append to: an existing regular file (or
/// a device such as /dev/null), or a new file in an existing directory.
/// Never a FIFO, whose writes would wait for a reader.
fn check_journal(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err("a directory, not a file".into()),
        Ok(meta) if meta.file_type().is_fifo() || meta.file_type().is_socket() => {
            Err("a FIFO or socket: journal writes would wait for a reader".into())
        }
        Ok(_) => std::fs::OpenOptions::new().append(true).open(path).map(drop).map_err(|e| format!("cannot append to it: {e}")),
        Err(_) => match path.parent().map(std::fs::metadata) {
            Some(Ok(dir)) if dir.is_dir() => Ok(()),
            _ => Err("its directory does not exist".into()),
        },
    }
}

/// The rules between routes, each in one pass (20,000 routes validate in
/// milliseconds): a mount once per host, port and prefix; one scheme per
/// host and port; a forward route alone on its host and port. Ordered
/// maps, as in the router: a hashed one would cost every process a
/// `getrandom` for its keys at load.
fn check_routes(routes: &[(Origin, RouteSpec)]) -> Result<(), ConfigError> {
    let mut mounts: BTreeMap<(&HostPattern, u16, &str), &RouteSpec> = BTreeMap::new();
    let mut sites: BTreeMap<(&HostPattern, u16), Vec<&RouteSpec>> = BTreeMap::new();
    for (_, route) in routes {
        let fail = |message: String| Err(ConfigError { origin: route.origin.clone(), message });
        let url = &route.url;
        if let Some(earlier) = mounts.insert((&url.host, url.port, &url.prefix), route) {
            return fail(format!("{} mounts {} again (already at {})", route.name, url, earlier.origin));
        }
        let site = sites.entry((&url.host, url.port)).or_default();
        if let Some(other) = site.iter().find(|r| r.url.scheme != url.scheme) {
            return fail(format!(
                "{} is {} but {} serves the same host and port as {}",
                url,
                url.scheme.as_str(),
                other.origin,
                other.url.scheme.as_str()
            ));
        }
        site.push(route);
    }
    for (_, route) in routes {
        if !matches!(route.app, AppSpec::Forward(_)) {
            continue;
        }
        let fail = |message: String| Err(ConfigError { origin: route.origin.clone(), message });
        if !route.url.prefix.is_empty() {
            return fail(format!(
                "{}: a forward route relays whole connections, so its URL takes no path (found `{}`)",
                route.name, route.url.prefix
            ));
        }
        if let Some(other) = sites[&(&route.url.host, route.url.port)].iter().find(|r| r.name != route.name) {
            return fail(format!(
                "{}: a forward route relays whole connections and cannot share {} with {} ({})",
                route.name, route.url, other.name, other.origin
            ));
        }
    }
    Ok(())
}

fn origin_order(o: &Origin) -> (u8, usize, String) {
    match o {
        Origin::File { line, .. } => (0, *line, String::new()),
        Origin::Env { key } => (1, 0, key.clone()),
    }
}

/// Parses a route value `URL -> APP`.
pub fn parse_route(value: &str, base: &Path) -> Result<(RouteUrl, AppSpec), String> {
    let Some((url, app)) = value.split_once("->") else {
        return Err(format!("expected `URL -> APP`, found `{value}`"));
    };
    let url = route::parse_url(url.trim())?;
    let app = apps::parse_spec(app.trim(), base)?;
    Ok((url, app))
}

/// A file's bytes, read without asking its size first (one system call
/// fewer than `std::fs::read`: env files are small, and the shim reads one
/// in every process). The reads are system calls, not libc's `read`: in the
/// shim, whose `read` is a hook, loading's own reads stay its own.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    // Through a buffer on the stack, so the text kept is only as long as
    // the file (the shim's loading allocates from a small region).
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: reads into a local buffer of its length from an open fd.
        let n = unsafe { libc::syscall(libc::SYS_read, file.as_raw_fd(), chunk.as_mut_ptr(), chunk.len()) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(bytes)
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::route::HostPattern;

    /// An env file in a directory of its own, removed with the guard.
    fn temp_env(name: &str, text: &str) -> (crate::testing::TempDir, PathBuf) {
        let dir = crate::testing::temp_dir(name);
        let path = dir.join("test.env");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load_file(name: &str, text: &str) -> Result<Config, ConfigError> {
        let (_dir, path) = temp_env(name, text);
        load(&vars(&[(ENV_FILE, path.to_str().unwrap())]))
    }

    #[test]
    fn no_proxy_keeps_the_users_entries_and_adds_the_routed_hosts() {
        let hosts = [
            HostPattern::Name("api.example.test".into()),
            HostPattern::Wildcard(".svc.test".into()),
            HostPattern::Ip("::1".parse().unwrap()),
            HostPattern::Name("corp.internal".into()),
        ];
        assert_eq!(no_proxy(["corp.internal, .lan", "", "CORP.internal"], &hosts), "corp.internal,.lan,api.example.test,.svc.test,::1");
        assert_eq!(no_proxy([], &hosts[..1]), "api.example.test");
    }

    #[test]
    fn file_routes_and_settings() {
        let c = load_file(
            "ok",
            "# demo\nINTERCEPT_ROUTE_API=http://api.test/v1 -> echo\nexport INTERCEPT_PASSTHROUGH=deny\nINTERCEPT_LOG=debug\nOTHER=ignored\n",
        )
        .unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].name, "API");
        assert_eq!(c.routes[0].url.host, HostPattern::Name("api.test".into()));
        assert!(matches!(c.routes[0].origin, Origin::File { line: 2, .. }));
        assert_eq!((c.passthrough, c.log), (Passthrough::Deny, Level::Debug));
    }

    #[test]
    fn environment_wins_over_the_file() {
        let (_dir, path) = temp_env("override", "INTERCEPT_PASSTHROUGH=deny\nINTERCEPT_ROUTE_A=http://a.test -> echo\n");
        let c = load(&vars(&[
            (ENV_FILE, path.to_str().unwrap()),
            ("INTERCEPT_PASSTHROUGH", "loopback"),
            ("INTERCEPT_ROUTE_A", "http://b.test -> echo"),
        ]))
        .unwrap();
        assert_eq!(c.passthrough, Passthrough::Loopback);
        assert_eq!(c.routes[0].url.host, HostPattern::Name("b.test".into()));
        assert_eq!(c.routes[0].origin, Origin::Env { key: "INTERCEPT_ROUTE_A".into() });
    }

    #[test]
    fn errors_carry_file_and_line() {
        let cases = [
            ("kind", "\nINTERCEPT_ROUTE_A=http://a.test -> nosuch\n", 2, "unknown app kind"),
            ("url", "INTERCEPT_ROUTE_A=a.test -> echo\n", 1, "bad URL"),
            ("port", "#\n#\nINTERCEPT_ROUTE_A=http://a.test:99999 -> echo\n", 3, "bad port"),
            ("status", "INTERCEPT_ROUTE_A=http://a.test -> static:42 x\n", 1, "bad status code"),
            ("file", "INTERCEPT_ROUTE_A=http://a.test -> static:200 @missing.txt\n", 1, "missing.txt"),
            ("pass", "INTERCEPT_LOG=info\nINTERCEPT_PASSTHROUGH=sometimes\n", 2, "expected allow, loopback or deny"),
            ("supervise", "INTERCEPT_SUPERVISE=always\n", 1, "expected auto, all or never"),
            ("quote", "INTERCEPT_LOG=info\nINTERCEPT_ROUTE_A='http://a.test -> echo\n", 2, "unterminated single quote"),
            ("arrow", "INTERCEPT_ROUTE_A=http://a.test echo\n", 1, "expected `URL -> APP`"),
            ("unknown", "INTERCEPT_PASTHROUGH=deny\n", 1, "unknown key INTERCEPT_PASTHROUGH"),
            ("dup", "INTERCEPT_ROUTE_A=http://a.test/x -> echo\nINTERCEPT_ROUTE_B=http://A.test:80/x/ -> echo\n", 2, "again"),
            ("log", "INTERCEPT_LOG=loud\n", 1, "expected off, error, info or debug"),
            ("idle", "INTERCEPT_IDLE_TIMEOUT=soon\n", 1, "expected seconds"),
        ];
        for (name, text, line, what) in cases {
            let err = load_file(name, text).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains(&format!("test.env:{line}: ")), "{name}: {shown}");
            assert!(shown.contains(what), "{name}: {shown}");
        }
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let err = load(&vars(&[("INTERCEPT_ROUTE_X", "http://x.test -> static:1000")])).unwrap_err();
        assert!(err.to_string().starts_with("environment:INTERCEPT_ROUTE_X: "), "{err}");
        let err = load(&vars(&[(ENV_FILE, "/no/such/intercept.env")])).unwrap_err();
        assert!(err.to_string().contains("cannot read env file /no/such/intercept.env"), "{err}");
    }

    #[test]
    fn nothing_configured_is_inactive() {
        assert!(!load(&[]).unwrap().is_active());
        assert!(load(&vars(&[("INTERCEPT_PASSTHROUGH", "deny")])).unwrap().is_active());
    }

    #[test]
    fn the_python_packages_keys_are_known() {
        for key in ["INTERCEPT_BIN", "INTERCEPT_BIN_DIR", "INTERCEPT_SOURCE", "INTERCEPT_PURE_PYTHON", "INTERCEPT_PYTEST"] {
            assert!(load(&[(key.to_string(), "1".to_string())]).is_ok(), "{key}");
        }
    }
}
