//! What the integration tests share: the built binary, a fresh directory with a SQLite study
//! database, and the arguments of a one-objective `ferrotune run`. Each test file declares it
//! with `mod common;` and uses what it needs (hence no dead-code warnings here).

#![allow(dead_code)]

use ferrotune::{FrozenTrial, Storage};
use std::path::PathBuf;
use std::sync::Arc;

/// The `ferrotune` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ferrotune");

/// A fresh directory, and the SQLite URL of a database in it (`hpo.db`, created by whatever
/// opens it first).
pub struct Scratch {
    pub dir: PathBuf,
    pub url: String,
}

impl Scratch {
    /// `<temp>/ferrotune-<suite>-<name>-<pid>-<nanos>`, created empty.
    pub fn new(suite: &str, name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ferrotune-{suite}-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let url = format!("sqlite:///{}", dir.join("hpo.db").display());
        Scratch { dir, url }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a file into the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a test file");
        path.display().to_string()
    }

    /// The study database, which must exist.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(
            ferrotune_sqlite::SqliteStorage::open_existing(&self.url).expect("the study database"),
        )
    }

    /// The trials of `study` in the database.
    pub fn trials(&self, study: &str) -> Vec<Arc<FrozenTrial>> {
        let storage = self.storage();
        let id = storage.study_by_name(study).expect("the study").id;
        storage.trials(id, None).expect("its trials")
    }
}

impl Drop for Scratch {
    /// Removes the directory after a passing test; a failing one keeps it to look at.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `--space space.toml --direction minimize --trials TRIALS FLAGS… -- COMMAND…`: the
/// arguments of `ferrotune run` (or `worker`) for a one-objective study of `space.toml`.
pub fn minimizing<'a>(trials: &'a str, flags: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--space",
        "space.toml",
        "--direction",
        "minimize",
        "--trials",
        trials,
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    args
}
