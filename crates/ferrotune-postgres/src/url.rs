//! Parsing `postgres://` URLs: the driver's configuration, our own parameters (`sslmode`
//! with libpq's values, `sslrootcert`, `schema`), and what may be shown of the URL.

use ferrotune::Error;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The URL forms accepted, for error messages.
pub(crate) const URL_FORM: &str =
    "postgres://user[:password]@host[:port]/database (or postgresql://…), \
     with optional parameters such as ?sslmode=require&schema=name";

/// libpq's `sslmode` values (the driver itself knows only the first three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (the default).
    Prefer,
    /// TLS or fail; the certificate is checked only against an `sslrootcert` when one is given.
    Require,
    /// TLS with a certificate chain to a trusted root (the host name is not checked).
    VerifyCa,
    /// TLS with a trusted certificate chain for this host name.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    #[cfg_attr(feature = "tls", allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A parsed URL.
pub(crate) struct ParsedUrl {
    /// The driver's configuration (our own parameters removed).
    pub config: postgres::Config,
    /// The TLS mode.
    pub ssl_mode: SslMode,
    /// CA certificates (PEM) to trust, from `sslrootcert`.
    pub ssl_root_cert: Option<PathBuf>,
    /// The schema from `?schema=`.
    pub schema: Option<String>,
    /// Whether the URL set `connect_timeout` itself.
    pub has_connect_timeout: bool,
    /// The URL with its password replaced by `***`.
    pub redacted: String,
    /// `host:port` of every host, for error messages.
    pub target: String,
    /// Strings that must never be shown (the password, raw and decoded).
    pub secrets: Vec<String>,
}

/// Replaces every secret in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `name` is a plain SQL identifier we accept as a schema name.
pub(crate) fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

pub(crate) fn invalid_schema(name: &str) -> Error {
    Error::InvalidArgument {
        name: "schema",
        reason: format!(
            "`{name}` is not a plain schema name: use 1 to 63 ASCII letters, digits and \
             underscores, starting with a letter or underscore"
        ),
    }
}

/// Parses a `postgres://` or `postgresql://` URL.
pub(crate) fn parse(url: &str) -> Result<ParsedUrl, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::InvalidArgument {
            name: "url",
            reason: format!("not a storage URL; PostgresStorage takes {URL_FORM}"),
        });
    };
    if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
        // Show the scheme only when it looks like one (it never holds a password then).
        let shown = if !scheme.is_empty()
            && scheme.len() <= 20
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            format!("`{scheme}://`")
        } else {
            "the URL's scheme".to_owned()
        };
        return Err(Error::InvalidArgument {
            name: "url",
            reason: format!(
                "unsupported scheme {shown}: PostgresStorage takes {URL_FORM} \
                 (sqlite:// URLs are for ferrotune-sqlite)"
            ),
        });
    }

    // Split authority / path / query by hand: the password must be found (to redact it) even
    // when the driver rejects the URL.
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let mut secrets = Vec::new();
    let redacted_authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, password)) => {
                secrets.push(password.to_owned());
                secrets.push(percent_decode(password));
                format!("{user}:***@{hosts}")
            }
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };

    let mut ssl_mode = SslMode::Prefer;
    let mut ssl_root_cert = None;
    let mut schema = None;
    let mut has_connect_timeout = false;
    let mut kept: Vec<&str> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let value = percent_decode(value);
        match key.as_str() {
            "sslmode" => {
                ssl_mode = SslMode::parse(&value).ok_or_else(|| Error::InvalidArgument {
                    name: "url",
                    reason: format!(
                        "unknown sslmode `{value}`: use disable, prefer, require, verify-ca or \
                         verify-full"
                    ),
                })?;
                shown.push(pair.to_owned());
            }
            "sslrootcert" => {
                ssl_root_cert = Some(PathBuf::from(value));
                shown.push(pair.to_owned());
            }
            "schema" => {
                if !valid_schema(&value) {
                    return Err(invalid_schema(&value));
                }
                schema = Some(value);
                shown.push(pair.to_owned());
            }
            "password" => {
                secrets.push(value);
                secrets.push(pair.split_once('=').map(|p| p.1).unwrap_or("").to_owned());
                kept.push(pair);
                shown.push("password=***".to_owned());
            }
            _ => {
                if key == "connect_timeout" {
                    has_connect_timeout = true;
                }
                kept.push(pair);
                shown.push(pair.to_owned());
            }
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();

    let mut driver_url = format!("postgres://{authority}{path}");
    if !kept.is_empty() {
        driver_url.push('?');
        driver_url.push_str(&kept.join("&"));
    }
    let mut redacted = format!("{scheme}://{redacted_authority}{path}");
    if !shown.is_empty() {
        redacted.push('?');
        redacted.push_str(&shown.join("&"));
    }
    let mut config = postgres::Config::from_str(&driver_url).map_err(|e| {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        Error::InvalidArgument {
            name: "url",
            reason: redact(
                &format!("{redacted}: {cause}; expected {URL_FORM}"),
                &secrets,
            ),
        }
    })?;
    config.ssl_mode(match ssl_mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    if config.get_application_name().is_none() {
        config.application_name("ferrotune");
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(Error::InvalidArgument {
            name: "url",
            reason: format!("`{redacted}` names no host; expected {URL_FORM}"),
        });
    }
    let target = target_of(&config);
    Ok(ParsedUrl {
        config,
        ssl_mode,
        ssl_root_cert,
        schema,
        has_connect_timeout,
        redacted,
        target,
        secrets,
    })
}

/// `host:port` for every host of a configuration.
fn target_of(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| -> u16 {
        match ports.len() {
            0 => 5432,
            1 => ports[0],
            _ => ports.get(i).copied().unwrap_or(5432),
        }
    };
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            postgres::config::Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            postgres::config::Host::Unix(path) => {
                format!("{}/.s.PGSQL.{}", path.display(), port(i))
            }
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a}:{}", port(i)))
            .collect();
    }
    hosts.join(", ")
}

