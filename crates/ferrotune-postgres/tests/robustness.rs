//! Errors people meet first (no server, wrong URL, wrong password, a newer schema), secrets
//! kept out of messages, and the cache staying right while another storage writes.

mod common;

use ferrotune::storage::Storage;
use ferrotune::{Direction, Error, FloatDistribution, Param, TrialState};
use ferrotune_postgres::{PostgresOptions, PostgresStorage, SCHEMA_VERSION};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SECRET: &str = "hunter2-Secret";

fn err(r: ferrotune::Result<PostgresStorage>) -> String {
    match r {
        Ok(s) => panic!("expected an error, connected: {s:?}"),
        Err(e) => e.to_string(),
    }
}

/// Replaces the password of `url` (postgres://user:password@…) with `password`.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("url");
    let (userinfo, hosts) = rest.rsplit_once('@').expect("url with a user");
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    format!("{scheme}://{user}:{password}@{hosts}")
}

#[test]
fn unreachable_server_is_named_with_the_fix_quickly() {
    // Port 1 on loopback: nothing listens there.
    let start = Instant::now();
    let e = err(PostgresStorage::connect(&format!(
        "postgres://ferrotune:{SECRET}@127.0.0.1:1/hpo"
    )));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
    assert!(e.contains("127.0.0.1:1"), "{e}");
    assert!(e.contains("cannot connect") && e.contains("running"), "{e}");
    assert!(!e.contains(SECRET), "the password leaked: {e}");
}

#[test]
fn connect_timeout_bounds_the_wait() {
    // A non-routable address: either the network says so at once, or the timeout fires.
    let start = Instant::now();
    let e = err(PostgresStorage::connect_with(
        &format!("postgres://ferrotune:{SECRET}@10.255.255.1:5432/hpo"),
        PostgresOptions::default().connect_timeout(Duration::from_millis(800)),
    ));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        e.contains("10.255.255.1:5432") && !e.contains(SECRET),
        "{e}"
    );
}

