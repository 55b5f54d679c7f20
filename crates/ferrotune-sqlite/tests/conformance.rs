//! The shared storage conformance suite, on SQLite files and in memory.

mod common;

use ferrotune_sqlite::SqliteStorage;

#[test]
fn passes_the_conformance_suite_on_files() {
    let dir = common::TempDir::new("conformance");
    let counter = std::sync::atomic::AtomicU64::new(0);
    ferrotune::storage::conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteStorage::open(&dir.url(&format!("db{n}.db"))).expect("open")
    });
}

#[test]
fn passes_the_conformance_suite_in_memory() {
    ferrotune::storage::conformance::run_all(|| SqliteStorage::in_memory().expect("open"));
}
