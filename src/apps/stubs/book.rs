//! The stubs a route answers with now: its files' mappings, changed by
//! what the admin API did at run time ([`Edits`], shared by every process
//! of the run), with an index by literal path.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{self, Mapping, UrlMatch};
use super::seen::Seen;
use crate::log_error;

/// Scenario name -> its current state (`Started` until moved on).
pub type States = std::collections::BTreeMap<String, String>;

/// What the admin API changed: one value for the whole run.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edits {
    /// The ids of the file mappings taken out (or edited: the edit is in `made`).
    pub removed: BTreeSet<String>,
    /// Whether every file mapping was taken out (`DELETE /__admin/mappings`).
    pub files_removed: bool,
    /// The mappings made at run time, oldest first, as JSON with their ids.
    pub made: Vec<Value>,
    /// Moves on when the mappings go back to the files (`POST
    /// /__admin/mappings/reset`), which every process then reads again.
    pub files_epoch: u64,
}

/// The mappings and an index of them: a request is tried only against the
/// stubs whose literal path (`url`, `urlPath`) is its own, and those with
/// no literal path (patterns, any URL), so a thousand stubs cost a lookup.
pub struct Book {
    /// File mappings first, then those made at run time.
    pub mappings: Vec<Mapping>,
    by_path: HashMap<String, Vec<usize>>,
    others: Vec<usize>,
    /// Whether every mapping answers at once from memory.
    pub at_once: bool,
}

impl Book {
    /// The files' mappings as `edits` changed them; `dir` holds `__files`.
    pub fn new(files: &[Mapping], edits: &Edits, dir: &Path) -> Book {
        let made: Vec<Mapping> = edits
            .made
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                mapping::made(v, dir, files.len() + i).map_err(|e| log_error!("stubs: a mapping made at run time: {e}")).ok()
            })
            .collect();
        let replaced: BTreeSet<&str> = made.iter().map(|m| m.id.as_str()).collect();
        let mut kept: Vec<Mapping> = files
            .iter()
            .filter(|m| !edits.files_removed && !edits.removed.contains(&m.id) && !replaced.contains(m.id.as_str()))
            .cloned()
            .collect();
        kept.extend(made);
        Book::index(kept)
    }

    fn index(mappings: Vec<Mapping>) -> Book {
        let (mut by_path, mut others) = (HashMap::<String, Vec<usize>>::new(), Vec::new());
        for (i, m) in mappings.iter().enumerate() {
            match &m.request.url {
                UrlMatch::Path(p) => by_path.entry(p.clone()).or_default().push(i),
                UrlMatch::Url(u) => by_path.entry(u.split_once('?').map_or(u.as_str(), |(p, _)| p).to_string()).or_default().push(i),
                _ => others.push(i),
            }
        }
        let at_once = mappings.iter().all(|m| m.response.at_once());
        Book { mappings, by_path, others, at_once }
    }

    /// The stubs worth trying for `seen`.
    pub fn candidates<'a>(&'a self, seen: &Seen) -> impl Iterator<Item = usize> + 'a {
        self.by_path.get(&seen.path).into_iter().flatten().chain(&self.others).copied()
    }

    /// The mapping with this id.
    pub fn find(&self, id: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.id == id)
    }
}
