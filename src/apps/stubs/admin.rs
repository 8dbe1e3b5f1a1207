//! WireMock's admin API under `/__admin/` on the host of a stubs route:
//! mappings (list, make, get, edit, take out, back to the files, save),
//! the request journal (list, get, count, find, unmatched, take out), near
//! misses, scenarios, a reset of everything, and health — enough that
//! WireMock's own clients work unchanged. Every change is the run's: the
//! next request in any process of the run sees it.

use serde_json::{Value, json};

use std::path::Path;
use std::sync::Arc;

use super::asked;
use super::book::{Book, Edits, States};
use super::mapping::{self, Mapping, STARTED};
use super::near_miss;
use super::seen::Seen;
use crate::apps::app::Response;
use crate::run::{Lines, Shared};

/// What the admin API works on: a stubs route's files and run state.
pub struct Stubs<'a> {
    /// The stubs directory.
    pub dir: &'a Path,
    /// What the admin API changed.
    pub edits: &'a Shared<Edits>,
    /// The scenarios' states.
    pub scenarios: &'a Shared<States>,
    /// What was asked.
    pub asked: &'a Lines,
    /// The stubs that answer now.
    pub book: &'a dyn Fn() -> Result<Arc<Book>, String>,
}

impl Stubs<'_> {
    fn book(&self) -> Result<Arc<Book>, String> {
        (self.book)()
    }
}

/// The version WireMock's health answer names: the one whose API this follows.
const VERSION: &str = "3.13.2";

/// The answer to an admin request; `rest` is the path after `/__admin`.
pub fn answer(stubs: &Stubs<'_>, seen: &Seen, rest: &str, body: &[u8]) -> Response {
    route(stubs, seen, rest, body).unwrap_or_else(|r| r)
}

