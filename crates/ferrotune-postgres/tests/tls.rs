//! TLS through rustls, against the test server's certificate (scripts/test.sh makes a CA and
//! a certificate for 127.0.0.1 and localhost, and points FERROTUNE_TEST_POSTGRES_CA at it).
#![cfg(feature = "tls")]

mod common;

use ferrotune_postgres::{PostgresOptions, PostgresStorage};

/// The server URL with its parameters, and the CA; `None` when the server has no TLS set up.
fn setup(test: &str) -> Option<(String, String)> {
    let url = common::url(test)?;
    match std::env::var("FERROTUNE_TEST_POSTGRES_CA") {
        Ok(ca) if !ca.is_empty() => Some((url, ca)),
        _ => {
            common::notice(&format!(
                "skipping {test}: FERROTUNE_TEST_POSTGRES_CA is not set (scripts/test.sh sets it \
                 when openssl is available)"
            ));
            None
        }
    }
}

fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

fn connect(url: &str, schemas: &common::Schemas) -> ferrotune::Result<PostgresStorage> {
    PostgresStorage::connect_with(url, PostgresOptions::default().schema(schemas.fresh()))
}

#[test]
fn verified_tls_connections() {
    let Some((url, ca)) = setup("verified_tls_connections") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let app = common::unique_name("ft_tls");
    let s = connect(
        &with_params(
            &url,
            &format!("sslmode=verify-full&sslrootcert={ca}&application_name={app}"),
        ),
        &schemas,
    )
    .expect("verify-full with the test CA");
    // The server sees the storage's (pooled, idle) connection as encrypted.
    let encrypted: i64 = schemas
        .client()
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = $1",
            &[&app],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted >= 1, "no encrypted connection named {app}");
    drop(s);

    // libpq's require: encrypted, certificate not checked.
    connect(&with_params(&url, "sslmode=require"), &schemas).expect("require");

    // The test CA is not a public root: verify-full without it fails, with the fix.
    let e = connect(&with_params(&url, "sslmode=verify-full"), &schemas)
        .expect_err("untrusted certificate")
        .to_string();
    eprintln!("untrusted: {e}");
    assert!(
        e.contains("sslrootcert") && e.contains("UnknownIssuer"),
        "{e}"
    );

    // A host name the certificate does not name: verify-full refuses, verify-ca accepts.
    let renamed = url.replacen("@127.0.0.1:", "@wrong-name.invalid:", 1);
    assert_ne!(renamed, url, "the test URL's host must be 127.0.0.1");
    let e = connect(
        &with_params(
            &renamed,
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        ),
        &schemas,
    )
    .expect_err("wrong host name")
    .to_string();
    eprintln!("wrong name: {e}");
    assert!(e.contains("certificate") && e.contains("verify-ca"), "{e}");
    connect(
        &with_params(
            &renamed,
            &format!("hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}"),
        ),
        &schemas,
    )
    .expect("verify-ca ignores the host name");

    // A missing CA file is named.
    let e = connect(
        &with_params(&url, "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        &schemas,
    )
    .expect_err("missing file")
    .to_string();
    eprintln!("missing CA: {e}");
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