#[test]
fn bad_urls_are_explained_without_the_password() {
    for (url, expect) in [
        (format!("mysql://root:{SECRET}@db/hpo"), "mysql"),
        (format!("sqlite:///{SECRET}.db"), "sqlite"),
        (format!("root:{SECRET}@db/hpo"), "postgres://"),
        (format!("postgres://root:{SECRET}@db:notaport/hpo"), "port"),
        (
            format!("postgres://root:{SECRET}@db/hpo?sslmode=maybe"),
            "sslmode",
        ),
        (
            format!("postgres://root:{SECRET}@db/hpo?schema=a-b"),
            "schema",
        ),
    ] {
        let e = err(PostgresStorage::connect(&url));
        assert!(e.contains(expect), "{url}: {e}");
        assert!(!e.contains(SECRET), "{url}: the password leaked: {e}");
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_modes_without_the_feature_say_how_to_enable_it() {
    let e = err(PostgresStorage::connect(&format!(
        "postgres://u:{SECRET}@127.0.0.1:1/db?sslmode=verify-full"
    )));
    assert!(e.contains("`tls` feature") && !e.contains(SECRET), "{e}");
}

#[test]
fn the_password_is_never_shown() {
    let Some(url) = common::url("the_password_is_never_shown") else {
        return;
    };
    let password = url
        .split_once("://")
        .and_then(|(_, r)| r.rsplit_once('@'))
        .and_then(|(u, _)| u.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .expect("the test URL has a password");
    let schemas = common::Schemas::new(&url);
    let s = schemas.storage();
    let debug = format!("{s:?} {s:#?}");
    assert!(
        !debug.contains(&password),
        "Debug shows the password: {debug}"
    );
    assert!(debug.contains("***") && s.url().contains("***"), "{debug}");
    // A server-side error in a storage call.
    let e = s
        .trials(ferrotune::storage::StudyId(123_456), None)
        .expect_err("no such study")
        .to_string();
    assert!(!e.contains(&password), "{e}");

    // Wrong password: the user is named, neither password is shown.
    let wrong = with_password(&url, SECRET);
    let e = err(PostgresStorage::connect(&wrong));
    assert!(e.contains("password") && e.contains("user name"), "{e}");
    assert!(!e.contains(SECRET) && !e.contains(&password), "{e}");

    // A database that does not exist.
    let (base, _) = url.rsplit_once('/').expect("url with a database");
    let e = err(PostgresStorage::connect(&format!("{base}/no_such_db_here")));
    assert!(
        e.contains("no_such_db_here") && e.contains("createdb"),
        "{e}"
    );
    assert!(!e.contains(&password), "{e}");
}

#[test]
fn a_newer_schema_is_refused_and_nothing_is_written() {
    let Some(url) = common::url("a_newer_schema_is_refused_and_nothing_is_written") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    let options = || PostgresOptions::default().schema(schema.clone());
    let s = PostgresStorage::connect_with(&url, options()).expect("connect");
    s.create_study("kept", &[Direction::Minimize], &BTreeMap::new())
        .expect("study");
    drop(s);
    let mut c = schemas.client();
    let newer = SCHEMA_VERSION + 1;
    c.execute(
        &format!(
            "INSERT INTO \"{schema}\".ferrotune_schema_version (version, library_version) \
             VALUES ($1, '99.0.0')"
        ),
        &[&newer],
    )
    .expect("bump the version");
    let snapshot = |c: &mut postgres::Client| -> (i64, i64, i64) {
        let q = |c: &mut postgres::Client, sql: &str| -> i64 {
            c.query_one(sql, &[]).expect("query").get(0)
        };
        (
            q(
                c,
                &format!("SELECT count(*) FROM \"{schema}\".ferrotune_schema_version"),
            ),
            q(
                c,
                &format!("SELECT count(*) FROM \"{schema}\".ferrotune_studies"),
            ),
            q(
                c,
                &format!(
                    "SELECT count(*) FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace \
                     WHERE n.nspname = '{schema}'"
                ),
            ),
        )
    };
    let before = snapshot(&mut c);
    let e = err(PostgresStorage::connect_with(&url, options()));
    assert!(
        e.contains(&format!("version {newer}")) && e.contains("upgrade ferrotune"),
        "{e}"
    );
    assert!(
        e.contains("99.0.0") && e.contains("Nothing was written"),
        "{e}"
    );
    assert_eq!(
        snapshot(&mut c),
        before,
        "a refused connection wrote to the database"
    );

    // A schema holding only a newer version table gets no tables created beside it.
    let bare = schemas.fresh();
    c.batch_execute(&format!(
        "CREATE SCHEMA \"{bare}\"; \
         CREATE TABLE \"{bare}\".ferrotune_schema_version (version integer PRIMARY KEY, \
           library_version text NOT NULL, applied_at timestamptz); \
         INSERT INTO \"{bare}\".ferrotune_schema_version VALUES ({newer}, '99.0.0', now());"
    ))
    .expect("bare schema");
    let e = err(PostgresStorage::connect(&format!("{url}?schema={bare}")));
    assert!(e.contains(&format!("version {newer}")), "{e}");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&bare],
        )
        .expect("count")
        .get(0);
    assert_eq!(tables, 1, "only the version table may exist");
}

#[test]
fn without_migrate_nothing_is_created() {
    let Some(url) = common::url("without_migrate_nothing_is_created") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    let options = || PostgresOptions::default().schema(schema.clone());
    let e = err(PostgresStorage::connect_with(
        &url,
        options().migrate(false),
    ));
    assert!(e.contains("does not exist") && e.contains("migrate"), "{e}");
    let mut c = schemas.client();
    c.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .expect("schema");
    let e = err(PostgresStorage::connect_with(
        &url,
        options().migrate(false),
    ));
    assert!(e.contains("version 0") && e.contains("migrate"), "{e}");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .expect("count")
        .get(0);
    assert_eq!(tables, 0);
    PostgresStorage::connect_with(&url, options()).expect("create the tables");
    PostgresStorage::connect_with(&url, options().migrate(false)).expect("read-only connect");
}

#[test]
fn workers_connecting_at_once_migrate_once() {
    let Some(url) = common::url("workers_connecting_at_once_migrate_once") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                PostgresStorage::connect_with(
                    &url,
                    PostgresOptions::default().schema(schema.clone()),
                )
                .expect("connect")
            });
        }
    });
    let rows: i64 = schemas
        .client()
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".ferrotune_schema_version"),
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(rows, i64::from(SCHEMA_VERSION));
}

#[test]
fn a_reader_sees_what_another_storage_writes() {
    let Some(url) = common::url("a_reader_sees_what_another_storage_writes") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    let open = || {
        PostgresStorage::connect_with(&url, PostgresOptions::default().schema(schema.clone()))
            .expect("connect")
    };
    let (writer, reader) = (open(), open());
    let study = writer
        .create_study("s", &[Direction::Minimize], &BTreeMap::new())
        .expect("study");
    let x: ferrotune::Distribution = FloatDistribution::uniform(0.0, 1.0).expect("valid").into();
    let mut ids = Vec::new();
    for i in 0..6u32 {
        let t = writer
            .create_trial(study, None)
            .expect("create")
            .expect("uncapped");
        writer
            .set_trial_param(
                t.id,
                &Param::from_internal("x", x.clone(), f64::from(i) / 10.0).expect("param"),
            )
            .expect("param");
        ids.push(t.id);
    }
    let finish = |i: usize| {
        assert!(writer
            .set_trial_state(
                ids[i],
                TrialState::Running,
                TrialState::Complete,
                Some(&[i as f64]),
                None
            )
            .expect("finish"));
    };
    finish(1);
    finish(3);
    let states = |r: &PostgresStorage| -> Vec<TrialState> {
        r.trials(study, None)
            .expect("read")
            .iter()
            .map(|t| t.state)
            .collect()
    };
    assert_eq!(states(&reader), [R, C, R, C, R, R]);
    // Finished since the last read, including ones the reader saw running.
    finish(0);
    finish(5);
    writer
        .set_trial_intermediate_value(ids[2], 4, &[0.25])
        .expect("report");
    assert_eq!(states(&reader), [C, C, R, C, R, C]);
    let complete = reader.trials(study, Some(&[C])).expect("read");
    assert_eq!(
        complete.iter().map(|t| t.number).collect::<Vec<_>>(),
        [0, 1, 3, 5]
    );
    assert_eq!(complete[3].values.as_deref(), Some(&[5.0][..]));
    assert_eq!(complete[2].params["x"], ferrotune::ParamValue::Float(0.3));
    let running = reader.trials(study, Some(&[R])).expect("read");
    assert_eq!(running[0].intermediate(4), Some(0.25));
    // Warm and cold reads agree.
    assert_eq!(
        reader.trials(study, None).expect("warm"),
        open().trials(study, None).expect("cold")
    );
    assert_eq!(reader.n_trials(study, Some(&[C, R])).expect("count"), 6);
    // A deleted study is gone for the reader too.
    writer.delete_study(study).expect("delete");
    assert!(matches!(
        reader.trials(study, None),
        Err(Error::StudyNotFound(_))
    ));
}

