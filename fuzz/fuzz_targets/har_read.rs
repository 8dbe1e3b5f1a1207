//! Arbitrary bytes read as a HAR file, as a `har:` route and `intercept
//! har2stubs` read one. Any panic or hang is a bug (a bad file is an
//! error naming what is wrong), and for a file that reads:
//!
//! - its index, made and then read back from a run's directory, holds the
//!   same entries, and every body read from the file is the entry's;
//! - written back as HAR and read again, the entries come back as they
//!   were (after one round, which settles what a foreign file spells
//!   differently);
//! - every stub mapping `har2stubs` would write from it loads.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use intercept::apps::har::{file, index, replay};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("intercept-fuzz-har-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("stubs/mappings")).unwrap();
        dir
    })
}

fn document(entries: &[file::Entry]) -> Vec<u8> {
    let list: Vec<_> = entries.iter().map(file::to_json).collect();
    serde_json::to_vec(&json!({"log": {"version": "1.2", "entries": list}})).unwrap()
}

fuzz_target!(|input: &[u8]| {
    let Ok(entries) = file::parse(input) else { return };
    let dir = dir();
    let har = dir.join("fuzz.har");
    std::fs::write(&har, input).unwrap();
    let run = dir.join("run");
    for _ in 0..2 {
        let indexed = index::open(&har, Some(&run)).unwrap();
        assert_eq!(indexed.entries.len(), entries.len());
        for ((e, span), whole) in indexed.entries.iter().zip(&indexed.spans).zip(&entries) {
            assert_eq!(&file::Entry { body: whole.body.clone(), ..e.clone() }, whole);
            assert_eq!(index::body(&indexed.file, *span).unwrap(), whole.body);
        }
    }
    for old in std::fs::read_dir(&run).unwrap() {
        let _ = std::fs::remove_file(old.unwrap().path());
    }

    let once = file::parse(&document(&entries)).unwrap();
    assert_eq!(once.len(), entries.len());
    let twice = file::parse(&document(&once)).unwrap();
    assert_eq!(twice, once);

    let stubs = dir.join("stubs");
    for old in std::fs::read_dir(stubs.join("mappings")).unwrap() {
        let _ = std::fs::remove_file(old.unwrap().path());
    }
    for (i, mapping) in replay::mappings(&entries).iter().enumerate() {
        std::fs::write(stubs.join(format!("mappings/{i:04}.json")), serde_json::to_vec(mapping).unwrap()).unwrap();
    }
    if let Err(e) = intercept::apps::stubs::validate(&stubs) {
        panic!("a mapping made from a recorded entry does not load: {e}");
    }
});
