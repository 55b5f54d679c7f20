//! Checkpoints: the saved state of a paused trial, or of a PBT member that others may copy,
//! and the reference counts that decide when one may be deleted.
//!
//! # Layout
//! A study's checkpoints live under one directory that every worker can reach (a shared or
//! network file system for workers on many machines), recorded with the study:
//! `<dir>/<study name>/trial-<number>/step-<step>/`. A checkpoint is a directory, so a
//! program may write any files it likes (a framework's own checkpoint format); the bytes API
//! writes one file, `state.bin`. A checkpoint is written into a temporary sibling directory
//! and renamed into place, so a reader never sees half of one, and a worker killed while
//! saving leaves only a `.tmp-*` directory behind.
//!
//! # Reference counts
//! A checkpoint is *referenced* while a trial may still resume from it: a paused trial holds
//! its own latest checkpoint; a PBT member holds its latest one (another member may copy it);
//! a PBT child holds its parent's until it has saved one of its own. The counts live in
//! storage ([`CheckpointRefs`], one study attribute updated by compare-and-set), so workers on
//! many machines agree on them. A referenced checkpoint is never deleted. Of the
//! unreferenced ones, the newest `keep_checkpoints` are kept (to inspect or replay a
//! lineage) and older ones are deleted; when more than `keep_checkpoints` are referenced at
//! once, a warning says so (the bound cannot be honoured without losing a resumable trial).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file the bytes API reads and writes inside a checkpoint directory.
pub const STATE_FILE: &str = "state.bin";

/// Identifies a checkpoint: the trial that saved it and the step it was saved at (after
/// that step's training).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointId {
    /// The number of the trial that saved it.
    pub trial: u64,
    /// The last step trained before it was saved.
    pub step: u64,
}

impl CheckpointId {
    fn key(&self) -> String {
        format!("{}/{}", self.trial, self.step)
    }

    fn from_key(key: &str) -> Option<CheckpointId> {
        let (trial, step) = key.split_once('/')?;
        Some(CheckpointId {
            trial: trial.parse().ok()?,
            step: step.parse().ok()?,
        })
    }
}

/// The directory of a study's checkpoints and how to read and write one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStore {
    root: PathBuf,
}

impl CheckpointStore {
    /// The checkpoints of study `study` under the shared directory `dir`. The study's name is
    /// used as a directory name with every character outside `[A-Za-z0-9._-]` replaced by
    /// `_`.
    pub fn new(dir: impl AsRef<Path>, study: &str) -> Self {
        let safe: String = study
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let safe = if safe.is_empty() || safe.chars().all(|c| c == '.') {
            "_".repeat(safe.len().max(1))
        } else {
            safe
        };
        CheckpointStore {
            root: dir.as_ref().join(safe),
        }
    }

    /// The study's checkpoint directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where checkpoint `id` lives.
    pub fn path(&self, id: CheckpointId) -> PathBuf {
        self.root
            .join(format!("trial-{}", id.trial))
            .join(format!("step-{}", id.step))
    }

    /// Whether checkpoint `id` exists.
    pub fn exists(&self, id: CheckpointId) -> bool {
        self.path(id).is_dir()
    }

    /// Saves checkpoint `id`: `write` fills a fresh directory, which then replaces any
    /// earlier checkpoint of the same id in one rename.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the directory when it cannot be created or renamed, or
    /// carrying `write`'s own error.
    pub fn save<E: std::fmt::Display>(
        &self,
        id: CheckpointId,
        write: impl FnOnce(&CheckpointWriter<'_>) -> std::result::Result<(), E>,
    ) -> Result<PathBuf> {
        let target = self.path(id);
        let parent = target
            .parent()
            .ok_or_else(|| io_error("find the parent of", &target, "no parent directory"))?;
        std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
        let tmp = parent.join(format!(
            ".tmp-step-{}-{}-{:x}",
            id.step,
            std::process::id(),
            crate::rng::TrialRng::from_seed(nanos()).next_u64()
        ));
        std::fs::create_dir(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        let written = write(&CheckpointWriter { dir: &tmp });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Checkpoint(format!(
                "saving checkpoint {} of trial #{} failed: {e}",
                id.step, id.trial
            )));
        }
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| io_error("replace", &target, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io_error("move into place", &target, e))?;
        Ok(target)
    }

    /// Deletes checkpoint `id` (a missing one is not an error).
    pub fn remove(&self, id: CheckpointId) -> Result<()> {
        let path = self.path(id);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                // Drop the trial's directory once its last checkpoint is gone.
                if let Some(parent) = path.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &path, e)),
        }
    }

    /// The checkpoint `id`, to read from; errors when it does not exist.
    pub fn open(&self, id: CheckpointId) -> Result<Checkpoint> {
        let dir = self.path(id);
        if !dir.is_dir() {
            return Err(Error::Checkpoint(format!(
                "checkpoint {} of trial #{} is missing: expected the directory {}; is the \
                 checkpoint directory shared by every worker (the same path on each machine)?",
                id.step,
                id.trial,
                dir.display()
            )));
        }
        Ok(Checkpoint { id, dir })
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn io_error(action: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint(format!(
        "cannot {action} {}: {e}; check that the checkpoint directory exists and is writable",
        path.display()
    ))
}

/// A fresh checkpoint directory being written.
#[derive(Debug)]
pub struct CheckpointWriter<'a> {
    dir: &'a Path,
}

impl CheckpointWriter<'_> {
    /// The directory to write into (write any files; they are kept together).
    pub fn dir(&self) -> &Path {
        self.dir
    }

    /// Writes `bytes` as the checkpoint's state (the file [`STATE_FILE`]).
    pub fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(self.dir.join(STATE_FILE), bytes)
    }
}

