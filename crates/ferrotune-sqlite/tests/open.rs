//! Opening databases: URL forms, missing files, files that are not (ferrotune) databases,
//! databases from a newer ferrotune, and several openers at once. A refused file is left
//! byte-for-byte unchanged.

mod common;

use ferrotune::{Direction, Storage};
use ferrotune_sqlite::{Location, SqliteStorage, Synchronous, SCHEMA_VERSION};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn error_of(result: ferrotune::Result<SqliteStorage>) -> String {
    match result {
        Ok(s) => panic!("expected an error, opened {s:?}"),
        Err(e) => e.to_string(),
    }
}

/// Pseudo-random bytes (no RNG crate needed).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// The files of a directory, sorted (to check that nothing was created next to a file).
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn one_study(storage: &SqliteStorage) {
    let id = storage
        .create_study("s", &[Direction::Minimize], &BTreeMap::new())
        .expect("create");
    storage.create_trial(id, None).expect("trial");
}

#[test]
fn urls_relative_absolute_and_plain_paths() {
    let dir = common::TempDir::new("urls");
    // sqlite:///relative is relative to the working directory.
    let cwd = std::env::current_dir().expect("cwd");
    let up = "../".repeat(cwd.components().count());
    let relative = format!("{up}{}", dir.path().join("rel.db").display());
    let rel = SqliteStorage::open(&format!("sqlite:///{relative}")).expect("relative URL");
    assert_eq!(rel.path(), Some(dir.path().join("rel.db").as_path()));
    assert!(dir.path().join("rel.db").exists());
    // sqlite:////absolute, with options.
    let abs = SqliteStorage::open(&format!(
        "sqlite:///{}?synchronous=full&timeout=5",
        dir.path().join("abs.db").display()
    ))
    .expect("absolute URL");
    assert_eq!(abs.config().synchronous, Synchronous::Full);
    assert_eq!(abs.config().busy_timeout.as_secs(), 5);
    one_study(&abs);
    // A plain path reaches the same database.
    let plain =
        SqliteStorage::open(&dir.path().join("abs.db").display().to_string()).expect("plain path");
    assert_eq!(plain.studies().expect("studies").len(), 1);
    assert_eq!(plain.schema_version().expect("version"), SCHEMA_VERSION);
    // In memory.
    let mem = SqliteStorage::open("sqlite://").expect("memory");
    assert_eq!(mem.config().location, Location::Memory);
    assert_eq!(mem.path(), None);
    one_study(&mem);
}

#[test]
fn bad_urls_are_refused_with_the_fix() {
    let e = error_of(SqliteStorage::open("sqlite:///x.db?journal_mode=delete"));
    assert!(e.contains("unknown query option `journal_mode`"), "{e}");
    assert!(e.contains("synchronous"), "{e}");
    let e = error_of(SqliteStorage::open("sqlite://localhost/x.db"));
    assert!(e.contains("host"), "{e}");
    let e = error_of(SqliteStorage::open("mysql://u@h/db"));
    assert!(e.contains("not a sqlite URL"), "{e}");
}

#[test]
fn open_existing_refuses_a_missing_file_and_creates_nothing() {
    let dir = common::TempDir::new("missing");
    let path = dir.path().join("nope.db");
    let e = error_of(SqliteStorage::open_existing(&format!(
        "sqlite:///{}",
        path.display()
    )));
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(listing(dir.path()).is_empty(), "nothing created");
    // `open` creates it; then `open_existing` finds it.
    one_study(&SqliteStorage::open(&format!("sqlite:///{}", path.display())).expect("create"));
    let existing =
        SqliteStorage::open_existing(&format!("sqlite:///{}", path.display())).expect("exists");
    assert_eq!(existing.studies().expect("studies").len(), 1);
}

#[test]
fn a_missing_directory_or_a_directory_is_refused() {
    let dir = common::TempDir::new("dirs");
    let e = error_of(SqliteStorage::open(
        &dir.path().join("no/such/dir/x.db").display().to_string(),
    ));
    assert!(
        e.contains("does not exist") && e.contains("create it"),
        "{e}"
    );
    let e = error_of(SqliteStorage::open(&dir.path().display().to_string()));
    assert!(e.contains("is a directory"), "{e}");
    assert!(listing(dir.path()).is_empty());
}

