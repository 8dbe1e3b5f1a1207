//! A HAR file held as an index: every entry with its answer's body left
//! in the file, read when that entry answers. The first process of a run
//! to load a file (`intercept run`, checking it) keeps the index in the
//! run's directory ([`crate::run`]); every later process of the run reads
//! that instead of parsing the file again: a 200 MB recording parses in
//! seconds, and its index reads in milliseconds.
//!
//! An index names the file version it was made from (device, inode, size,
//! modification time, as `fstat` gives them for the open file): a file
//! replaced since (a recording appended to it) is indexed again, and the
//! bodies are always read from the open file the index was checked
//! against.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};

use super::file::{self, Entry};

/// Where an entry's JSON lies in the file: its first byte and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The offset of the entry's first byte in the file.
    pub start: u64,
    /// The entry's length in bytes.
    pub len: u64,
}

/// A file's entries, their bodies left in `file` at `spans`.
pub struct Indexed {
    /// With empty response bodies.
    pub entries: Vec<Entry>,
    /// Where each entry lies in `file`, one span per entry.
    pub spans: Vec<Span>,
    /// The HAR file, open: the version the index was checked against.
    pub file: File,
    /// Whether the run's index was read (else the file was parsed).
    pub from_run: bool,
}

const VERSION: u64 = 1;

/// Opens `path` and indexes it: from `run_dir`'s index of this version of
/// the file when there is one, else by parsing the file, and then keeping
/// the index in `run_dir`.
pub fn open(path: &Path, run_dir: Option<&Path>) -> Result<Indexed, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let version = format!("{}:{}:{}:{}.{}", meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec());
    let kept = run_dir.map(|d| d.join(format!("{}.index", crate::run::name_for("har", &version))));
    if let Some((entries, spans)) = kept.as_deref().and_then(|k| read_index(k, &version)) {
        return Ok(Indexed { entries, spans, file, from_run: true });
    }
    let mut text = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::io::Read::read_to_end(&mut &file, &mut text).map_err(cannot)?;
    let mut entries = Vec::new();
    let mut spans = Vec::new();
    for (range, entry) in file::raw_entries(&text).map_err(|e| format!("{}: {e}", path.display()))? {
        if let Some(mut entry) = entry {
            entry.body = Vec::new();
            entries.push(entry);
            spans.push(Span { start: range.start as u64, len: range.len() as u64 });
        }
    }
    drop(text);
    if let Some(kept) = kept {
        // A run whose directory cannot take it parses the file again in
        // each process: slower, and nothing else.
        let _ = write_index(&kept, &version, &entries, &spans);
    }
    Ok(Indexed { entries, spans, file, from_run: false })
}

/// The response body of the entry at `span` of `file`.
pub fn body(file: &File, span: Span) -> Result<Vec<u8>, String> {
    let mut raw = vec![0; usize::try_from(span.len).map_err(|e| e.to_string())?];
    file.read_exact_at(&mut raw, span.start).map_err(|e| e.to_string())?;
    file::body_of(&raw)
}

fn write_index(kept: &Path, version: &str, entries: &[Entry], spans: &[Span]) -> std::io::Result<()> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let list: Vec<Value> = entries
        .iter()
        .zip(spans)
        .map(|(e, s)| {
            json!([
                e.method,
                e.scheme,
                e.host,
                e.port,
                e.path,
                e.query,
                e.request_headers,
                b64(&e.request_body),
                e.status,
                e.reason,
                e.headers,
                e.body_as_sent,
                e.started,
                e.millis.to_bits(),
                s.start,
                s.len,
            ])
        })
        .collect();
    let doc = json!({"version": VERSION, "file": version, "entries": list});
    let temp = PathBuf::from(format!("{}.{}.tmp", kept.display(), std::process::id()));
    let written = File::create(&temp).and_then(|mut f| f.write_all(&serde_json::to_vec(&doc).unwrap_or_default()));
    written.and_then(|()| std::fs::rename(&temp, kept)).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// The index kept at `kept`, when it is of this version of the file.
