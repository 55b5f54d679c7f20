//! Upgrading a database written with schema version 1 (the first release) to the current
//! schema: data intact, and what the new version adds works.
//!
//! `tests/fixtures/v1.db` is written by `write_v1_fixture` below, which applies only the
//! version-1 migration and inserts rows exactly as version-1 ferrotune wrote them. Regenerate
//! it (only if it is lost: a released fixture never changes) with
//! `FERROTUNE_WRITE_FIXTURE=1 cargo test -p ferrotune-sqlite --test migration -- --ignored write_v1_fixture`.

mod common;

use ferrotune::space::{CategoricalDistribution, Distribution, FloatDistribution, IntDistribution};
use ferrotune::study::StudyConfig;
use ferrotune::{
    Direction, Optimize, ParamValue, PrunerSpec, SamplerSpec, Storage, Study, Trial, TrialError,
    TrialState,
};
use ferrotune_sqlite::{SqliteStorage, MIGRATIONS, SCHEMA_VERSION};
use rusqlite::{params, Connection};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1.db")
}

fn x_dist() -> Distribution {
    FloatDistribution::uniform(0.0, 1.0).expect("valid").into()
}
fn layers_dist() -> Distribution {
    IntDistribution::range(1, 8).expect("valid").into()
}
fn opt_dist() -> Distribution {
    CategoricalDistribution::new(["adam", "sgd"])
        .expect("valid")
        .into()
}

/// A fixed point in time (2026-01-01T00:00:00Z), so the fixture is reproducible.
const T0: f64 = 1_767_225_600.0;

/// A trial row of the fixture: number, state, values, start, complete, fail reason, heartbeat.
type V1Trial = (
    i64,
    &'static str,
    Option<&'static str>,
    Option<f64>,
    Option<f64>,
    Option<&'static str>,
    Option<f64>,
);

/// Writes `tests/fixtures/v1.db`: the version-1 schema, and rows as version 1 wrote them.
#[test]
#[ignore = "writes the committed fixture; see the module docs"]
fn write_v1_fixture() {
    if std::env::var_os("FERROTUNE_WRITE_FIXTURE").is_none() {
        eprintln!(
            "set FERROTUNE_WRITE_FIXTURE=1 to overwrite {}",
            fixture().display()
        );
        return;
    }
    let path = fixture();
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let conn = Connection::open(&path).expect("create");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("wal");
    conn.execute_batch(MIGRATIONS[0]).expect("schema v1");
    conn.execute("INSERT INTO schema_version VALUES (1, '0.1.0', ?1)", [T0])
        .expect("version");
    let config = StudyConfig {
        sampler: SamplerSpec::Random,
        pruner: PrunerSpec::Nop,
        seed: 42,
        version: "0.1.0".into(),
        scheduler: Default::default(),
        checkpoints: None,
    };
    conn.execute(
        "INSERT INTO studies VALUES (1, 'legacy', '[\"minimize\"]', ?1)",
        [T0],
    )
    .expect("study");
    conn.execute(
        "INSERT INTO study_attrs VALUES (1, 1, 'ferrotune:config', ?1), (1, 0, 'owner', '\"ada\"')",
        [serde_json::to_string(&config).expect("json")],
    )
    .expect("study attrs");
    conn.execute(
        "INSERT INTO studies VALUES (2, 'pareto', '[\"minimize\",\"maximize\"]', ?1)",
        [T0 + 1.0],
    )
    .expect("study");
    let trials: [V1Trial; 7] = [
        (
            0,
            "complete",
            Some("[0.25]"),
            Some(T0 + 10.0),
            Some(T0 + 11.5),
            None,
            None,
        ),
        (
            1,
            "complete",
            Some("[\"-inf\"]"),
            Some(T0 + 12.0),
            Some(T0 + 13.0),
            None,
            None,
        ),
        (
            2,
            "pruned",
            Some("[0.75]"),
            Some(T0 + 14.0),
            Some(T0 + 15.0),
            None,
            None,
        ),
        (
            3,
            "fail",
            None,
            Some(T0 + 16.0),
            Some(T0 + 16.5),
            Some("ValueError: boom"),
            None,
        ),
        (
            4,
            "complete",
            Some("[1e-300]"),
            Some(T0 + 17.0),
            Some(T0 + 18.0),
            None,
            None,
        ),
        (
            5,
            "running",
            None,
            Some(T0 + 19.0),
            None,
            None,
            Some(T0 + 20.0),
        ),
        (6, "waiting", None, None, None, None, None),
    ];
    for (number, state, values, start, complete, reason, beat) in trials {
        conn.execute(
            "INSERT INTO trials (trial_id, study_id, number, state, values_json, datetime_start, \
             datetime_complete, fail_reason, heartbeat) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                number + 1,
                number,
                state,
                values,
                start,
                complete,
                reason,
                beat
            ],
        )
        .expect("trial");
        if state != "waiting" {
            let x = 0.25 * (number % 4) as f64;
            for (name, internal, dist) in [
                ("x", x, x_dist()),
                ("layers", (1 + number % 8) as f64, layers_dist()),
                ("opt", (number % 2) as f64, opt_dist()),
            ] {
                conn.execute(
                    "INSERT INTO trial_params VALUES (?1, ?2, ?3, ?4)",
                    params![
                        number + 1,
                        name,
                        internal,
                        serde_json::to_string(&dist).expect("json")
                    ],
                )
                .expect("param");
            }
            for step in 0..3i64 {
                conn.execute(
                    "INSERT INTO trial_intermediate_values VALUES (?1, ?2, ?3)",
                    params![number + 1, step, format!("[{}]", x + step as f64)],
                )
                .expect("report");
            }
            conn.execute(
                "INSERT INTO trial_attrs VALUES (?1, 0, 'note', ?2)",
                params![number + 1, json!({"n": number}).to_string()],
            )
            .expect("attr");
        } else {
            conn.execute(
                "INSERT INTO trial_attrs VALUES (?1, 1, 'fixed_params', '{\"x\":0.5}')",
                params![number + 1],
            )
            .expect("attr");
        }
    }
    conn.execute(
        "INSERT INTO trials (trial_id, study_id, number, state, values_json, datetime_start, \
         datetime_complete) VALUES (8, 2, 0, 'complete', '[1.0,2.0]', ?1, ?2)",
        params![T0 + 30.0, T0 + 31.0],
    )
    .expect("trial");
    conn.execute_batch("VACUUM").expect("vacuum");
    drop(conn);
    assert!(!path.with_extension("db-wal").exists());
}

