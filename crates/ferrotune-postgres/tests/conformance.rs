//! The storage conformance suite, on a fresh PostgreSQL schema per check.

mod common;

#[test]
fn passes_the_conformance_suite() {
    let Some(url) = common::url("passes_the_conformance_suite") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    ferrotune::storage::conformance::run_all(|| schemas.storage());
}
