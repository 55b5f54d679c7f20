//! Errors: driver errors become `ferrotune::Error::Storage` with the password removed.

use crate::url::redact;
use ferrotune::Error;
use postgres::error::SqlState;

/// An error inside one storage call: a driver error (maybe retried) or a ferrotune error.
#[derive(Debug)]
pub(crate) enum Fail {
    Pg(postgres::Error),
    Ferro(Error),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Ferro(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Ferro(Error::Serde(e))
    }
}

pub(crate) type R<T> = std::result::Result<T, Fail>;

/// A storage error with a message.
pub(crate) fn storage(msg: impl Into<String>) -> Fail {
    Fail::Ferro(Error::Storage(msg.into()))
}

/// The SQLSTATE of a database error.
pub(crate) fn code(e: &postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// Whether a failed transaction may simply be run again (it was rolled back whole).
pub(crate) fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// Whether the connection, not the statement, failed: closed, an I/O error, or the server
/// ending the session (a FATAL error, SQLSTATE classes 08 and 57P).
pub(crate) fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Not a conversion error of ours: an I/O failure, a timeout, an unexpected reply.
        None => {
            let text = e.to_string();
            !text.contains("serializing") && !text.contains("deserializing")
        }
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(db.severity(), "FATAL" | "PANIC")
        }
    }
}

/// A driver error in words: the server's message, detail and hint, or the client-side cause
/// chain; with every secret removed.
pub(crate) fn describe(e: &postgres::Error, secrets: &[String]) -> String {
    let text = match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let c = cause.to_string();
                if !s.contains(&c) {
                    s.push_str(": ");
                    s.push_str(&c);
                }
                source = cause.source();
            }
            s
        }
    };
    redact(&text, secrets)
}
