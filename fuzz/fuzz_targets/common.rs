//! What both fuzz targets share: the routes their input is served for.

use std::sync::OnceLock;

use intercept::routing::{Connect, Destination, Lookup, Router};

/// Built once and kept in a static, so LeakSanitizer sees it reachable.
pub fn dest() -> &'static Destination {
    static TARGET: OnceLock<(Router, Destination)> = OnceLock::new();
    let (_, dest) = TARGET.get_or_init(|| {
        let vars = [
            ("INTERCEPT_ROUTE_ECHO", "http://fuzz.test/echo -> echo"),
            ("INTERCEPT_ROUTE_ROOT", "http://fuzz.test -> static:200 root"),
            ("INTERCEPT_LOG", "off"),
        ];
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = intercept::config::load(&vars).unwrap();
        intercept::log::set_level(config.log);
        let router = Router::new(&config);
        let Lookup::Synthetic(v4, _) = router.lookup("fuzz.test") else { unreachable!() };
        let dest = match router.connect((v4, 80).into()) {
            Connect::Intercept(t) => t,
            _ => unreachable!(),
        };
        (router, dest)
    });
    dest
}
