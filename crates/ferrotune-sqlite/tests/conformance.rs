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

#[test]
fn compare_and_set_is_atomic_across_connections() {
    let dir = common::TempDir::new("conformance-cas");
    let url = dir.url("shared.db");
    let handles: Vec<SqliteStorage> = (0..8)
        .map(|_| SqliteStorage::open(&url).expect("open"))
        .collect();
    let handles: Vec<&dyn ferrotune::Storage> = handles
        .iter()
        .map(|s| s as &dyn ferrotune::Storage)
        .collect();
    ferrotune::storage::conformance::compare_and_set_across_handles(&handles);
}