/// A copy of the fixture in a fresh directory (opening it creates -wal and -shm files).
fn copy_fixture(dir: &common::TempDir) -> PathBuf {
    let path = dir.path().join("v1.db");
    std::fs::copy(fixture(), &path).expect("copy fixture");
    path
}

#[test]
fn the_fixture_is_a_version_1_database() {
    let dir = common::TempDir::new("fixture");
    let conn = Connection::open(copy_fixture(&dir)).expect("open");
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1);
    assert!(
        conn.prepare("SELECT seq FROM trials").is_err(),
        "version 1 has no change marker"
    );
}

#[test]
fn a_version_1_database_is_upgraded_with_its_data_intact() {
    let dir = common::TempDir::new("upgrade");
    let path = copy_fixture(&dir);
    let url = format!("sqlite:///{}", path.display());
    let storage = Arc::new(SqliteStorage::open_existing(&url).expect("open and migrate"));
    assert_eq!(storage.schema_version().expect("version"), SCHEMA_VERSION);

    // Studies and their attributes.
    let studies = storage.studies().expect("studies");
    let names: Vec<&str> = studies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["legacy", "pareto"]);
    assert_eq!(studies[0].user_attrs.get("owner"), Some(&json!("ada")));
    assert_eq!(
        studies[1].directions,
        [Direction::Minimize, Direction::Maximize]
    );

    // Trials, with everything they held.
    let legacy = studies[0].id;
    let trials = storage.trials(legacy, None).expect("trials");
    assert_eq!(trials.len(), 7);
    let states: Vec<TrialState> = trials.iter().map(|t| t.state).collect();
    use TrialState::*;
    assert_eq!(
        states,
        [Complete, Complete, Pruned, Fail, Complete, Running, Waiting]
    );
    assert_eq!(trials[0].values, Some(vec![0.25]));
    assert_eq!(trials[1].values, Some(vec![f64::NEG_INFINITY]));
    assert_eq!(trials[4].values, Some(vec![1e-300]));
    assert_eq!(trials[3].fail_reason.as_deref(), Some("ValueError: boom"));
    let t2 = &trials[2];
    assert_eq!(t2.params.get("x"), Some(&ParamValue::Float(0.5)));
    assert_eq!(t2.params.get("layers"), Some(&ParamValue::Int(3)));
    assert_eq!(t2.params.get("opt"), Some(&ParamValue::from("adam")));
    assert_eq!(t2.params.distribution("opt"), Some(&opt_dist()));
    assert_eq!(t2.intermediate_values.get(&2), Some(&vec![2.5]));
    assert_eq!(t2.user_attrs.get("note"), Some(&json!({"n": 2})));
    assert_eq!(
        trials[6].system_attrs.get("fixed_params"),
        Some(&json!({"x": 0.5}))
    );
    let duration = trials[0].duration().expect("finished");
    assert!((duration.as_secs_f64() - 1.5).abs() < 1e-6, "{duration:?}");
    let pareto = storage.trials(studies[1].id, None).expect("trials");
    assert_eq!(pareto[0].values, Some(vec![1.0, 2.0]));

    // The study reopens with its stored configuration and goes on numbering; the enqueued
    // trial is claimed first.
    let study = Study::load(storage.clone(), "legacy").expect("load");
    assert_eq!(study.seed(), 42);
    study
        .optimize(
            |t: &mut Trial| -> Result<f64, TrialError> {
                let x = t.suggest_float("x", 0.0, 1.0)?;
                t.report(0, x)?;
                Ok(x)
            },
            Optimize::trials(3),
        )
        .expect("optimize");
    let after = study.trials().expect("trials");
    assert_eq!(after.len(), 9);
    assert_eq!(after[6].state, Complete, "the enqueued trial ran");
    assert_eq!(after[6].params.get("x"), Some(&ParamValue::Float(0.5)));
    assert_eq!(after[8].number, 8);
    for (old, new) in trials.iter().zip(&after).take(5) {
        assert_eq!(**old, **new, "finished trials unchanged");
    }

    // What version 2 adds: incremental reads. Nothing changed → nothing read; one new trial
    // → that one read (plus the migrated trial still Running).
    let loaded = storage.trials_loaded();
    study.trials().expect("trials");
    assert_eq!(
        storage.trials_loaded() - loaded,
        1,
        "only the Running trial is re-read"
    );
    study
        .optimize(
            |t: &mut Trial| -> Result<f64, TrialError> { Ok(t.suggest_float("x", 0.0, 1.0)?) },
            Optimize::trials(1),
        )
        .expect("optimize");
    let loaded = storage.trials_loaded();
    assert_eq!(study.trials().expect("trials").len(), 10);
    assert_eq!(storage.trials_loaded() - loaded, 2);

    // Heartbeats on the migrated Running trial, by the database clock.
    let running = after[5].id;
    assert!(
        storage
            .stale_trials(legacy, Duration::from_secs(60))
            .expect("stale")
            .contains(&running),
        "its version-1 heartbeat is long past"
    );
    storage.record_heartbeat(running).expect("heartbeat");
    assert!(storage
        .stale_trials(legacy, Duration::from_secs(60))
        .expect("stale")
        .is_empty());

    // A version-1 worker still running during the upgrade writes without stamps; the
    // triggers of version 2 stamp its new trials and state changes, so caches see them.
    let v1_worker = Connection::open(&path).expect("open");
    v1_worker
        .execute(
            "INSERT INTO trials (study_id, number, state, datetime_start) \
             VALUES (?1, 10, 'running', ?2)",
            params![legacy.0 as i64, T0],
        )
        .expect("v1 insert");
    let loaded = storage.trials_loaded();
    let seen = study.trials().expect("trials");
    assert_eq!(seen.len(), 11);
    assert_eq!(seen[10].state, Running);
    assert_eq!(storage.trials_loaded() - loaded, 2, "the new trial and #5");
    v1_worker
        .execute(
            "UPDATE trials SET state = 'complete', values_json = '[4.0]' WHERE number = 10 \
             AND study_id = ?1",
            [legacy.0 as i64],
        )
        .expect("v1 finish");
    let seen = study.trials().expect("trials");
    assert_eq!(seen[10].state, Complete);
    assert_eq!(seen[10].values, Some(vec![4.0]));
    drop(v1_worker);

    // Reopening does not migrate again.
    drop(study);
    drop(storage);
    let conn = Connection::open(&path).expect("open");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        versions,
        (1..=i64::from(SCHEMA_VERSION)).collect::<Vec<_>>()
    );
    drop(conn);
    SqliteStorage::open(&url).expect("reopen");
}
