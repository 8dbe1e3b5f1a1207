//! A request as the stub matchers see it: what a mapping's request
//! pattern is compared with, and what templates and near misses read.

use crate::apps::app::{Request, query_pairs};

/// A request as the matchers see it.
pub(crate) struct Seen {
    pub method: String,
    /// The path as received, percent-encoded, without the query.
    pub path: String,
    /// Path and query as received.
    pub url: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub(crate) fn of(req: &Request<'_>, body: &[u8]) -> Seen {
        let url = req.path_and_query();
        let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p).to_string();
        let query = query_pairs(&req.query);
        let cookies = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Seen {
            method: req.method.clone(),
            path,
            url,
            query,
            headers: req.headers.clone(),
            cookies,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}