fn route(stubs: &Stubs<'_>, seen: &Seen, rest: &str, body: &[u8]) -> Result<Response, Response> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let doc = || -> Result<Value, Response> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|e| invalid(&format!("the request body is not JSON: {e}")))
    };
    match (seen.method.as_str(), parts.as_slice()) {
        ("GET", ["health"]) => Ok(ok(json!({
            "status": "healthy", "message": "Wiremock is ok", "version": VERSION,
            "uptimeInSeconds": 0, "timestamp": crate::journal::now(),
        }))),
        ("GET", ["mappings"]) => stubs.book().map_err(|e| server_error(&e)).map(|book| {
            let all: Vec<Value> = book.mappings.iter().rev().map(|m| m.source.clone()).collect();
            let total = all.len();
            ok(json!({ "mappings": page(all, &seen.query), "meta": { "total": total } }))
        }),
        ("POST", ["mappings"]) => doc().and_then(|d| make(stubs, d, None)),
        ("POST", ["mappings", "import"]) => doc().and_then(|d| {
            let list = d.get("mappings").and_then(Value::as_array).cloned().unwrap_or_default();
            list.into_iter().try_for_each(|m| make(stubs, m, None).map(drop)).map(|()| ok(json!({})))
        }),
        ("DELETE", ["mappings"]) => {
            stubs.edits.update(|e| {
                e.files_removed = true;
                e.made.clear();
            });
            Ok(ok(json!({})))
        }
        ("POST", ["mappings", "reset"]) => {
            reset_mappings(stubs);
            Ok(ok(json!({})))
        }
        ("POST", ["mappings", "save"]) => save(stubs).map(|()| ok(json!({}))),
        ("GET", ["mappings", id]) => match stubs.book().map_err(|e| server_error(&e))?.find(id) {
            Some(m) => Ok(ok(m.source.clone())),
            None => Err(not_found(&format!("no stub mapping has the id {id}"))),
        },
        ("PUT", ["mappings", id]) => doc().and_then(|mut d| {
            if stubs.book().map_err(|e| server_error(&e))?.find(id).is_none() {
                return Err(not_found(&format!("no stub mapping has the id {id}")));
            }
            if let Some(o) = d.as_object_mut() {
                o.insert("id".into(), Value::String(id.to_string()));
            }
            make(stubs, d, Some(id)).map(|mut r| {
                r.status = 200;
                r
            })
        }),
        ("DELETE", ["mappings", id]) => {
            let known = stubs.book().map_err(|e| server_error(&e))?.find(id).is_some();
            if !known {
                return Err(not_found(&format!("no stub mapping has the id {id}")));
            }
            stubs.edits.update(|e| {
                e.made.retain(|m| m.get("id").and_then(Value::as_str) != Some(id));
                e.removed.insert(id.to_string());
            });
            Ok(ok(json!({})))
        }
        ("GET", ["requests"]) => {
            let all: Vec<Value> = journal(stubs).into_iter().rev().collect();
            let total = all.len();
            Ok(ok(json!({ "requests": page(all, &seen.query), "meta": { "total": total }, "requestJournalDisabled": false })))
        }
        ("DELETE", ["requests"]) | ("POST", ["requests", "reset"]) => {
            stubs.asked.clear();
            Ok(ok(json!({})))
        }
        ("POST", ["requests", "count"]) => doc().and_then(|d| asked_like(stubs, &d)).map(|found| ok(json!({ "count": found.len() }))),
        ("POST", ["requests", "find"]) => doc().and_then(|d| asked_like(stubs, &d)).map(|found| ok(json!({ "requests": found }))),
        ("POST", ["requests", "remove"]) => doc().and_then(|d| {
            let found = asked_like(stubs, &d)?;
            let gone: Vec<&str> = found.iter().filter_map(|e| e["id"].as_str()).collect();
            stubs.asked.retain(|line| !gone.iter().any(|id| line.contains(id)));
            Ok(ok(json!({ "requests": found })))
        }),
        ("GET", ["requests", "unmatched"]) => {
            let found: Vec<Value> = journal(stubs).into_iter().filter(|e| e["wasMatched"] == false).collect();
            Ok(ok(json!({ "requests": found })))
        }
        ("GET", ["requests", "unmatched", "near-misses"]) => {
            let book = stubs.book().map_err(|e| server_error(&e))?;
            let misses: Vec<Value> = journal(stubs)
                .into_iter()
                .filter(|e| e["wasMatched"] == false)
                .flat_map(|e| near_misses(&book.mappings, &e["request"]))
                .collect();
            Ok(ok(json!({ "nearMisses": misses })))
        }
        ("GET", ["requests", id]) => match journal(stubs).into_iter().find(|e| e["id"] == *id) {
            Some(e) => Ok(ok(e)),
            None => Err(not_found(&format!("no request has the id {id}"))),
        },
        ("DELETE", ["requests", id]) => {
            stubs.asked.retain(|line| !line.contains(id));
            Ok(ok(json!({})))
        }
        ("POST", ["near-misses", "request"]) => doc().and_then(|d| {
            let book = stubs.book().map_err(|e| server_error(&e))?;
            Ok(ok(json!({ "nearMisses": near_misses(&book.mappings, &d) })))
        }),
        ("POST", ["near-misses", "request-pattern"]) => doc().and_then(|d| {
            let pattern = mapping::pattern(&d).map_err(|e| invalid(&e))?;
            let mut scored: Vec<(f64, Value)> = journal(stubs)
                .into_iter()
                .map(|e| (near_miss::score(&near_miss::fields(&pattern, &asked::seen_of(&e["request"]))), e))
                .filter(|(d, _)| *d > 0.0)
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            let misses: Vec<Value> = scored
                .into_iter()
                .take(3)
                .map(|(d, e)| json!({ "request": e["request"], "requestPattern": d, "matchResult": { "distance": d } }))
                .collect();
            Ok(ok(json!({ "nearMisses": misses })))
        }),
        ("GET", ["scenarios"]) => scenarios(stubs),
        ("POST", ["scenarios", "reset"]) => {
            stubs.scenarios.reset();
            Ok(ok(json!({})))
        }
        ("PUT", ["scenarios", name, "state"]) => doc().and_then(|d| {
            let state = d.get("state").and_then(Value::as_str).unwrap_or(STARTED).to_string();
            let book = stubs.book().map_err(|e| server_error(&e))?;
            if !book.mappings.iter().any(|m| m.scenario.as_ref().is_some_and(|s| s.name == *name)) {
                return Err(not_found(&format!("no scenario is named {name}")));
            }
            stubs.scenarios.update(|s| s.insert(name.to_string(), state));
            Ok(ok(json!({})))
        }),
        ("POST", ["reset"]) => {
            reset_mappings(stubs);
            stubs.scenarios.reset();
            stubs.asked.clear();
            Ok(ok(json!({})))
        }
        ("GET", ["settings"]) => Ok(ok(json!({ "settings": {} }))),
        ("POST", ["settings"]) | ("PUT", ["settings"]) => Ok(ok(json!({}))),
        _ => Err(not_found(&format!(
            "{} {}{} is not part of the admin API intercept answers (mappings, requests, near-misses, scenarios, reset, health)",
            seen.method, "/__admin", rest
        ))),
    }
}

/// Makes a stub from `doc` (replacing the one with id `replacing`): 201
/// with the stub as kept, or 422 with why it cannot be one.
fn make(stubs: &Stubs<'_>, doc: Value, replacing: Option<&str>) -> Result<Response, Response> {
    let made = mapping::made(&doc, stubs.dir, 0).map_err(|e| invalid(&e))?;
    let source = made.source.clone();
    stubs.edits.update(|e| {
        e.made.retain(|m| m.get("id").and_then(Value::as_str) != Some(made.id.as_str()));
        if let Some(id) = replacing {
            e.removed.insert(id.to_string());
        }
        e.made.push(source.clone());
    });
    let mut response = ok(source);
    response.status = 201;
    Ok(response)
}

