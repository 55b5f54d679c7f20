//! Shared test support: the test server's URL, and a fresh PostgreSQL schema per storage.
#![allow(dead_code)]

use ferrotune_postgres::{PostgresOptions, PostgresStorage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The variable holding the test server's URL (scripts/test.sh sets it).
pub const URL_VAR: &str = "FERROTUNE_TEST_POSTGRES_URL";

/// Whether we run under CI, where a missing server is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The test server's URL; `None` (after a notice) when there is none. Under CI a missing URL
/// fails the test.
pub fn url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                !in_ci(),
                "{URL_VAR} is not set but CI is: the PostgreSQL tests must run against a server \
                 in CI; run them through scripts/test.sh, which starts one"
            );
            notice(&format!(
                "skipping {test}: set {URL_VAR}=postgres://user:password@host:port/db or run \
                 scripts/test.sh, which starts a throwaway PostgreSQL"
            ));
            None
        }
    }
}

/// Prints a notice past the test harness's output capture, so it shows for passing tests.
pub fn notice(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "NOTICE: {text}");
}

/// A name no other test (in any process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Schemas made by one test, dropped (with everything in them) when it ends, pass or fail.
pub struct Schemas {
    url: String,
    names: Mutex<Vec<String>>,
}

impl Schemas {
    pub fn new(url: &str) -> Schemas {
        Schemas {
            url: url.to_owned(),
            names: Mutex::new(Vec::new()),
        }
    }

    /// A fresh schema name, dropped at the end.
    pub fn fresh(&self) -> String {
        let name = unique_name("ft_test");
        self.names.lock().expect("lock").push(name.clone());
        name
    }

    /// A storage on a fresh schema.
    pub fn storage(&self) -> PostgresStorage {
        let schema = self.fresh();
        PostgresStorage::connect_with(&self.url, PostgresOptions::default().schema(schema))
            .expect("connect to the test server")
    }

    /// A plain driver connection, for checks below the storage.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            for n in names {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{n}\" CASCADE"));
            }
        }
    }
}
