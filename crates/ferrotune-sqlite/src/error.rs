//! Internal errors: a SQLite error (turned into a message naming the file and the fix at the
//! API boundary) or a library error passed through unchanged.

use ferrotune::Error;
use rusqlite::ErrorCode;
use std::time::Duration;

/// An error inside the storage: SQLite's, or ferrotune's own.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Lib(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Lib(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Lib(Error::Serde(e))
    }
}

pub(crate) type Res<T> = std::result::Result<T, Fail>;

/// Whether another connection's lock made the statement fail (worth retrying).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Fail {
    /// The library error, with SQLite's errors explained for the database `db`.
    pub(crate) fn into_error(self, db: &str, timeout: Duration) -> Error {
        match self {
            Fail::Lib(e) => e,
            Fail::Sql(e) => sql_error(db, &e, timeout),
        }
    }
}

/// A SQLite error as a message naming the file and what to do.
pub(crate) fn sql_error(db: &str, e: &rusqlite::Error, timeout: Duration) -> Error {
    let message = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "database `{db}` stayed locked by another connection for more than {timeout:?} ({e}); \
             a process may be stuck holding a write transaction, or the file is on a network \
             file system where SQLite locking does not work (use a local disk, or PostgreSQL); \
             raise the wait with `?timeout=SECONDS`"
        ),
        Some(ErrorCode::NotADatabase) => format!(
            "`{db}` is not a SQLite database ({e}); point the storage at a ferrotune database, \
             or at a new file name to create one"
        ),
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "database `{db}` is corrupt ({e}); restore it from a backup, or recover what is \
             readable with the sqlite3 shell's `.recover` command into a new file"
        ),
        Some(ErrorCode::DiskFull) => {
            format!("cannot write `{db}`: the disk is full ({e}); free some space and retry")
        }
        Some(ErrorCode::ReadOnly) => format!(
            "cannot write `{db}`: it is read-only ({e}); check the permissions of the file, its \
             -wal and -shm files and its directory"
        ),
        Some(ErrorCode::CannotOpen) => {
            format!("cannot open `{db}` ({e}); check that the directory exists and is writable")
        }
        Some(ErrorCode::SystemIoFailure) => {
            format!("I/O error on `{db}` ({e}); check the disk and the file system")
        }
        _ => format!("SQLite error on `{db}`: {e}"),
    };
    Error::Storage(message)
}
