//! The storage conformance suite, on a fresh PostgreSQL schema per check.

mod common;

use ferrotune_postgres::{PostgresOptions, PostgresStorage};

#[test]
fn passes_the_conformance_suite() {
    let Some(url) = common::url("passes_the_conformance_suite") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    ferrotune::storage::conformance::run_all(|| schemas.storage());
}

#[test]
fn compare_and_set_is_atomic_across_storages() {
    let Some(url) = common::url("compare_and_set_is_atomic_across_storages") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    let handles: Vec<PostgresStorage> = (0..8)
        .map(|_| {
            PostgresStorage::connect_with(&url, PostgresOptions::default().schema(schema.clone()))
                .expect("connect to the test server")
        })
        .collect();
    let handles: Vec<&dyn ferrotune::Storage> = handles
        .iter()
        .map(|s| s as &dyn ferrotune::Storage)
        .collect();
    ferrotune::storage::conformance::compare_and_set_across_handles(&handles);
}