/// The mappings back to the files: every process reads them again.
fn reset_mappings(stubs: &Stubs<'_>) {
    stubs.edits.update(|e| {
        let epoch = e.files_epoch + 1;
        *e = Default::default();
        e.files_epoch = epoch;
    });
}

/// Writes each mapping made at run time to `DIR/mappings`, one file each.
fn save(stubs: &Stubs<'_>) -> Result<(), Response> {
    let edits = stubs.edits.get();
    let dir = stubs.dir.join("mappings");
    for m in &edits.made {
        let id = m.get("id").and_then(Value::as_str).unwrap_or("stub");
        let path = dir.join(format!("saved-{id}.json"));
        let text = serde_json::to_string_pretty(m).map_err(|e| server_error(&e.to_string()))? + "\n";
        std::fs::write(&path, text).map_err(|e| server_error(&format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Every entry of the request journal, oldest first.
fn journal(stubs: &Stubs<'_>) -> Vec<Value> {
    let book = (stubs.book)().ok();
    let mappings = book.as_deref().map_or(&[][..], |b| &b.mappings[..]);
    stubs.asked.all().iter().filter_map(|l| serde_json::from_str(l).ok()).map(|e| asked::full(e, mappings)).collect()
}

/// The journal's entries whose requests `pattern` matches, oldest first.
fn asked_like(stubs: &Stubs<'_>, pattern: &Value) -> Result<Vec<Value>, Response> {
    let pattern = mapping::pattern(pattern).map_err(|e| invalid(&e))?;
    Ok(journal(stubs).into_iter().filter(|e| near_miss::matches(&pattern, &asked::seen_of(&e["request"]))).collect())
}

/// The closest stubs to `request` (a logged request's JSON), closest first.
fn near_misses(mappings: &[Mapping], request: &Value) -> Vec<Value> {
    let seen = asked::seen_of(request);
    let mut scored: Vec<(f64, &Mapping)> =
        mappings.iter().map(|m| (near_miss::score(&near_miss::fields(&m.request, &seen)), m)).filter(|(d, _)| *d > 0.0).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored
        .into_iter()
        .take(3)
        .map(|(d, m)| json!({ "request": request, "stubMapping": m.source, "matchResult": { "distance": d } }))
        .collect()
}

/// Every scenario the stubs name, with its state and the states it can be in.
fn scenarios(stubs: &Stubs<'_>) -> Result<Response, Response> {
    let book = stubs.book().map_err(|e| server_error(&e))?;
    let states = stubs.scenarios.get();
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for s in book.mappings.iter().filter_map(|m| m.scenario.as_ref()) {
        let at = match found.iter().position(|(n, _)| *n == s.name) {
            Some(at) => at,
            None => {
                found.push((s.name.clone(), vec![STARTED.to_string()]));
                found.len() - 1
            }
        };
        for state in s.required.iter().chain(&s.new_state) {
            if !found[at].1.contains(state) {
                found[at].1.push(state.clone());
            }
        }
    }
    let list: Vec<Value> = found
        .into_iter()
        .map(|(name, possible)| {
            let state = states.get(&name).map_or(STARTED, String::as_str);
            json!({ "id": name, "name": name, "state": state, "possibleStates": possible })
        })
        .collect();
    Ok(ok(json!({ "scenarios": list })))
}

/// `limit` and `offset` from the query, as WireMock pages its lists.
fn page(all: Vec<Value>, query: &[(String, String)]) -> Vec<Value> {
    let number = |k: &str| query.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.parse::<usize>().ok());
    all.into_iter().skip(number("offset").unwrap_or(0)).take(number("limit").unwrap_or(usize::MAX)).collect()
}

fn ok(v: Value) -> Response {
    Response::new(200, "application/json", format!("{v:#}"))
}

fn not_found(why: &str) -> Response {
    Response::new(404, "application/json", format!("{:#}", json!({ "errors": [{ "code": 10, "title": why }] })))
}

/// WireMock's 422 for a stub or pattern it cannot take.
fn invalid(why: &str) -> Response {
    Response::new(
        422,
        "application/json",
        format!("{:#}", json!({ "errors": [{ "code": 10, "title": "Error parsing JSON", "detail": why }] })),
    )
}

fn server_error(why: &str) -> Response {
    Response::new(500, "application/json", format!("{:#}", json!({ "errors": [{ "code": 10, "title": why }] })))
}
