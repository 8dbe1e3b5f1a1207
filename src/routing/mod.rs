//! The router: turns the configured routes into sites (one per scheme, host
//! pattern and port, holding its mounts) and answers the two questions the
//! shim asks — what a name resolves to, and what a connect to an address
//! becomes — under the pass-through setting.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::apps::forward::Relay;
use crate::apps::{self, App, AppSpec};
use crate::config::{Config, Passthrough};
use crate::fork_lock::ForkLock;
use crate::journal::Journal;
pub mod names;

use crate::config::route::{self, HostPattern, RouteUrl, Scheme};
use names::Names;

/// An app mounted at a path prefix of a site.
#[derive(Clone)]
pub struct Mount {
    /// The route's path prefix, without trailing slash; `""` for the whole site.
    pub prefix: String,
    /// The `<NAME>` of the route's key, for logs and the journal.
    pub route: String,
    /// What answers the requests under the prefix.
    pub app: Arc<dyn App>,
}

/// Everything served on one host pattern and port.
pub struct Site {
    /// `http` or `https`: whether the site's clients speak TLS.
    pub scheme: Scheme,
    /// The host pattern the site answers for.
    pub host: HostPattern,
    /// The port the site answers on.
    pub port: u16,
    /// Longest prefix first, so the first match is the one that wins.
    pub mounts: Vec<Mount>,
    /// A `forward:` or `tunnel:` route takes the whole connection: (route
    /// name, target).
    pub forward: Option<(String, Relay)>,
}

impl Site {
    /// The mount a request path falls under, longest prefix winning.
    pub fn mount_for(&self, path: &str) -> Option<&Mount> {
        self.mounts.iter().find(|m| route::under_prefix(path, &m.prefix))
    }
}

/// A routed connection: the site, the name and port the client used, the
/// journal its requests go to, and how long it may stay quiet (or take to
/// send a request head).
#[derive(Clone)]
pub struct Destination {
    /// The site serving the connection, as it was when the connection was made.
    pub site: Arc<Site>,
    /// The name the client connected to (or the address literal, or `localhost`).
    pub host: String,
    /// The port the client connected to.
    pub port: u16,
    /// The journal requests are written to, if the configuration keeps one.
    pub journal: Option<Arc<Journal>>,
    /// How long the client may stay quiet (or take to send a request head).
    pub idle: Duration,
    /// The router's sites, and which change of them `site` is from.
    pub live: Option<(Arc<Live>, u64)>,
}

impl Destination {
    /// The site serving this connection's host and port now: the one it
    /// started with while no route was added or removed since (one atomic
    /// load), else the one there now; None once its routes are gone.
    pub fn site_now(&self) -> Option<Arc<Site>> {
        match &self.live {
            Some((live, seen)) if live.changes.load(Ordering::Acquire) != *seen => {
                live.snapshot().iter().find(|s| s.host == self.site.host && s.port == self.site.port).cloned()
            }
            _ => Some(self.site.clone()),
        }
    }
}

/// The sites now, shared by the router and every connection: replaced
/// whole (copy on write) when routes are added or removed at run time, and
/// counted, so a connection sees at its next request that they changed.
pub struct Live {
    sites: ForkLock<Arc<Vec<Arc<Site>>>>,
    changes: AtomicU64,
}

impl Live {
    fn snapshot(&self) -> Arc<Vec<Arc<Site>>> {
        self.sites.lock().clone()
    }

