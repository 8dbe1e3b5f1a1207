//! `har:FILE`: record a real API once, replay it forever, for any program.
//! vcrpy's record modes over HAR 1.2 files (`INTERCEPT_RECORD`):
//!
//! | mode | a request that matches an entry | one that does not |
//! | --- | --- | --- |
//! | `once` (default) | replayed, unless FILE is new: then everything is recorded | recorded if FILE did not exist (when the route was first used, or when `intercept run` began); else 404 |
//! | `new_episodes` | replayed | recorded |
//! | `all` | recorded | recorded |
//! | `none` | replayed | 404 with a near-miss report |
//!
//! Identical requests are answered in recorded order, then the last answer
//! repeats: one order for the whole run (`crate::run`), so three processes
//! asking the same URL get the recording's first, second and third
//! answers. The file loads on the route's first request (`intercept
//! check` and `run` read it first, so a bad file stops them), as an
//! [`index`]: under `intercept run`, parsed once for the whole run.

pub mod file;
pub mod index;
mod record;
pub mod replay;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use super::stubs::{mapping, near_miss, seen::Seen};
use crate::apps::app::{App, Request, Response};
use crate::fork_lock::ForkLock;
use crate::run::Shared;
use crate::{log_error, log_info};
use file::Entry;

/// The key naming the record mode (`once`, `new_episodes`, `all`, `none`).
pub const RECORD_KEY: &str = "INTERCEPT_RECORD";
/// The key naming the secret headers recorded unredacted, comma-separated.
pub const KEEP_KEY: &str = "INTERCEPT_RECORD_KEEP";
/// Set by `intercept run`: the HAR files (absolute, `:`-separated) that did
/// not exist when the run began, so that every process of the run records
/// to them in `once` mode, not only the first one.
pub const NEW_FILES_KEY: &str = "INTERCEPT_RECORD_NEW_FILES";

/// A record mode, vcrpy's: what is replayed and what is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `once`: replay, but record everything when the file is new.
    #[default]
    Once,
    /// `new_episodes`: replay what matches, record what does not.
    NewEpisodes,
    /// `all`: record every request, replay none.
    All,
    /// `none`: replay only; a request that matches nothing gets 404.
    None,
}

impl Mode {
    /// A mode from its name, any case (empty is `once`).
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "once" | "" => Ok(Mode::Once),
            "new_episodes" => Ok(Mode::NewEpisodes),
            "all" => Ok(Mode::All),
            "none" => Ok(Mode::None),
            other => Err(format!("`{other}`: expected once, new_episodes, all or none")),
        }
    }

    /// The mode's name, as `INTERCEPT_RECORD` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Once => "once",
            Mode::NewEpisodes => "new_episodes",
            Mode::All => "all",
            Mode::None => "none",
        }
    }
}

/// A `har:FILE` route's file and how it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarSpec {
    /// Absolute.
    pub file: PathBuf,
    /// The record mode (`INTERCEPT_RECORD`).
    pub mode: Mode,
    /// Secret headers kept as they are (`INTERCEPT_RECORD_KEEP`).
    pub keep: Vec<String>,
}

/// Parses what follows `har:`.
pub fn parse(arg: &str, base: &Path) -> Result<HarSpec, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err("expected har:FILE".into());
    }
    Ok(HarSpec { file: base.join(arg), mode: Mode::Once, keep: Vec::new() })
}

/// Reads the file as the route will (an error names the file), and says
/// whether the mode can work without it. With a run's directory, the
/// file's index is kept there for the processes of the run.
pub fn validate(spec: &HarSpec, run_dir: Option<&Path>) -> Result<usize, String> {
    match std::fs::metadata(&spec.file) {
        Ok(_) => index::open(&spec.file, run_dir).map(|i| i.entries.len()),
        Err(_) if spec.mode == Mode::None => {
            Err(format!("{} does not exist, and {RECORD_KEY}=none only replays: record it first", spec.file.display()))
        }
        // A missing directory is made at the first recording; one of the
        // path's directories being a file is an error now.
        Err(_) => match spec.file.ancestors().skip(1).find(|dir| dir.exists()) {
            Some(dir) if !dir.is_dir() => {
                Err(format!("{}: {} is not a directory, so nothing can be recorded there", spec.file.display(), dir.display()))
            }
            _ => Ok(0),
        },
    }
}