/// Opening `bytes` as a database fails with a message containing `expected`, naming the
/// file, and leaves the file and its directory unchanged.
fn refused_untouched(name: &str, bytes: &[u8], expected: &[&str]) {
    let dir = common::TempDir::new("refused");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    for open in [SqliteStorage::open, SqliteStorage::open_existing] {
        let e = error_of(open(&format!("sqlite:///{}", path.display())));
        assert!(
            e.contains(&path.display().to_string()),
            "names the file: {e}"
        );
        for word in expected {
            assert!(e.contains(word), "`{word}` missing from: {e}");
        }
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "file changed");
        assert_eq!(listing(dir.path()), vec![path.clone()], "files created");
    }
}

#[test]
fn random_bytes_are_not_a_database() {
    refused_untouched(
        "random.db",
        &noise(8192, 0x9E37_79B9_7F4A_7C15),
        &["not a SQLite database", "new file name"],
    );
}

#[test]
fn a_text_file_is_not_a_database() {
    refused_untouched(
        "notes.db",
        b"study results\nlr=0.1 loss=0.3\n",
        &["not a SQLite database", "text file", "study results"],
    );
}

#[test]
fn a_corrupt_database_is_refused() {
    let dir = common::TempDir::new("corrupt");
    let path = dir.path().join("good.db");
    one_study(&SqliteStorage::open(&path.display().to_string()).expect("create"));
    // Keep SQLite's header, scramble the rest.
    let mut bytes = std::fs::read(&path).expect("read");
    let noise = noise(bytes.len() - 100, 7);
    bytes[100..].copy_from_slice(&noise);
    refused_untouched("corrupt.db", &bytes, &["corrupt", "backup"]);
}

#[test]
fn a_database_that_is_not_ferrotunes_is_refused() {
    let dir = common::TempDir::new("foreign");
    let path = dir.path().join("foreign.db");
    let conn = Connection::open(&path).expect("create");
    conn.execute_batch("CREATE TABLE alembic_version (v TEXT); CREATE TABLE trials (x INT);")
        .expect("tables");
    drop(conn);
    let bytes = std::fs::read(&path).expect("read");
    refused_untouched(
        "foreign.db",
        &bytes,
        &["not a ferrotune one", "alembic_version", "another file"],
    );
}

#[test]
fn a_database_from_a_newer_ferrotune_is_refused_without_writing() {
    let dir = common::TempDir::new("newer");
    let path = dir.path().join("new.db");
    one_study(&SqliteStorage::open(&path.display().to_string()).expect("create"));
    let conn = Connection::open(&path).expect("open");
    conn.execute("INSERT INTO schema_version VALUES (99, '9.0.0', 0)", [])
        .expect("bump");
    drop(conn); // checkpoints and removes the WAL
    let bytes = std::fs::read(&path).expect("read");
    let e = error_of(SqliteStorage::open(&path.display().to_string()));
    assert!(e.contains("schema version 99"), "{e}");
    assert!(e.contains(&format!("up to {SCHEMA_VERSION}")), "{e}");
    assert!(e.contains("upgrade ferrotune"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "file changed");
}

#[test]
fn many_openers_of_a_new_file_create_the_schema_once() {
    let dir = common::TempDir::new("openers");
    let url = dir.url("shared.db");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let storage = SqliteStorage::open(&url).expect("open");
                assert_eq!(storage.schema_version().expect("version"), SCHEMA_VERSION);
            });
        }
    });
    let conn = Connection::open(dir.path().join("shared.db")).expect("open");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, i64::from(SCHEMA_VERSION), "each migration applied once");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn data_survives_reopening() {
    let dir = common::TempDir::new("reopen");
    let url = dir.url("keep.db");
    {
        let s = SqliteStorage::open(&url).expect("open");
        one_study(&s);
    }
    let s = SqliteStorage::open_existing(&url).expect("reopen");
    let study = s.study_by_name("s").expect("study");
    assert_eq!(s.n_trials(study.id, None).expect("count"), 1);
}