    fn replace(&self, guard: &mut Arc<Vec<Arc<Site>>>, sites: Vec<Arc<Site>>) {
        *guard = Arc::new(sites);
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// What a `connect` to an address becomes.
pub enum Connect {
    /// Routed: served in the process, for this destination.
    Intercept(Destination),
    /// Not ours: the real `connect`, untouched.
    Pass,
    /// Refused by the pass-through setting.
    Refuse,
    /// A synthetic address on a port no route serves, in `allow` mode:
    /// resolve the name for real and connect there.
    Resolve {
        /// The routed name the synthetic address stands for.
        name: String,
        /// The port the client asked for.
        port: u16,
    },
}

/// What a name lookup becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A routed name: its synthetic IPv4 and IPv6 addresses.
    Synthetic(Ipv4Addr, Ipv6Addr),
    /// Not ours: the real resolver answers.
    Pass,
    /// Refused by the pass-through setting (`deny`).
    Refuse,
}

/// The routes as sites and synthetic names, and the settings that go with them.
pub struct Router {
    live: Arc<Live>,
    names: Names,
    /// What unrouted connections and lookups get.
    pub passthrough: Passthrough,
    /// The journal every routed connection writes to, if the configuration keeps one.
    pub journal: Option<Arc<Journal>>,
    /// How long a routed connection may stay quiet (the configuration's idle timeout).
    pub idle_timeout: Duration,
    /// Unset: the default, asked for when first needed.
    ca_dir: std::sync::OnceLock<std::path::PathBuf>,
}

/// What serves a route added at run time.
pub enum RouteApp {
    /// An app spec, as an env file line would give (`intercept_add_route`).
    Spec(AppSpec),
    /// An app already made (`intercept_add_app`'s native app).
    App(Arc<dyn App>),
}

impl Router {
    /// Where the CA for https routes lives.
    pub fn ca_dir(&self) -> &std::path::Path {
        self.ca_dir.get_or_init(crate::config::default_ca_dir)
    }

    /// A router serving the configuration's routes, with its settings.
    pub fn new(config: &Config) -> Router {
        let router = Router {
            live: Arc::new(Live { sites: ForkLock::new(Arc::new(Vec::new())), changes: AtomicU64::new(0) }),
            names: Names::default(),
            passthrough: config.passthrough,
            journal: config.journal.clone().map(|path| Arc::new(Journal::new(path))),
            idle_timeout: config.idle_timeout,
            ca_dir: config.ca_dir.clone().map(std::sync::OnceLock::from).unwrap_or_default(),
        };
        // The configuration was validated as a whole when it loaded.
        let mut sites = Vec::new();
        let mut index = BTreeMap::new();
        for r in &config.routes {
            router.insert_into(&mut sites, &mut index, &r.name, &r.url, RouteApp::Spec(r.app.clone()));
        }
        *router.live.sites.lock() = Arc::new(sites);
        router
    }

    /// Adds a route at run time, refusing what the configuration would.
    pub fn add(&self, name: &str, url: &RouteUrl, app: RouteApp) -> Result<(), String> {
        let forward = matches!(app, RouteApp::Spec(AppSpec::Forward(_)));
        if forward && !url.prefix.is_empty() {
            return Err("a forward or tunnel route relays whole connections, so its URL takes no path".into());
        }
        if let Some(site) = self.snapshot().iter().find(|s| s.host == url.host && s.port == url.port) {
            if site.scheme != url.scheme {
                return Err(format!("{url}: the same host and port are already served as {}", site.scheme.as_str()));
            }
            if forward || site.forward.is_some() {
                return Err(format!("{url}: a forward or tunnel route cannot share its host and port"));
            }
            if site.mounts.iter().any(|m| m.prefix == url.prefix) {
                return Err(format!("{url} is already routed"));
            }
        }
        self.insert(name, url, app);
        Ok(())
    }

    /// The sites now: a connection keeps the ones it started with.
    fn snapshot(&self) -> Arc<Vec<Arc<Site>>> {
        self.live.snapshot()
    }

    /// Adds one route, copying the sites (run-time additions are few).
    fn insert(&self, name: &str, url: &RouteUrl, app: RouteApp) {
        let mut guard = self.live.sites.lock();
        let mut sites = (**guard).clone();
        let mut index = sites.iter().enumerate().map(|(i, s)| ((s.host.clone(), s.port), i)).collect();
        self.insert_into(&mut sites, &mut index, name, url, app);
        self.live.replace(&mut guard, sites);
    }