/// The connect timeout used unless the URL sets `connect_timeout`.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let p = parse("postgresql://alice:p%40ss@db.example:6000/hpo?sslmode=verify-full&schema=s1&connect_timeout=3").expect("parse");
        assert_eq!(p.ssl_mode, SslMode::VerifyFull);
        assert_eq!(p.schema.as_deref(), Some("s1"));
        assert!(p.has_connect_timeout);
        assert_eq!(p.target, "db.example:6000");
        assert_eq!(p.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(p.config.get_user(), Some("alice"));
        assert_eq!(
            p.redacted,
            "postgresql://alice:***@db.example:6000/hpo?sslmode=verify-full&schema=s1&connect_timeout=3"
        );
        assert!(p.secrets.contains(&"p@ss".to_owned()));
        assert!(p.secrets.contains(&"p%40ss".to_owned()));
        assert_eq!(redact("x p@ss y p%40ss", &p.secrets), "x *** y ***");
    }

    #[test]
    fn default_port_and_no_password() {
        let p = parse("postgres://bob@localhost/db").expect("parse");
        assert_eq!(p.target, "localhost:5432");
        assert_eq!(p.redacted, "postgres://bob@localhost/db");
        assert!(p.secrets.is_empty());
        assert_eq!(p.ssl_mode, SslMode::Prefer);
    }

    #[test]
    fn rejects_other_schemes_without_echoing_the_url() {
        let e = parse("mysql://root:hunter2@h/db")
            .err()
            .expect("error")
            .to_string();
        assert!(e.contains("`mysql://`") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("hunter2").err().expect("error").to_string();
        assert!(!e.contains("hunter2") && e.contains("postgres://"), "{e}");
        let e = parse("post:gres:hunter2://x")
            .err()
            .expect("error")
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bad_parameters_are_named_and_redacted() {
        let e = parse("postgres://u:hunter2@h/db?sslmode=sometimes")
            .err()
            .expect("error")
            .to_string();
        assert!(e.contains("sslmode") && !e.contains("hunter2"), "{e}");
        let e = parse("postgres://u:hunter2@h/db?password=hunter3&bogus=1")
            .err()
            .expect("error")
            .to_string();
        assert!(!e.contains("hunter2") && !e.contains("hunter3"), "{e}");
        let e = parse("postgres://u:hunter2@h/db?schema=a;drop")
            .err()
            .expect("error")
            .to_string();
        assert!(e.contains("schema") && !e.contains("hunter2"), "{e}");
    }
}