/// A saved checkpoint a trial resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    id: CheckpointId,
    dir: PathBuf,
}

impl Checkpoint {
    /// Which trial saved it, at which step.
    pub fn id(&self) -> CheckpointId {
        self.id
    }

    /// The last step trained before it was saved: resume training at `step() + 1`.
    pub fn step(&self) -> u64 {
        self.id.step
    }

    /// Its directory (read any files the objective wrote).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state written with [`CheckpointWriter::write_bytes`].
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the file when it cannot be read.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        let file = self.dir.join(STATE_FILE);
        std::fs::read(&file).map_err(|e| io_error("read", &file, e))
    }
}

/// One checkpoint's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RefEntry {
    /// Trials that may still resume from it.
    refs: u32,
    /// When it last became unreferenced (a study-wide counter): the oldest go first.
    seq: u64,
}

/// The reference counts of a study's checkpoints, as stored (one study attribute).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRefs {
    entries: BTreeMap<String, RefEntry>,
    next_seq: u64,
}

impl CheckpointRefs {
    /// Counts one more trial that may resume from `id` (a new checkpoint starts at 1).
    pub fn acquire(&mut self, id: CheckpointId) {
        let entry = self
            .entries
            .entry(id.key())
            .or_insert(RefEntry { refs: 0, seq: 0 });
        entry.refs = entry.refs.saturating_add(1);
    }

    /// Counts one trial fewer that may resume from `id`; unknown ids are ignored (a release
    /// may be repeated after a crash).
    pub fn release(&mut self, id: CheckpointId) {
        if let Some(entry) = self.entries.get_mut(&id.key()) {
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs == 0 {
                entry.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
    }

    /// How many trials may resume from `id`.
    pub fn refs(&self, id: CheckpointId) -> u32 {
        self.entries.get(&id.key()).map_or(0, |e| e.refs)
    }

    /// How many checkpoints are referenced.
    pub fn referenced(&self) -> usize {
        self.entries.values().filter(|e| e.refs > 0).count()
    }

    /// How many checkpoints are known (referenced or kept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no checkpoint is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets the unreferenced checkpoints beyond the newest `keep` and returns them, oldest
    /// first, for the caller to delete.
    pub fn collect_garbage(&mut self, keep: usize) -> Vec<CheckpointId> {
        let mut free: Vec<(u64, String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.refs == 0)
            .map(|(k, e)| (e.seq, k.clone()))
            .collect();
        free.sort();
        let excess = free.len().saturating_sub(keep);
        free.into_iter()
            .take(excess)
            .filter_map(|(_, key)| {
                self.entries.remove(&key);
                CheckpointId::from_key(&key)
            })
            .collect()
    }
}

/// A scratch directory for tests, removed when dropped.
#[cfg(test)]
pub(crate) struct ScratchDir(PathBuf);

#[cfg(test)]
impl ScratchDir {
    pub(crate) fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ferrotune-{label}-{}-{:x}",
            std::process::id(),
            crate::rng::TrialRng::from_seed(nanos()).next_u64()
        ));
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        ScratchDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(trial: u64, step: u64) -> CheckpointId {
        CheckpointId { trial, step }
    }

    #[test]
    fn saved_bytes_read_back_and_replace_atomically() {
        let dir = ScratchDir::new("ckpt");
        let store = CheckpointStore::new(dir.path(), "my study/1");
        assert!(store.root().ends_with("my_study_1"));
        let path = store.save(id(3, 9), |w| w.write_bytes(b"first")).unwrap();
        assert_eq!(path, store.path(id(3, 9)));
        store.save(id(3, 9), |w| w.write_bytes(b"second")).unwrap();
        let ckpt = store.open(id(3, 9)).unwrap();
        assert_eq!(ckpt.read_bytes().unwrap(), b"second");
        assert_eq!(ckpt.step(), 9);
        // A failed write leaves the old checkpoint and no temporary directory.
        let err = store
            .save(id(3, 9), |_| Err::<(), _>("disk full"))
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(
            store.open(id(3, 9)).unwrap().read_bytes().unwrap(),
            b"second"
        );
        let names: Vec<_> = std::fs::read_dir(store.path(id(3, 9)).parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("step-9")]);
        store.remove(id(3, 9)).unwrap();
        store.remove(id(3, 9)).unwrap();
        let err = store.open(id(3, 9)).unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("shared"), "{err}");
    }

    #[test]
    fn referenced_checkpoints_survive_and_the_newest_free_ones_are_kept() {
        let mut refs = CheckpointRefs::default();
        for t in 0..5 {
            refs.acquire(id(t, 1));
        }
        refs.acquire(id(0, 1)); // a PBT child also resumes from trial 0's checkpoint
        for t in [3, 1, 0, 4] {
            refs.release(id(t, 1));
        }
        assert_eq!(refs.refs(id(0, 1)), 1);
        assert_eq!(refs.referenced(), 2);
        // Free now: 3, 1, 4 (in that order); keep the newest one.
        let gone = refs.collect_garbage(1);
        assert_eq!(gone, vec![id(3, 1), id(1, 1)]);
        assert_eq!(refs.len(), 3);
        refs.release(id(0, 1));
        assert_eq!(refs.collect_garbage(1), vec![id(4, 1)]);
        refs.release(id(9, 9)); // unknown: ignored
        let text = serde_json::to_string(&refs).unwrap();
        assert_eq!(serde_json::from_str::<CheckpointRefs>(&text).unwrap(), refs);
    }
}
