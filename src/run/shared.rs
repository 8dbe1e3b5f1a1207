//! A value every process of the run shares: a scenario's state, how often
//! a recorded answer was given, the mappings added at run time.
//!
//! In a run, the value lives in the run's directory as `NAME.json`, with
//! two small files beside it: `NAME.gen`, one page mapped by every process
//! whose first eight bytes count the changes, and `NAME.lock`, which a
//! change holds (`flock`) while it reads, changes and writes the value, so
//! a change made by one process is atomic against every other and is what
//! the next read in any process sees. Reading when nothing changed is one
//! atomic load of the count and a look at this process's copy: no system
//! call. A process killed mid-change loses its lock with it (the kernel
//! drops a dead process's `flock`s), and the value is written to a new
//! file and renamed over the old one, so no reader sees half of it.
//!
//! With no run (the bare shim) the value lives in this process alone.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fork_lock::ForkLock;
use crate::log_error;

/// What a shared value must be: kept as JSON, compared to skip a write.
pub trait Value: Serialize + DeserializeOwned + Default + Clone + PartialEq + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Default + Clone + PartialEq + Send + Sync + 'static> Value for T {}

/// A value of type `T` shared by the processes of the run.
pub struct Shared<T: Value> {
    /// `DIR/NAME`, without the suffixes; None: this process alone.
    stem: Option<PathBuf>,
    counter: OnceLock<Option<Counter>>,
    /// This process's copy, and the count it was read at.
    copy: ForkLock<(u64, Arc<T>)>,
}

impl<T: Value> Shared<T> {
    /// The value named `name` in the run's directory `dir`, or in this
    /// process alone when there is no run.
    pub fn new(dir: Option<&Path>, name: &str) -> Shared<T> {
        Shared { stem: dir.map(|d| d.join(name)), counter: OnceLock::new(), copy: ForkLock::new((u64::MAX, Arc::new(T::default()))) }
    }

    fn counter(&self) -> Option<&Counter> {
        let stem = self.stem.as_ref()?;
        self.counter
            .get_or_init(|| {
                Counter::map(&with_suffix(stem, "gen"))
                    .map_err(|e| log_error!("the run's shared state {}: {e}; this process keeps its own", stem.display()))
                    .ok()
            })
            .as_ref()
    }

    /// The value now.
    pub fn get(&self) -> Arc<T> {
        let Some(counter) = self.counter() else { return self.copy.lock().1.clone() };
        let now = counter.get();
        {
            let copy = self.copy.lock();
            if copy.0 == now {
                return copy.1.clone();
            }
        }
        let value = Arc::new(self.read());
        *self.copy.lock() = (now, value.clone());
        value
    }

    /// Changes the value with `change`, atomically for every process of
    /// the run, and returns what `change` returned.
    pub fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let (Some(counter), Some(stem)) = (self.counter(), &self.stem) else {
            let mut copy = self.copy.lock();
            return change(Arc::make_mut(&mut copy.1));
        };
        let lock = match Lock::take(&with_suffix(stem, "lock")) {
            Ok(lock) => lock,
            Err(e) => {
                log_error!("the run's shared state {}: cannot lock: {e}", stem.display());
                let mut copy = self.copy.lock();
                return change(Arc::make_mut(&mut copy.1));
            }
        };
        let now = counter.get();
        let held = { self.copy.lock().clone() };
        let mut value = if held.0 == now { (*held.1).clone() } else { self.read() };
        let before = value.clone();
        let out = change(&mut value);
        let mut at = now;
        if value != before {
            match write(stem, &value) {
                Ok(()) => at = counter.bump(),
                Err(e) => log_error!("the run's shared state {}: cannot write: {e}", stem.display()),
            }
        }
        *self.copy.lock() = (at, Arc::new(value));
        drop(lock);
        out
    }

    /// Puts the value back to its start, for every process of the run.
    pub fn reset(&self) {
        self.update(|v| *v = T::default());
    }

    fn read(&self) -> T {
        let Some(stem) = &self.stem else { return T::default() };
        let path = with_suffix(stem, "json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log_error!("the run's shared state {}: {e}; starting it afresh", path.display());
                T::default()
            }),
            Err(_) => T::default(),
        }
    }
}

