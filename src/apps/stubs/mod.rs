//! `stubs:DIR`: WireMock's stub mappings, read as WireMock reads them
//! (`DIR/mappings/**/*.json`, bodies from `DIR/__files/`), answering any
//! program's requests with no server.
//!
//! Mappings load once per process, on the route's first request (`intercept
//! check` and `run` load them first, so a bad file is an error before
//! anything runs). A request is matched against every mapping: the lowest
//! `priority` wins, then the most recently loaded; a scenario's stubs match
//! only in its current state, and a match moves the scenario on. A request
//! no stub matches gets 404 with a near-miss report: the request, then the
//! closest stubs and, field by field, what differed.

pub(crate) mod mapping;
mod matcher;
pub(crate) mod near_miss;
mod proxy;
mod respond;
pub(crate) mod seen;
mod template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::apps::app::{App, Request, Response};
use crate::fork_lock::ForkLock;
use crate::log_error;
use mapping::{Mapping, STARTED};
pub(crate) use seen::Seen;

/// Parses what follows `stubs:`: a directory with a `mappings` directory.
pub fn parse(arg: &str, base: &Path) -> Result<PathBuf, String> {
    let dir = base.join(arg.trim());
    if !dir.join("mappings").is_dir() {
        return Err(format!("stubs:{arg}: {} has no mappings directory", dir.display()));
    }
    Ok(dir)
}

/// Loads every mapping of `dir`, as the route will on its first request:
/// for `intercept check` and `run`, so a bad mapping stops them.
pub fn validate(dir: &Path) -> Result<usize, String> {
    mapping::load(dir).map(|m| m.len())
}

/// How each stub of `dir` is named in the journal, in load order.
pub fn labels(dir: &Path) -> Result<Vec<String>, String> {
    mapping::load(dir).map(|m| m.into_iter().map(|m| m.label).collect())
}

pub use matcher::{pattern_of, text_distance};

/// The largest request body a stubs route reads to match.
pub const MAX_BODY: usize = 16 << 20;

/// The `stubs:` app: answers each request with the stub mapping that matches it.
pub struct Stubs {
    dir: PathBuf,
    mappings: OnceLock<Result<Loaded, String>>,
    /// Whether every mapping answers at once from what was loaded.
    at_once: OnceLock<bool>,
    /// Scenario name -> its current state (`Started` until moved on).
    scenarios: ForkLock<HashMap<String, String>>,
}

impl Stubs {
    /// An app for the mappings of `dir`, loaded on the first request.
    pub fn new(dir: PathBuf) -> Stubs {
        Stubs { dir, mappings: OnceLock::new(), at_once: OnceLock::new(), scenarios: ForkLock::new(HashMap::new()) }
    }

    fn loaded(&self) -> Result<&Loaded, &str> {
        match self.mappings.get_or_init(|| mapping::load(&self.dir).map(Loaded::new)) {
            Ok(m) => Ok(m),
            Err(e) => Err(e),
        }
    }

    /// The stub that answers `seen` now, moving its scenario on.
    fn choose(&self, loaded: &Loaded, seen: &Seen) -> Option<usize> {
        let mappings = &loaded.mappings;
        let mut scenarios = self.scenarios.lock();
        let state_of = |name: &str| scenarios.get(name).map_or(STARTED, String::as_str).to_string();
        let chosen = loaded
            .candidates(seen)
            .filter(|&i| mappings[i].scenario.as_ref().is_none_or(|s| s.required.as_deref().is_none_or(|r| r == state_of(&s.name))))
            .filter(|&i| near_miss::matches(&mappings[i].request, seen))
            .min_by_key(|&i| (mappings[i].priority, std::cmp::Reverse(mappings[i].order)))?;
        if let Some(s) = &mappings[chosen].scenario
            && let Some(next) = &s.new_state
        {
            scenarios.insert(s.name.clone(), next.clone());
        }
        Some(chosen)
    }
}

impl App for Stubs {
    /// When no mapping waits (a delay, a dribbled body), breaks the
    /// connection (a fault) or asks another server (a proxy): every answer
    /// is then made from the mappings in memory, which this loads.
    fn answers_from_memory(&self) -> bool {
        *self.at_once.get_or_init(|| self.loaded().is_ok_and(|l| l.mappings.iter().all(|m| m.response.at_once())))
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        let loaded = match self.loaded() {
            Ok(m) => m,
            Err(e) => {
                log_error!("stubs: {e}");
                return Response::text(500, &format!("the stub mappings did not load: {e}"));
            }
        };
        // Matched whole, as WireMock does, up to a limit: a larger body is
        // 413, and only the limit's worth of it is ever held.
        let mut body = Vec::new();
        match std::io::Read::read_to_end(&mut std::io::Read::take(&mut *req.body, MAX_BODY as u64 + 1), &mut body) {
            Err(e) => return Response::text(400, &format!("could not read the request body: {e}")),
            Ok(n) if n > MAX_BODY => {
                return Response::text(413, &format!("a stubs route matches request bodies up to {} MiB", MAX_BODY >> 20));
            }
            Ok(_) => {}
        }
        let seen = Seen::of(req, &body);
        match self.choose(loaded, &seen) {
            Some(i) => respond::answer(&loaded.mappings[i], &seen),
            None => {
                let report = near_miss::report(&loaded.mappings, &seen, "stub");
                let closest = report.closest.as_deref().map_or(String::new(), |c| format!("; closest stub: {c}"));
                log_error!("stubs: no stub matched {} {}{closest}", seen.method, seen.url);
                let mut response = Response::new(404, "text/plain; charset=utf-8", report.text);
                response.journal.push(("stub", serde_json::Value::Null));
                response
            }
        }
    }
}

/// The mappings and an index of them: a request is tried only against the
/// stubs whose literal path (`url`, `urlPath`) is its own, and those with
/// no literal path (patterns, any URL), so a thousand stubs cost a lookup.
struct Loaded {
    mappings: Vec<Mapping>,
    by_path: HashMap<String, Vec<usize>>,
    others: Vec<usize>,
}

impl Loaded {
    fn new(mappings: Vec<Mapping>) -> Loaded {
        let (mut by_path, mut others) = (HashMap::<String, Vec<usize>>::new(), Vec::new());
        for (i, m) in mappings.iter().enumerate() {
            match &m.request.url {
                mapping::UrlMatch::Path(p) => by_path.entry(p.clone()).or_default().push(i),
                mapping::UrlMatch::Url(u) => {
                    by_path.entry(u.split_once('?').map_or(u.as_str(), |(p, _)| p).to_string()).or_default().push(i)
                }
                _ => others.push(i),
            }
        }
        Loaded { mappings, by_path, others }
    }

    fn candidates<'a>(&'a self, seen: &Seen) -> impl Iterator<Item = usize> + 'a {
        self.by_path.get(&seen.path).into_iter().flatten().chain(&self.others).copied()
    }
}

#[cfg(test)]
mod tests;
