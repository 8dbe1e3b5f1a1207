//! `proxyBaseUrl`: a stub that passes its request on to a real server and
//! answers with what comes back (WireMock's "proxying", e.g. a catch-all at
//! low priority in front of the real API).
//!
//! The answer's body streams back as it arrives. Inside the shim the
//! connect goes through the usual hooks: an unrouted base is reached for
//! real (as the pass-through setting allows), a routed one is answered by
//! its route (a base that is the stubs route itself would loop, as it would
//! in WireMock).

use super::seen::Seen;
use crate::apps::app::{Body, Response};
use crate::apps::origin::{self, Origin, Outgoing, Via};
use crate::log_error;

/// Checks a `proxyBaseUrl` when the mapping loads.
pub fn check(base: &str) -> Result<(), String> {
    Origin::parse(base).map(drop).map_err(|e| format!("proxyBaseUrl {e}"))
}

/// Passes the request on and answers with the upstream's answer; 502 when
/// it cannot be reached.
pub fn forward(base: &str, seen: &Seen) -> Response {
    let answer = Origin::parse(base).map_err(std::io::Error::other).and_then(|origin| {
        let request = Outgoing { method: &seen.method, target: &seen.url, headers: &seen.headers, body: seen.body.as_bytes() };
        origin::exchange(&origin, &request, Via::Process)
    });
    match answer {
        Ok(a) => Response {
            status: a.status,
            reason: a.reason,
            headers: a.headers,
            body: Body::Stream { reader: a.body, len: a.length },
            ..Default::default()
        },
        Err(e) => {
            log_error!("stubs: proxy to {base}: {e}");
            Response::text(502, &format!("cannot reach {base}: {e}"))
        }
    }
}
