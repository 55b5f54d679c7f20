//! Storage URLs and connection options (see [`SqliteConfig`]).

use ferrotune::{Error, Result};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where a database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A database file (relative paths are relative to the working directory).
    File(PathBuf),
    /// A private in-memory database, gone when the storage is dropped.
    Memory,
}

/// SQLite's `synchronous` setting: how hard each commit pushes data to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// No fsync at all: an operating-system crash may corrupt the database.
    Off,
    /// The default: with WAL, commits are not fsynced but the file is never corrupted; a power
    /// loss may undo the last commits.
    #[default]
    Normal,
    /// An fsync at every commit: committed trials survive power loss.
    Full,
    /// Like `Full`, and also fsyncs the directory after deleting journals.
    Extra,
}

impl Synchronous {
    /// The value of SQLite's `PRAGMA synchronous`.
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

impl FromStr for Synchronous {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "0" => Ok(Synchronous::Off),
            "normal" | "1" => Ok(Synchronous::Normal),
            "full" | "2" => Ok(Synchronous::Full),
            "extra" | "3" => Ok(Synchronous::Extra),
            _ => Err(malformed(format!(
                "unknown synchronous mode `{s}`; use off, normal, full or extra"
            ))),
        }
    }
}

/// How to open a SQLite storage: the database and its connection options.
///
/// The URL forms follow SQLAlchemy's, as Optuna users write them:
///
/// | URL | Database |
/// |---|---|
/// | `sqlite:///ferrotune.db` | `ferrotune.db` relative to the working directory |
/// | `sqlite:////abs/path.db` | `/abs/path.db` |
/// | `sqlite://` or `sqlite:///:memory:` | a private in-memory database |
/// | `path/to/file.db` (no scheme) | that path, taken literally |
///
/// Query options (URLs only): `synchronous=off|normal|full|extra` (default `normal`: with WAL a
/// crash of the machine may lose the last commits but never corrupts the file; `full` also
/// survives power loss, at the price of an fsync per write) and `timeout=SECONDS` (how long a
/// write waits for another process's lock, default 30; SQLAlchemy's name for it).
/// `%XX` escapes in a URL's path are decoded (`%20` is a space).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database.
    pub location: Location,
    /// SQLite's `synchronous` setting.
    pub synchronous: Synchronous,
    /// How long a write waits for another connection's lock before it fails.
    pub busy_timeout: Duration,
}

/// The default busy timeout: long enough for many workers sharing one file.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The query options a URL may carry.
const OPTIONS: &str = "synchronous, timeout";