    /// Adds one route to `sites`, whose positions by host and port `index`
    /// holds.
    fn insert_into(
        &self,
        sites: &mut Vec<Arc<Site>>,
        index: &mut BTreeMap<(HostPattern, u16), usize>,
        name: &str,
        url: &RouteUrl,
        app: RouteApp,
    ) {
        if let HostPattern::Name(host) = &url.host {
            self.names.slot(host);
        }
        let old = index.get(&(url.host.clone(), url.port)).copied();
        let mut site = match old {
            Some(i) => Site {
                scheme: sites[i].scheme,
                host: sites[i].host.clone(),
                port: sites[i].port,
                mounts: sites[i].mounts.clone(),
                forward: sites[i].forward.clone(),
            },
            None => Site { scheme: url.scheme, host: url.host.clone(), port: url.port, mounts: Vec::new(), forward: None },
        };
        let app = match app {
            RouteApp::App(app) => Some(app),
            RouteApp::Spec(AppSpec::Forward(target)) => {
                site.forward = Some((name.to_string(), target));
                None
            }
            RouteApp::Spec(spec) => apps::build(&spec).map(Arc::from),
        };
        if let Some(app) = app {
            site.mounts.push(Mount { prefix: url.prefix.clone(), route: name.to_string(), app });
            site.mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        }
        match old {
            Some(i) => sites[i] = Arc::new(site),
            None => {
                index.insert((url.host.clone(), url.port), sites.len());
                sites.push(Arc::new(site));
            }
        }
    }

    /// Removes every route on a host pattern and port; returns how many.
    pub fn remove(&self, host: &HostPattern, port: u16) -> usize {
        let mut guard = self.live.sites.lock();
        let mut sites = (**guard).clone();
        let mut removed = 0;
        sites.retain(|s| {
            let hit = s.host == *host && s.port == port;
            if hit {
                removed += s.mounts.len() + usize::from(s.forward.is_some());
            }
            !hit
        });
        self.live.replace(&mut guard, sites);
        removed
    }

    /// Whether any route matches the name, on any port.
    fn routes_name(&self, name: &str) -> bool {
        self.snapshot().iter().any(|s| s.host.matches_name(name))
    }

    /// The site for a name and port: an exact name beats wildcards, and a
    /// longer wildcard suffix beats a shorter one.
    fn site_for_name(&self, name: &str, port: u16) -> Option<Arc<Site>> {
        let sites = self.snapshot();
        let candidates = sites.iter().filter(|s| s.port == port && s.host.matches_name(name));
        candidates
            .max_by_key(|s| match &s.host {
                HostPattern::Name(_) => usize::MAX,
                HostPattern::Wildcard(suffix) => suffix.len(),
                _ => 0,
            })
            .cloned()
    }

    /// The destination for `site`, found in the sites of change `seen`
    /// (read before them, so a change since is never missed).
    fn target(&self, site: &Arc<Site>, host: String, port: u16, seen: u64) -> Destination {
        let live = Some((self.live.clone(), seen));
        Destination { site: site.clone(), host, port, journal: self.journal.clone(), idle: self.idle_timeout, live }
    }

    /// The name table (the reverse lookups of getnameinfo).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Before `fork`: takes the router's locks so a child never inherits
    /// one held by a thread that does not exist there.
    pub fn hold_for_fork(&self) {
        self.live.sites.hold_for_fork();
        self.names.hold_for_fork();
    }

    /// After `fork`, once in each process: gives the locks back.
    ///
    /// # Safety
    /// Only after `hold_for_fork`.
    pub unsafe fn release_after_fork(&self) {
        // SAFETY: our caller's promise, passed on to each lock.
        unsafe {
            self.names.release_after_fork();
            self.live.sites.release_after_fork();
        }
    }

