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
    /// Reading and writing a storage that must exist already (a worker): a missing SQLite file
    /// is an error; PostgreSQL tables are created or upgraded as for `ReadWrite`.
    Existing,
}

/// A URL cut into the parts that may hold a password: `scheme://userinfo@host/path?query`.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host_and_path: &'a str,
    query: Option<&'a str>,
}

impl UrlParts<'_> {
    /// Cuts the URL as the PostgreSQL storage does: the query after the first `?`, the
    /// authority up to the first `/` after it, the user information before the authority's
    /// last `@`.
    fn of(url: &str) -> Option<UrlParts<'_>> {
        let (scheme, rest) = url.split_once("://")?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let authority_end = before_query.find('/').unwrap_or(before_query.len());
        let (userinfo, host_and_path) = match before_query[..authority_end].rsplit_once('@') {
            Some((u, _)) => (Some(u), &before_query[u.len() + 1..]),
            None => (None, before_query),
        };
        Some(UrlParts {
            scheme,
            userinfo,
            host_and_path,
            query,
        })
    }

    fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
    }
}

/// Whether the URL holds a password (`user:password@host`, or `?password=`), which must never
/// be printed or written into a manifest.
pub fn has_password(url: &str) -> bool {
    let Some(parts) = UrlParts::of(url) else {
        return false;
    };
    parts
        .userinfo
        .and_then(|u| u.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty())
        || parts
            .query_pairs()
            .any(|(k, v)| k == "password" && !v.is_empty())
}

/// The URL with any password (`user:password@` or `?password=`) replaced by `***`, for
/// messages.
pub fn redact(url: &str) -> String {
    let Some(parts) = UrlParts::of(url) else {
        return url.to_owned();
    };
    let mut out = format!("{}://", parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@")),
            None => out.push_str(&format!("{userinfo}@")),
        }
    }
    out.push_str(parts.host_and_path);
    if parts.query.is_some() {
        let pairs: Vec<String> = parts
            .query_pairs()
            .map(|(k, v)| match k {
                "password" => "password=***".to_owned(),
                _ if v.is_empty() => k.to_owned(),
                _ => format!("{k}={v}"),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Opens the storage a URL names.
pub fn open(url: &str, access: Access) -> anyhow::Result<Arc<dyn Storage>> {
    let shown = redact(url);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Read-only commands never create or upgrade tables.
        let options =
            ferrotune_postgres::PostgresOptions::default().migrate(access != Access::ReadOnly);
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
            Access::ReadOnly | Access::Existing => {
                ferrotune_sqlite::SqliteStorage::open_existing(url)
            }
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
        // A raw `@` in the password, and a password in the query.
        assert_eq!(
            redact("postgres://bob:p@ss@db/hpo?sslmode=require"),
            "postgres://bob:***@db/hpo?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/hpo?user=bob&password=s3cret&schema=x"),
            "postgres://db/hpo?user=bob&password=***&schema=x"
        );
        // An `@` after the host belongs to the path or query, not the user.
        assert_eq!(redact("postgres://db/h@po"), "postgres://db/h@po");
    }

    #[test]
    fn passwords_are_found() {
        assert!(has_password("postgres://bob:s3cret@db:5432/hpo"));
        assert!(has_password("postgresql://bob:p%40ss@db/hpo"));
        assert!(has_password("postgres://bob@db/hpo?password=x"));
        assert!(!has_password("postgres://bob@db/hpo"));
        assert!(!has_password("postgres://bob:@db/hpo"));
        assert!(!has_password("postgres://db/hpo?sslmode=require"));
        assert!(!has_password("sqlite:///x.db"));
        assert!(!has_password("x.db"));
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