impl SqliteConfig {
    /// A database file with the default options.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            location: Location::File(path.into()),
            synchronous: Synchronous::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// A private in-memory database with the default options.
    pub fn memory() -> Self {
        SqliteConfig {
            location: Location::Memory,
            synchronous: Synchronous::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// The same configuration with another `synchronous` setting.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The same configuration with another busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Parses a storage URL or a plain path (see [`SqliteConfig`] for the forms).
    pub fn parse(url: &str) -> Result<Self> {
        if url.trim().is_empty() {
            return Err(malformed(
                "the storage URL is empty; use sqlite:///ferrotune.db (relative) or \
                 sqlite:////absolute/path.db"
                    .to_owned(),
            ));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            if let Some(rest) = strip_prefix_ignore_case(url, "sqlite:") {
                return Err(malformed(format!(
                    "`{url}` is not a valid sqlite URL; write sqlite:///{rest} (three slashes \
                     for a relative path, four for an absolute one)"
                )));
            }
            return Ok(if url == ":memory:" {
                SqliteConfig::memory()
            } else {
                SqliteConfig::file(url)
            });
        };
        if !scheme.eq_ignore_ascii_case("sqlite") {
            return Err(malformed(format!(
                "`{url}` is not a sqlite URL (scheme `{scheme}`); use sqlite:///relative.db, \
                 sqlite:////absolute.db or a plain file path"
            )));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut config = if path.is_empty() {
            SqliteConfig::memory()
        } else {
            let Some(path) = path.strip_prefix('/') else {
                let host = path.split('/').next().unwrap_or(path);
                return Err(malformed(format!(
                    "`{url}` names a host (`{host}`), but a sqlite URL has none; use \
                     sqlite:///relative.db or sqlite:////absolute.db"
                )));
            };
            if path.is_empty() {
                return Err(malformed(format!(
                    "`{url}` names no database file; use sqlite:///ferrotune.db (relative) or \
                     sqlite:////absolute/path.db"
                )));
            }
            let path = percent_decode(path).map_err(|e| malformed(format!("`{url}`: {e}")))?;
            if path == ":memory:" {
                SqliteConfig::memory()
            } else {
                SqliteConfig::file(path)
            }
        };
        if let Some(query) = query {
            config.apply_query(url, query)?;
        }
        Ok(config)
    }

    fn apply_query(&mut self, url: &str, query: &str) -> Result<()> {
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                malformed(format!(
                    "`{url}`: query option `{pair}` has no value; write `{pair}=...`"
                ))
            })?;
            if seen.contains(&key) {
                return Err(malformed(format!(
                    "`{url}`: query option `{key}` is given twice; keep one"
                )));
            }
            seen.push(key);
            let value = percent_decode(value).map_err(|e| malformed(format!("`{url}`: {e}")))?;
            match key {
                "synchronous" => self.synchronous = value.parse()?,
                "timeout" => {
                    let secs: f64 = value.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0).ok_or_else(|| {
                        malformed(format!(
                            "`{url}`: timeout `{value}` is not a number of seconds >= 0 (e.g. timeout=30)"
                        ))
                    })?;
                    self.busy_timeout = Duration::try_from_secs_f64(secs).map_err(|_| {
                        malformed(format!("`{url}`: timeout `{value}` is too large"))
                    })?;
                }
                _ => {
                    return Err(malformed(format!(
                        "`{url}`: unknown query option `{key}`; the options are {OPTIONS}"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl FromStr for SqliteConfig {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SqliteConfig::parse(s)
    }
}

fn malformed(message: String) -> Error {
    Error::Storage(format!("malformed storage URL: {message}"))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Decodes `%XX` escapes; anything else is kept as is.
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("bad escape at byte {i} of `{s}`; write %25 for a literal `%`")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` decodes to invalid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> SqliteConfig {
        SqliteConfig::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn error(url: &str) -> String {
        match SqliteConfig::parse(url) {
            Ok(c) => panic!("{url} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sqlalchemy_forms() {
        assert_eq!(
            parse("sqlite:///ferrotune.db").location,
            Location::File("ferrotune.db".into())
        );
        assert_eq!(
            parse("sqlite:///sub/dir/x.db").location,
            Location::File("sub/dir/x.db".into())
        );
        assert_eq!(
            parse("sqlite:////abs/path.db").location,
            Location::File("/abs/path.db".into())
        );
        assert_eq!(parse("sqlite://").location, Location::Memory);
        assert_eq!(parse("sqlite:///:memory:").location, Location::Memory);
        assert_eq!(parse(":memory:").location, Location::Memory);
        assert_eq!(
            parse("SQLite:///my%20study.db").location,
            Location::File("my study.db".into())
        );
        let plain = parse("runs/a?b.db");
        assert_eq!(plain.location, Location::File("runs/a?b.db".into()));
        assert_eq!(plain.synchronous, Synchronous::Normal);
        assert_eq!(plain.busy_timeout, DEFAULT_BUSY_TIMEOUT);
    }

    #[test]
    fn query_options() {
        let c = parse("sqlite:///x.db?synchronous=full&timeout=2.5");
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(c.busy_timeout, Duration::from_millis(2500));
        assert_eq!(
            parse("sqlite:///x.db?synchronous=OFF").synchronous,
            Synchronous::Off
        );
        assert_eq!(
            parse("sqlite://?synchronous=extra").location,
            Location::Memory
        );
    }

    #[test]
    fn errors_name_the_problem_and_the_fix() {
        let e = error("sqlite:///x.db?journal=wal");
        assert!(
            e.contains("unknown query option `journal`") && e.contains("synchronous"),
            "{e}"
        );
        let e = error("sqlite:///x.db?synchronous=fast");
        assert!(e.contains("fast") && e.contains("normal"), "{e}");
        let e = error("sqlite:///x.db?timeout=-1");
        assert!(e.contains("timeout"), "{e}");
        let e = error("sqlite:///x.db?synchronous=full&synchronous=off");
        assert!(e.contains("twice"), "{e}");
        let e = error("sqlite:///x.db?synchronous");
        assert!(e.contains("no value"), "{e}");
        let e = error("sqlite://host/x.db");
        assert!(e.contains("host") && e.contains("sqlite:////"), "{e}");
        let e = error("sqlite:x.db");
        assert!(e.contains("sqlite:///x.db"), "{e}");
        let e = error("sqlite:///");
        assert!(e.contains("no database file"), "{e}");
        let e = error("postgres://u@h/db");
        assert!(e.contains("not a sqlite URL"), "{e}");
        let e = error("sqlite:///bad%zz.db");
        assert!(e.contains("%25"), "{e}");
        let e = error("  ");
        assert!(e.contains("empty"), "{e}");
        assert!(e.starts_with("storage error: malformed storage URL"), "{e}");
    }
}