/// The `har:` app: replays the file's entries, and records into it as its mode says.
pub struct Har {
    spec: HarSpec,
    state: ForkLock<Option<Result<State, String>>>,
    /// How often each of the file's entries has answered, for the whole
    /// run: entry number -> times (kept only for requests the file
    /// answers more than once).
    replayed: Shared<BTreeMap<usize, u32>>,
    /// Whether this process only replays (decided when the file loads).
    replays_only: OnceLock<bool>,
}

struct State {
    /// Those read from the file with empty bodies, which `file` holds at
    /// `spans`; then those recorded here, whole.
    entries: Vec<Entry>,
    spans: Vec<index::Span>,
    file: Option<std::fs::File>,
    /// How often each entry has answered.
    used: Vec<u32>,
    /// `once` with no file to begin with: this process records.
    recording: bool,
}

impl Har {
    /// An app for `spec`; the file is read on the first request.
    pub fn new(spec: HarSpec) -> Har {
        let name = crate::run::name_for("har", &spec.file.to_string_lossy());
        Har {
            spec,
            state: ForkLock::new(None),
            replays_only: OnceLock::new(),
            replayed: Shared::new(crate::run::dir().as_deref(), &format!("{name}.replayed")),
        }
    }

    fn load(&self) -> Result<State, String> {
        let exists = self.spec.file.exists();
        let (entries, spans, file) = if exists {
            let started = std::time::Instant::now();
            let found = index::open(&self.spec.file, crate::run::dir().as_deref())?;
            let how = if found.from_run { "read the run's index of" } else { "indexed" };
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            log_info!("har: {how} {} ({} entries) in {millis:.1} ms", self.spec.file.display(), found.entries.len());
            (found.entries, found.spans, Some(found.file))
        } else {
            (Vec::new(), Vec::new(), None)
        };
        let listed = std::env::var_os(NEW_FILES_KEY).is_some_and(|v| std::env::split_paths(&v).any(|p| p == self.spec.file));
        let recording = self.spec.mode == Mode::Once && (!exists || listed);
        Ok(State { used: vec![0; entries.len()], entries, spans, file, recording })
    }

    /// The answer of entry `i`, its body read from the file if it is there.
    fn answer(state: &State, i: usize) -> Result<Response, String> {
        let entry = &state.entries[i];
        match (state.spans.get(i), &state.file) {
            (Some(&span), Some(file)) => {
                let body = index::body(file, span).map_err(|e| format!("entry {} of the HAR file cannot be read again: {e}", i + 1))?;
                Ok(replay::answer(&Entry { body, ..entry.clone() }))
            }
            _ => Ok(replay::answer(entry)),
        }
    }

    /// The entry that answers now, if any: the first not yet used of those
    /// that match, else the last that matches.
    fn replay(&self, state: &mut State, asked: &replay::Asked<'_>) -> Option<(Response, String)> {
        let matching: Vec<usize> = (0..state.entries.len()).filter(|&i| replay::matches(&state.entries[i], asked)).collect();
        let from_file = state.spans.len();
        let chosen = if matching.len() > 1 && matching.iter().all(|&i| i < from_file) {
            // Answered in recorded order across the whole run.
            self.replayed.update(|times| {
                let chosen = matching.iter().copied().find(|i| !times.contains_key(i)).or(matching.last().copied())?;
                *times.entry(chosen).or_default() += 1;
                Some(chosen)
            })?
        } else {
            matching.iter().copied().find(|&i| state.used[i] == 0).or(matching.last().copied())?
        };
        state.used[chosen] += 1;
        let response = Har::answer(state, chosen).unwrap_or_else(|e| {
            log_error!("har: {}: {e}", self.spec.file.display());
            Response::text(500, &e)
        });
        Some((response, replay::label(&state.entries[chosen], chosen)))
    }

