//! A list of lines every process of the run adds to: what a stubs route
//! was asked, for WireMock's `/__admin/requests`.
//!
//! In a run the lines live in `NAME.lines` in the run's directory, each
//! added with one `write` to a file opened `O_APPEND`, so lines from many
//! processes land whole and in the order they were written, with no lock
//! taken. Taking lines out (`retain`, `clear`) holds `NAME.lock` and
//! rewrites the file in place. The second count of `NAME.gen`'s page
//! holds how many lines there are, so the list stops growing at [`MAX`]
//! without reading the file. With no run, the lines live in this process.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use super::shared::{Counter, Lock, with_suffix};
use crate::fork_lock::ForkLock;
use crate::log_error;

/// The most lines a list keeps; later ones are not added (WireMock's
/// journal has a limit too, `--max-request-journal`, off by default).
pub const MAX: u64 = 100_000;

/// Lines shared by the processes of the run.
pub struct Lines {
    stem: Option<PathBuf>,
    file: OnceLock<Option<(File, Counter)>>,
    /// The lines when there is no run (or its files cannot be opened).
    local: ForkLock<Vec<String>>,
}

impl Lines {
    /// The list named `name` in the run's directory `dir`, or in this
    /// process alone.
    pub fn new(dir: Option<&Path>, name: &str) -> Lines {
        Lines { stem: dir.map(|d| d.join(name)), file: OnceLock::new(), local: ForkLock::new(Vec::new()) }
    }

    fn path(&self, suffix: &str) -> Option<PathBuf> {
        Some(with_suffix(self.stem.as_ref()?, suffix))
    }

    fn file(&self) -> Option<&(File, Counter)> {
        self.file
            .get_or_init(|| {
                let (lines, counter) = (self.path("lines")?, self.path("gen")?);
                let opened = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&lines)
                    .and_then(|f| Ok((f, Counter::map(&counter)?)));
                opened.map_err(|e| log_error!("the run's list {}: {e}; this process keeps its own", lines.display())).ok()
            })
            .as_ref()
    }

    /// Adds `line` (which holds no line break).
    pub fn push(&self, line: &str) {
        let Some((file, counter)) = self.file() else {
            let mut local = self.local.lock();
            if (local.len() as u64) < MAX {
                local.push(line.to_string());
            }
            return;
        };
        if counter.second().fetch_add(1, Ordering::AcqRel) >= MAX {
            counter.second().fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = (&*file).write_all(&bytes) {
            log_error!("the run's list: cannot add a line: {e}");
        }
    }

    /// Every line, oldest first.
    pub fn all(&self) -> Vec<String> {
        let Some((file, _)) = self.file() else { return self.local.lock().clone() };
        // Read at offsets (pread), never moving the file's offset, which
        // every thread of the process shares.
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match file.read_at(&mut chunk, bytes.len() as u64) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log_error!("the run's list: cannot read it: {e}");
                    break;
                }
            }
        }
        String::from_utf8_lossy(&bytes).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// Keeps only the lines `keep` says yes to.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let (Some((file, counter)), Some(lock)) = (self.file(), self.path("lock")) else {
            self.local.lock().retain(|l| keep(l));
            return;
        };
        let _held = match Lock::take(&lock) {
            Ok(held) => held,
            Err(e) => return log_error!("the run's list: cannot lock it: {e}"),
        };
        let kept: Vec<String> = self.all().into_iter().filter(|l| keep(l)).collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        // Truncated, then written whole: with O_APPEND the write lands at
        // the new end, after any line another process added meanwhile.
        if let Err(e) = file.set_len(0).and_then(|_| (&*file).write_all(text.as_bytes())) {
            log_error!("the run's list: cannot rewrite it: {e}");
        }
        counter.second().store(kept.len() as u64, Ordering::Release);
    }

    /// Takes every line out.
    pub fn clear(&self) {
        self.retain(|_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_added_by_two_processes_are_one_list() {
        let dir = crate::testing::temp_dir("lines");
        let (a, b) = (Lines::new(Some(&dir), "asked"), Lines::new(Some(&dir), "asked"));
        a.push("one");
        b.push("two");
        a.push("three");
        assert_eq!(b.all(), ["one", "two", "three"]);
        b.retain(|l| l != "two");
        assert_eq!(a.all(), ["one", "three"]);
        a.push("four");
        assert_eq!(b.all(), ["one", "three", "four"]);
        b.clear();
        assert!(a.all().is_empty());
        a.push("five");
        assert_eq!(b.all(), ["five"]);
    }

    #[test]
    fn with_no_run_the_lines_are_this_processes() {
        let alone = Lines::new(None, "asked");
        alone.push("x");
        alone.push("y");
        alone.retain(|l| l == "y");
        assert_eq!(alone.all(), ["y"]);
    }
}