fn read_index(kept: &Path, version: &str) -> Option<(Vec<Entry>, Vec<Span>)> {
    let doc: Value = serde_json::from_slice(&std::fs::read(kept).ok()?).ok()?;
    if doc["version"].as_u64() != Some(VERSION) || doc["file"].as_str() != Some(version) {
        return None;
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    let pairs =
        |v: &Value| -> Option<Vec<(String, String)>> { v.as_array()?.iter().map(|p| Some((text(p.get(0)?)?, text(p.get(1)?)?))).collect() };
    let mut entries = Vec::new();
    let mut spans = Vec::new();
    for e in doc["entries"].as_array()? {
        entries.push(Entry {
            method: text(&e[0])?,
            scheme: text(&e[1])?,
            host: text(&e[2])?,
            port: u16::try_from(e[3].as_u64()?).ok()?,
            path: text(&e[4])?,
            query: pairs(&e[5])?,
            request_headers: pairs(&e[6])?,
            request_body: base64::engine::general_purpose::STANDARD.decode(e[7].as_str()?).ok()?,
            status: u16::try_from(e[8].as_u64()?).ok()?,
            reason: text(&e[9])?,
            headers: pairs(&e[10])?,
            body: Vec::new(),
            body_as_sent: e[11].as_bool()?,
            started: text(&e[12])?,
            // As bits: a float through JSON may come back one step off.
            millis: f64::from_bits(e[13].as_u64()?),
        });
        spans.push(Span { start: e[14].as_u64()?, len: e[15].as_u64()? });
    }
    Some((entries, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAR: &str = r#"{"log": {"version": "1.2", "entries": [
        {"request": {"method": "GET", "url": "http://api.example.test/a?x=1", "headers": []},
         "response": {"status": 200, "statusText": "OK", "headers": [{"name": "Content-Type", "value": "text/plain"}],
                      "content": {"text": "first \u00e9"}}},
        {"request": {"method": "GET", "url": "http://api.example.test/gone", "headers": []},
         "response": {"status": 0, "headers": [], "content": {}}},
        {"request": {"method": "POST", "url": "https://api.example.test:8443/b", "headers": [],
                     "postData": {"text": "{\"k\": 1}"}},
         "response": {"status": 201, "headers": [], "content": {"encoding": "base64", "text": "AAEC"}}}
    ]}}"#;

    #[test]
    fn the_run_keeps_one_index_per_file_version_and_bodies_stay_in_the_file() {
        let dir = crate::testing::temp_dir("har-index");
        let har = dir.join("rec.har");
        std::fs::write(&har, HAR).unwrap();
        let run = dir.join("run");
        std::fs::create_dir(&run).unwrap();
        let first = open(&har, Some(&run)).unwrap();
        assert!(!first.from_run);
        let second = open(&har, Some(&run)).unwrap();
        assert!(second.from_run, "the second load reads the run's index");
        assert_eq!(second.entries, first.entries);
        assert_eq!(second.spans, first.spans);
        assert_eq!(
            first.entries,
            file::parse(HAR.as_bytes()).unwrap().into_iter().map(|e| Entry { body: Vec::new(), ..e }).collect::<Vec<_>>()
        );
        assert_eq!(body(&second.file, second.spans[0]).unwrap(), "first é".as_bytes());
        assert_eq!(body(&second.file, second.spans[1]).unwrap(), [0, 1, 2]);
        // A new version of the file is indexed again.
        std::fs::write(&har, HAR.replace("first", "newer")).unwrap();
        let third = open(&har, Some(&run)).unwrap();
        assert!(!third.from_run);
        assert_eq!(body(&third.file, third.spans[0]).unwrap(), "newer é".as_bytes());
    }

    #[test]
    fn an_index_of_another_version_or_damaged_is_not_used() {
        let dir = crate::testing::temp_dir("har-index-bad");
        let kept = dir.join("x.index");
        std::fs::write(&kept, "{not json").unwrap();
        assert!(read_index(&kept, "1:2:3:4.5").is_none());
        write_index(&kept, "1:2:3:4.5", &[], &[]).unwrap();
        assert!(read_index(&kept, "1:2:3:4.5").is_some());
        assert!(read_index(&kept, "1:2:3:4.6").is_none());
    }
}