    fn record(&self, asking: &replay::Asked<'_>) -> Response {
        let (mut response, entry) = match record::relay(asking, &self.spec.keep) {
            Ok(done) => done,
            Err(e) => {
                log_error!("har: {e} (nothing recorded)");
                return Response::text(502, &e);
            }
        };
        if let Err(e) = file::append(&self.spec.file, &entry) {
            log_error!("har: {e}");
            return Response::text(500, &format!("the answer could not be recorded: {e}"));
        }
        log_info!("har: recorded {} {} into {}", entry.method, entry.url(), self.spec.file.display());
        let mut state = self.state.lock();
        let label = match state.as_mut() {
            Some(Ok(s)) => {
                s.entries.push(entry);
                s.used.push(1);
                replay::label(&s.entries[s.entries.len() - 1], s.entries.len() - 1)
            }
            _ => entry.url(),
        };
        response.journal.push(("har", "recorded".into()));
        response.journal.push(("entry", label.into()));
        response
    }

    fn miss(&self, state: &State, req: &Request<'_>, body: &[u8]) -> Response {
        let seen = Seen::of(req, body);
        let mine: Vec<mapping::Mapping> = state
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.scheme == req.scheme && e.host.eq_ignore_ascii_case(&req.host) && e.port == req.port)
            .filter_map(|(i, e)| mapping::from_json(&replay::mapping(e, i), replay::label(e, i), i).ok())
            .collect();
        let report = near_miss::report(&mine, &seen, "recorded entry");
        let closest = report.closest.as_deref().map_or(String::new(), |c| format!("; closest: {c}"));
        log_error!("har: nothing recorded in {} answers {} {}{closest}", self.spec.file.display(), seen.method, seen.url);
        let mut response = Response::new(404, "text/plain; charset=utf-8", report.text);
        response.journal.push(("har", "missed".into()));
        response.journal.push(("entry", Value::Null));
        response
    }
}

impl App for Har {
    /// When this process only replays (it never records here): every
    /// answer is made from the entries in memory, which this loads.
    fn answers_from_memory(&self) -> bool {
        *self.replays_only.get_or_init(|| {
            if matches!(self.spec.mode, Mode::All | Mode::NewEpisodes) {
                return false;
            }
            let mut guard = self.state.lock();
            guard.get_or_insert_with(|| self.load()).as_ref().is_ok_and(|state| !state.recording)
        })
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        let mut body = Vec::new();
        if let Err(e) = req.body.read_to_end(&mut body) {
            return Response::text(400, &format!("could not read the request body: {e}"));
        }
        let target = req.path_and_query();
        let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
        let query = crate::apps::app::query_pairs(&req.query);
        let asked = replay::Asked {
            method: &req.method,
            scheme: req.scheme,
            host: &req.host,
            port: req.port,
            target: &target,
            path,
            query: &query,
            headers: &req.headers,
            body: &body,
        };
        let mut guard = self.state.lock();
        if guard.is_none() {
            *guard = Some(self.load());
        }
        let state = match guard.as_mut() {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                log_error!("har: {e}");
                return Response::text(500, &format!("the HAR file did not load: {e}"));
            }
            None => unreachable!("loaded above"),
        };
        let records_all = self.spec.mode == Mode::All || state.recording;
        if !records_all && let Some((mut response, label)) = self.replay(state, &asked) {
            response.journal.push(("har", "replayed".into()));
            response.journal.push(("entry", label.into()));
            return response;
        }
        if records_all || self.spec.mode == Mode::NewEpisodes {
            drop(guard); // never held across the network
            return self.record(&asked);
        }
        self.miss(state, req, &body)
    }
}

#[cfg(test)]
mod tests;