    /// What a lookup of `name` becomes: its synthetic addresses when a route
    /// uses it, else what the pass-through setting says.
    pub fn lookup(&self, name: &str) -> Lookup {
        let name = route::normalize_name(name);
        if self.routes_name(&name) {
            let slot = self.names.slot(&name);
            return Lookup::Synthetic(names::v4(slot), names::v6(slot));
        }
        let localhost_routed = name == "localhost" && self.snapshot().iter().any(|s| s.host == HostPattern::Localhost);
        if self.passthrough == Passthrough::Deny && !localhost_routed && name.parse::<IpAddr>().is_err() {
            return Lookup::Refuse;
        }
        Lookup::Pass
    }

    /// What a `connect` to `addr` becomes: intercepted when a route serves that
    /// address (a routed name's synthetic one, a routed literal, loopback for a
    /// `localhost` route) and port, else what the pass-through setting says.
    pub fn connect(&self, addr: SocketAddr) -> Connect {
        let seen = self.live.changes.load(Ordering::Acquire);
        let ip = addr.ip().to_canonical();
        let port = addr.port();
        if names::is_synthetic(ip)
            && let Some(name) = self.names.name_of(ip)
        {
            return match self.site_for_name(&name, port) {
                Some(site) => Connect::Intercept(self.target(&site, name, port, seen)),
                None if self.passthrough == Passthrough::Allow => Connect::Resolve { name, port },
                None => Connect::Refuse,
            };
        }
        let sites = self.snapshot();
        let by_address = sites.iter().find(|s| {
            s.port == port
                && match &s.host {
                    HostPattern::Ip(routed) => routed.to_canonical() == ip,
                    HostPattern::Localhost => ip.is_loopback(),
                    _ => false,
                }
        });
        if let Some(site) = by_address {
            let host = match &site.host {
                HostPattern::Localhost => "localhost".to_string(),
                _ => ip.to_string(),
            };
            return Connect::Intercept(self.target(site, host, port, seen));
        }
        match self.passthrough {
            Passthrough::Allow => Connect::Pass,
            Passthrough::Loopback if ip.is_loopback() || ip.is_unspecified() => Connect::Pass,
            Passthrough::Loopback | Passthrough::Deny => Connect::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn router(routes: &[&str], pass: &str) -> Router {
        let mut vars: Vec<(String, String)> =
            routes.iter().enumerate().map(|(i, r)| (format!("INTERCEPT_ROUTE_R{i}"), r.to_string())).collect();
        vars.push(("INTERCEPT_PASSTHROUGH".into(), pass.into()));
        Router::new(&load(&vars).unwrap())
    }

    fn addr(ip: IpAddr, port: u16) -> SocketAddr {
        SocketAddr::new(ip, port)
    }

    fn intercepted(c: Connect) -> Destination {
        match c {
            Connect::Intercept(t) => t,
            _ => panic!("not intercepted"),
        }
    }

    #[test]
    fn names_resolve_to_synthetic_and_connect_back() {
        let r = router(&["http://api.test -> echo", "http://*.svc.test:8080/x -> echo"], "allow");
        let Lookup::Synthetic(v4, v6) = r.lookup("API.test.") else { panic!() };
        assert_eq!(intercepted(r.connect(addr(v4.into(), 80))).host, "api.test");
        assert_eq!(intercepted(r.connect(addr(v6.into(), 80))).host, "api.test");
        assert_eq!(intercepted(r.connect(addr(v4.to_ipv6_mapped().into(), 80))).host, "api.test");
        let Lookup::Synthetic(w, _) = r.lookup("a.svc.test") else { panic!() };
        assert_eq!(intercepted(r.connect(addr(w.into(), 8080))).host, "a.svc.test");
        assert_eq!(r.lookup("svc.test"), Lookup::Pass);
        assert!(matches!(r.connect(addr(v4.into(), 81)), Connect::Resolve { ref name, port: 81 } if name == "api.test"));
    }

    #[test]
    fn exact_names_beat_wildcards_and_prefixes_sort() {
        let r = router(&["http://*.test -> static:200 w", "http://a.test/x -> echo", "http://a.test/x/y -> echo"], "allow");
        let Lookup::Synthetic(v4, _) = r.lookup("a.test") else { panic!() };
        let t = intercepted(r.connect(addr(v4.into(), 80)));
        assert_eq!(t.site.host, HostPattern::Name("a.test".into()));
        assert_eq!(t.site.mount_for("/x/y/z").unwrap().prefix, "/x/y");
        assert_eq!(t.site.mount_for("/x/yy").unwrap().prefix, "/x");
        assert!(t.site.mount_for("/other").is_none());
    }

    #[test]
    fn literals_and_localhost_match_at_connect() {
        let r = router(&["http://10.9.8.7:81 -> echo", "http://[fd00::1]:82 -> echo", "http://localhost:8999 -> echo"], "allow");
        assert_eq!(intercepted(r.connect(addr("10.9.8.7".parse().unwrap(), 81))).host, "10.9.8.7");
        assert_eq!(intercepted(r.connect(addr("::ffff:10.9.8.7".parse().unwrap(), 81))).host, "10.9.8.7");
        assert_eq!(intercepted(r.connect(addr("fd00::1".parse().unwrap(), 82))).host, "fd00::1");
        assert_eq!(intercepted(r.connect(addr("::1".parse().unwrap(), 8999))).host, "localhost");
        assert_eq!(intercepted(r.connect(addr("127.0.0.1".parse().unwrap(), 8999))).host, "localhost");
        assert!(matches!(r.connect(addr("10.9.8.7".parse().unwrap(), 80)), Connect::Pass));
        assert_eq!(r.lookup("localhost"), Lookup::Pass);
    }

    #[test]
    fn passthrough_modes() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let allow = router(&["http://a.test -> echo"], "allow");
        assert!(matches!(allow.connect(addr(public, 80)), Connect::Pass));
        assert_eq!(allow.lookup("example.com"), Lookup::Pass);
        let loopback = router(&["http://a.test -> echo"], "loopback");
        assert!(matches!(loopback.connect(addr(public, 80)), Connect::Refuse));
        assert!(matches!(loopback.connect(addr(lo, 80)), Connect::Pass));
        assert!(matches!(loopback.connect(addr("::1".parse().unwrap(), 80)), Connect::Pass));
        let deny = router(&["http://a.test -> echo"], "deny");
        assert!(matches!(deny.connect(addr(lo, 80)), Connect::Refuse));
        assert_eq!(deny.lookup("example.com"), Lookup::Refuse);
        assert_eq!(deny.lookup("127.0.0.1"), Lookup::Pass);
        let Lookup::Synthetic(v4, _) = deny.lookup("a.test") else { panic!() };
        assert!(matches!(deny.connect(addr(v4.into(), 8080)), Connect::Refuse));
    }

    #[test]
    fn a_connection_sees_the_site_serving_its_host_now() {
        let r = router(&["http://now.test -> static:200 first"], "allow");
        let Lookup::Synthetic(v4, _) = r.lookup("now.test") else { panic!() };
        let dest = intercepted(r.connect(addr(v4.into(), 80)));
        // No change: the very site the connection started with.
        assert!(Arc::ptr_eq(&dest.site_now().unwrap(), &dest.site));
        let url = route::parse_url("http://now.test").unwrap();
        assert_eq!(r.remove(&url.host, 80), 1);
        assert!(dest.site_now().is_none());
        let spec = apps::parse_spec("static:200 second", std::path::Path::new("/")).unwrap();
        r.add("AGAIN", &url, RouteApp::Spec(spec)).unwrap();
        let now = dest.site_now().unwrap();
        assert!(!Arc::ptr_eq(&now, &dest.site));
        assert_eq!(now.mounts[0].route, "AGAIN");
    }
}