#[test]
fn schema_in_the_url_and_exact_values() {
    let Some(url) = common::url("schema_in_the_url_and_exact_values") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let schema = schemas.fresh();
    let sep = if url.contains('?') { '&' } else { '?' };
    let s = PostgresStorage::connect(&format!("{url}{sep}schema={schema}")).expect("connect");
    assert_eq!(s.schema(), Some(schema.as_str()));
    let study = s
        .create_study(
            "exact",
            &[Direction::Minimize, Direction::Maximize],
            &BTreeMap::new(),
        )
        .expect("study");
    let t = s
        .create_trial(study, None)
        .expect("create")
        .expect("uncapped");
    // Values that a decimal round trip could change, and the IEEE specials.
    let tricky = 0.1 + 0.2;
    let d: ferrotune::Distribution = FloatDistribution::new(1e-300, 1.0 / 3.0, true, None)
        .expect("valid")
        .into();
    s.set_trial_param(
        t.id,
        &Param::from_internal("p", d.clone(), 1e-300 * 3.0).expect("param"),
    )
    .expect("param");
    s.set_trial_intermediate_value(t.id, 0, &[f64::NAN, f64::NEG_INFINITY])
        .expect("report");
    s.set_trial_user_attr(t.id, "third", &serde_json::json!(1.0 / 3.0))
        .expect("attr");
    s.set_trial_state(t.id, R, C, Some(&[tricky, f64::INFINITY]), None)
        .expect("finish");
    let back = PostgresStorage::connect(&format!("{url}{sep}schema={schema}"))
        .expect("connect")
        .trial(t.id)
        .expect("read");
    let v = back.values.as_deref().expect("values");
    assert_eq!(v[0].to_bits(), tricky.to_bits());
    assert!(v[1].is_infinite() && v[1] > 0.0);
    let iv = back.intermediate_values.get(&0).expect("step 0");
    assert!(iv[0].is_nan() && iv[1].is_infinite() && iv[1] < 0.0);
    assert_eq!(back.params.distribution("p"), Some(&d));
    assert_eq!(
        back.internal_param("p").map(f64::to_bits),
        Some((1e-300 * 3.0f64).to_bits())
    );
    assert_eq!(
        back.user_attrs["third"].as_f64().map(f64::to_bits),
        Some((1.0f64 / 3.0).to_bits())
    );
}

use TrialState::{Complete as C, Running as R};

#[test]
fn connections_closed_by_the_server_are_replaced() {
    let Some(url) = common::url("connections_closed_by_the_server_are_replaced") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let app = common::unique_name("ft_kill");
    let sep = if url.contains('?') { '&' } else { '?' };
    let s = PostgresStorage::connect_with(
        &format!("{url}{sep}application_name={app}"),
        PostgresOptions::default().schema(schemas.fresh()),
    )
    .expect("connect");
    let study = s
        .create_study("k", &[Direction::Minimize], &BTreeMap::new())
        .expect("study");
    let mut admin = schemas.client();
    let kill = |admin: &mut postgres::Client, wait: bool| {
        let killed: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1) k",
                &[&app],
            )
            .expect("terminate")
            .get(0);
        assert!(killed >= 1, "no connection named {app}");
        // As between the trials of a real objective: the pool checks connections that sat
        // idle for a while before it hands them out.
        if wait {
            std::thread::sleep(Duration::from_millis(1100));
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    kill(&mut admin, true);
    // A write after the server closed the pooled connection goes to a new one.
    let t = s
        .create_trial(study, None)
        .expect("create after a kill")
        .expect("uncapped");
    kill(&mut admin, true);
    assert_eq!(s.trials(study, None).expect("read after a kill").len(), 1);
    kill(&mut admin, true);
    assert!(s
        .set_trial_state(t.id, R, C, Some(&[1.0]), None)
        .expect("finish after a kill"));
    // Reads are repeated on a new connection at once when the pooled one turns out dead.
    kill(&mut admin, false);
    let t = s.trial(t.id).expect("read right after a kill");
    assert_eq!(t.state, C);
}
