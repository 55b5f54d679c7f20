//! Storage URLs: `sqlite:///relative.db`, `sqlite:////absolute.db` or a plain `*.db` path, and
//! `postgres://user@host:port/db`. The URL picks the backend; commands that only read open
//! SQLite files without creating them.

use anyhow::{bail, Context};
use ferrotune::Storage;
use std::sync::Arc;

/// The storage used when none is given: a SQLite file in the working directory.
pub const DEFAULT_STORAGE: &str = "sqlite:///ferrotune.db";

/// Whether a command may create the storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only: a missing SQLite file is an error, not a new empty database.
    ReadOnly,
    /// Reading and writing: a missing SQLite file is created.
    ReadWrite,
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Opens the storage a URL names.
pub fn open(url: &str, access: Access) -> anyhow::Result<Arc<dyn Storage>> {
    let shown = redact(url);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Read-only commands never create or upgrade tables.
        let options =
            ferrotune_postgres::PostgresOptions::default().migrate(access == Access::ReadWrite);
        let storage = ferrotune_postgres::PostgresStorage::connect_with(url, options)
            .with_context(|| format!("cannot open storage {shown}"))?;
        return Ok(Arc::new(storage));
    }
    let is_sqlite = url.starts_with("sqlite:")
        || (!url.contains("://")
            && [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| url.ends_with(ext)));
    if is_sqlite {
        let storage = match access {
            Access::ReadOnly => ferrotune_sqlite::SqliteStorage::open_existing(url),
            Access::ReadWrite => ferrotune_sqlite::SqliteStorage::open(url),
        }
        .with_context(|| format!("cannot open storage {shown}"))?;
        return Ok(Arc::new(storage));
    }
    bail!(
        "unknown storage URL `{shown}`: use sqlite:///relative/path.db, sqlite:////absolute/path.db, \
         a path ending in .db, or postgres://user@host:port/database"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://bob:s3cret@db:5432/hpo"),
            "postgres://bob:***@db:5432/hpo"
        );
        assert_eq!(redact("postgres://bob@db/hpo"), "postgres://bob@db/hpo");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[test]
    fn unknown_schemes_name_the_fix() {
        let err = open("mysql://bob:pw@host/db", Access::ReadOnly).expect_err("unknown scheme");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("sqlite:///") && msg.contains("postgres://"),
            "{msg}"
        );
        assert!(!msg.contains("pw"), "{msg}");
    }
}