/// Puts every shared value of the run in `dir` back to its start
/// (`intercept reset`): each `NAME.json` goes, under its lock, and its
/// count moves on so every process reads the start again.
pub fn reset_all(dir: &Path) -> std::io::Result<usize> {
    let mut done = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "gen") {
            continue;
        }
        let stem = path.with_extension("");
        let _lock = Lock::take(&with_suffix(&stem, "lock"))?;
        match std::fs::remove_file(with_suffix(&stem, "json")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = std::fs::OpenOptions::new().write(true).truncate(true).open(with_suffix(&stem, "lines"));
        Counter::map(&path)?.bump();
        done += 1;
    }
    Ok(done)
}

/// `STEM.SUFFIX`: the files one shared value or list keeps.
pub(crate) fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn write<T: Value>(stem: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let fresh = with_suffix(stem, &format!("json.{}", std::process::id()));
    std::fs::write(&fresh, bytes)?;
    std::fs::rename(&fresh, with_suffix(stem, "json"))
}

/// The count of changes: eight bytes of a page every process maps.
pub(crate) struct Counter {
    at: *const AtomicU64,
}

// SAFETY: the page stays mapped for the life of the process, and is only
// reached through the atomic.
unsafe impl Send for Counter {}
// SAFETY: as above.
unsafe impl Sync for Counter {}

impl Counter {
    /// Maps `path` (made, a page long, if it is not there).
    pub(crate) fn map(path: &Path) -> std::io::Result<Counter> {
        let file = OpenOptions::new().read(true).write(true).create(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(path)?;
        const PAGE: u64 = 4096;
        if file.metadata()?.len() < PAGE {
            file.set_len(PAGE)?;
        }
        // SAFETY: maps a page of an open file, shared; checked below.
        let at = unsafe {
            libc::mmap(std::ptr::null_mut(), PAGE as usize, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // The mapping outlives the file's descriptor.
        Ok(Counter { at: at.cast() })
    }

    /// The count now.
    pub(crate) fn get(&self) -> u64 {
        // SAFETY: a page-aligned u64 of a mapping that is never unmapped.
        unsafe { &*self.at }.load(Ordering::Acquire)
    }

    /// Moves the count on; returns the new count.
    pub(crate) fn bump(&self) -> u64 {
        // SAFETY: as in `get`.
        unsafe { &*self.at }.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The second count of the page (how many lines a list holds).
    pub(crate) fn second(&self) -> &AtomicU64 {
        // SAFETY: the page holds 512 u64s; this is the second.
        unsafe { &*self.at.add(1) }
    }
}

/// An exclusive `flock` on a file of its own, given back when the file
/// closes with it.
pub(crate) struct Lock {
    _held: File,
}

impl Lock {
    pub(crate) fn take(path: &Path) -> std::io::Result<Lock> {
        let file = OpenOptions::new().read(true).write(true).create(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(path)?;
        loop {
            // SAFETY: flock on an fd of ours.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock { _held: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type States = BTreeMap<String, String>;

    #[test]
    fn two_processes_see_each_others_changes() {
        let dir = crate::testing::temp_dir("shared");
        // Two values of one name stand for two processes of the run.
        let (a, b) = (Shared::<States>::new(Some(&dir), "s"), Shared::<States>::new(Some(&dir), "s"));
        assert!(a.get().is_empty());
        a.update(|s| s.insert("todo".into(), "added".into()));
        assert_eq!(b.get().get("todo").map(String::as_str), Some("added"));
        b.update(|s| s.insert("todo".into(), "two".into()));
        assert_eq!(a.get().get("todo").map(String::as_str), Some("two"));
        assert_eq!(reset_all(&dir).unwrap(), 1);
        assert!(a.get().is_empty() && b.get().is_empty());
    }

    #[test]
    fn changes_from_many_threads_are_each_counted() {
        let dir = crate::testing::temp_dir("shared-threads");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.to_path_buf();
                std::thread::spawn(move || {
                    let mine = Shared::<u64>::new(Some(&dir), "n");
                    (0..50).for_each(|_| mine.update(|n| *n += 1));
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*Shared::<u64>::new(Some(&dir), "n").get(), 200);
    }

    #[test]
    fn with_no_run_the_value_is_this_processes() {
        let alone = Shared::<u64>::new(None, "n");
        alone.update(|n| *n = 7);
        assert_eq!(*alone.get(), 7);
        alone.reset();
        assert_eq!(*alone.get(), 0);
    }
}
