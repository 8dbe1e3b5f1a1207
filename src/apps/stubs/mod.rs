//! `stubs:DIR`: WireMock's stub mappings, read as WireMock reads them
//! (`DIR/mappings/**/*.json`, bodies from `DIR/__files/`), answering any
//! program's requests with no server.
//!
//! Mappings load once per process, on the route's first request (`intercept
//! check` and `run` load them first, so a bad file is an error before
//! anything runs). What changes while a run goes on — the scenarios'
//! states, mappings made and taken out through the admin API, the
//! requests asked — is one state for the whole run (`crate::run`), so
//! every process of it sees the same stubs. A request is matched against
//! every mapping: the lowest `priority` wins, then the most recently loaded; a scenario's stubs match
//! only in its current state, and a match moves the scenario on. A request
//! no stub matches gets 404 with a near-miss report: the request, then the
//! closest stubs and, field by field, what differed.

mod admin;
mod asked;
mod book;
mod dates;
mod helpers;
pub(crate) mod mapping;
mod matcher;
pub(crate) mod near_miss;
mod proxy;
mod respond;
pub(crate) mod seen;
mod template;
mod xml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::apps::app::{App, Request, Response};
use crate::fork_lock::ForkLock;
use crate::log_error;
use crate::run::{Lines, Shared};
use book::{Book, Edits, States};
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

/// Where `/__admin/` answers on the host of a stubs route.
pub const ADMIN: &str = "/__admin";

/// The files' mappings, or why they did not load.
type Loaded = Result<Arc<Vec<Mapping>>, String>;

/// The `stubs:` app: answers each request with the stub mapping that
/// matches it, and WireMock's admin API under [`ADMIN`].
pub struct Stubs {
    dir: PathBuf,
    /// The files' mappings, read at the files epoch they were read for.
    files: ForkLock<Option<(u64, Loaded)>>,
    /// What the admin API changed, for the whole run.
    edits: Shared<Edits>,
    /// The scenarios' states, for the whole run.
    scenarios: Shared<States>,
    /// What was asked, for the whole run.
    asked: Lines,
    /// The book built from the edits it was built for.
    book: ForkLock<Option<(Arc<Edits>, Arc<Book>)>>,
}

impl Stubs {
    /// An app for the mappings of `dir`, loaded on the first request; its
    /// state is the run's (when there is one), named after `dir`.
    pub fn new(dir: PathBuf) -> Stubs {
        let run = crate::run::dir();
        let name = crate::run::name_for("stubs", &dir.canonicalize().unwrap_or_else(|_| dir.clone()).to_string_lossy());
        Stubs {
            edits: Shared::new(run.as_deref(), &format!("{name}.edits")),
            scenarios: Shared::new(run.as_deref(), &format!("{name}.scenarios")),
            asked: Lines::new(run.as_deref(), &format!("{name}.asked")),
            dir,
            files: ForkLock::new(None),
            book: ForkLock::new(None),
        }
    }

    /// The files' mappings as read for `epoch`.
    fn files(&self, epoch: u64) -> Result<Arc<Vec<Mapping>>, String> {
        if let Some((at, files)) = &*self.files.lock()
            && *at == epoch
        {
            return files.clone();
        }
        let files = mapping::load(&self.dir).map(Arc::new);
        *self.files.lock() = Some((epoch, files.clone()));
        files
    }

    /// The stubs that answer now.
    fn book(&self) -> Result<Arc<Book>, String> {
        let edits = self.edits.get();
        if let Some((built_for, book)) = &*self.book.lock()
            && Arc::ptr_eq(built_for, &edits)
        {
            return Ok(book.clone());
        }
        let book = Arc::new(Book::new(&self.files(edits.files_epoch)?, &edits, &self.dir));
        *self.book.lock() = Some((edits, book.clone()));
        Ok(book)
    }

    /// The stub that answers `seen` now, moving its scenario on: atomic
    /// for the whole run when a scenario's stub could answer.
    fn choose(&self, book: &Book, seen: &Seen) -> Option<usize> {
        let mappings = &book.mappings;
        let matching: Vec<usize> = book.candidates(seen).filter(|&i| near_miss::matches(&mappings[i].request, seen)).collect();
        let best =
            |among: &mut dyn Iterator<Item = usize>| among.min_by_key(|&i| (mappings[i].priority, std::cmp::Reverse(mappings[i].order)));
        if matching.iter().all(|&i| mappings[i].scenario.is_none()) {
            return best(&mut matching.into_iter());
        }
        self.scenarios.update(|states| {
            let state_of = |name: &str| states.get(name).map_or(STARTED, String::as_str).to_string();
            let chosen =
                best(&mut matching.iter().copied().filter(|&i| {
                    mappings[i].scenario.as_ref().is_none_or(|s| s.required.as_deref().is_none_or(|r| r == state_of(&s.name)))
                }))?;
            if let Some(s) = &mappings[chosen].scenario
                && let Some(next) = &s.new_state
            {
                states.insert(s.name.clone(), next.clone());
            }
            Some(chosen)
        })
    }
}

impl App for Stubs {
    /// When no mapping waits (a delay, a dribbled body), breaks the
    /// connection (a fault) or asks another server (a proxy): every answer
    /// is then made from the mappings in memory, which this loads.
    fn answers_from_memory(&self) -> bool {
        self.book().is_ok_and(|b| b.at_once)
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
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
        if let Some(rest) = seen.path.strip_prefix(ADMIN)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            let book = || self.book();
            let parts = admin::Stubs { dir: &self.dir, edits: &self.edits, scenarios: &self.scenarios, asked: &self.asked, book: &book };
            return admin::answer(&parts, &seen, rest, &body);
        }
        let book = match self.book() {
            Ok(b) => b,
            Err(e) => {
                log_error!("stubs: {e}");
                return Response::text(500, &format!("the stub mappings did not load: {e}"));
            }
        };
        let chosen = self.choose(&book, &seen);
        let response = match chosen {
            Some(i) => respond::answer(&book.mappings[i], &seen),
            None => {
                let report = near_miss::report(&book.mappings, &seen, "stub");
                let closest = report.closest.as_deref().map_or(String::new(), |c| format!("; closest stub: {c}"));
                log_error!("stubs: no stub matched {} {}{closest}", seen.method, seen.url);
                let mut response = Response::new(404, "text/plain; charset=utf-8", report.text);
                response.journal.push(("stub", serde_json::Value::Null));
                response
            }
        };
        let stub = chosen.map(|i| &book.mappings[i]);
        self.asked.push(&asked::entry(&seen, req.scheme, &req.host, req.port, stub, response.status).to_string());
        response
    }
}

#[cfg(test)]
mod tests;
