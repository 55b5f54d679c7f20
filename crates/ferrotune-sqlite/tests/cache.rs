//! The per-study trial cache: exact while another connection (as another process would)
//! writes the same file, and incremental — a read costs what changed, not the history.

mod common;

use ferrotune::space::FloatDistribution;
use ferrotune::storage::StudyId;
use ferrotune::trial::TrialId;
use ferrotune::{Direction, Error, FrozenTrial, Param, Storage, TrialState};
use ferrotune_sqlite::SqliteStorage;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

fn x(v: f64) -> Param {
    Param::from_internal(
        "x",
        FloatDistribution::uniform(0.0, 1.0).expect("valid").into(),
        v,
    )
    .expect("valid")
}

/// `reader`'s cached view equals a fresh storage's full read; returns how many trial records
/// `reader` loaded for it.
fn check(reader: &SqliteStorage, url: &str, study: StudyId) -> u64 {
    let before = reader.trials_loaded();
    let cached = reader.trials(study, None).expect("cached read");
    let loaded = reader.trials_loaded() - before;
    let fresh = SqliteStorage::open(url)
        .expect("open")
        .trials(study, None)
        .expect("fresh read");
    assert_eq!(cached.len(), fresh.len());
    for (a, b) in cached.iter().zip(&fresh) {
        assert_eq!(**a, **b, "cache differs for trial #{}", a.number);
    }
    loaded
}

#[test]
fn the_cache_follows_every_kind_of_write_from_another_connection() {
    let dir = common::TempDir::new("follow");
    let url = dir.url("c.db");
    let reader = SqliteStorage::open(&url).expect("reader");
    let writer = SqliteStorage::open(&url).expect("writer");
    let id = writer
        .create_study("s", &[Direction::Minimize], &BTreeMap::new())
        .expect("study");
    assert_eq!(check(&reader, &url, id), 0);

    let a = writer
        .create_trial(id, None)
        .expect("create")
        .expect("uncapped");
    let b = writer
        .create_trial(id, None)
        .expect("create")
        .expect("uncapped");
    assert_eq!(check(&reader, &url, id), 2, "new trials");
    // Writes to Running trials (not stamped) are seen: Running trials are always re-read.
    writer.set_trial_param(a.id, &x(0.5)).expect("param");
    writer
        .set_trial_intermediate_value(a.id, 3, &[0.1])
        .expect("report");
    writer
        .set_trial_user_attr(b.id, "k", &json!(1))
        .expect("attr");
    writer
        .set_trial_system_attr(b.id, "s", &json!("v"))
        .expect("attr");
    assert_eq!(check(&reader, &url, id), 2);
    // Finishing: seen, and afterwards never read again.
    writer
        .set_trial_state(
            a.id,
            TrialState::Running,
            TrialState::Complete,
            Some(&[0.5]),
            None,
        )
        .expect("finish");
    writer
        .set_trial_state(
            b.id,
            TrialState::Running,
            TrialState::Fail,
            None,
            Some("boom"),
        )
        .expect("fail");
    assert_eq!(check(&reader, &url, id), 2);
    assert_eq!(check(&reader, &url, id), 0, "nothing changed, nothing read");
    // A queued trial: its writes while Waiting are stamped; claiming it is seen.
    let mut template = FrozenTrial::new_running(TrialId(0), 0);
    template.state = TrialState::Waiting;
    template.datetime_start = None;
    let w = writer.add_trial(id, &template).expect("enqueue");
    assert_eq!(check(&reader, &url, id), 1);
    writer
        .set_trial_system_attr(w.id, "fixed_params", &json!({"x": 0.2}))
        .expect("attr");
    assert_eq!(check(&reader, &url, id), 1);
    assert_eq!(check(&reader, &url, id), 0);
    writer.claim_waiting_trial(id).expect("claim").expect("one");
    assert_eq!(check(&reader, &url, id), 1);
    // Pause and resume.
    writer
        .set_trial_state(w.id, TrialState::Running, TrialState::Paused, None, None)
        .expect("pause");
    assert_eq!(check(&reader, &url, id), 1);
    writer
        .set_trial_user_attr(w.id, "checkpoint", &json!("ck-1"))
        .expect("attr");
    assert_eq!(check(&reader, &url, id), 1);
    writer
        .set_trial_state(w.id, TrialState::Paused, TrialState::Running, None, None)
        .expect("resume");
    writer
        .set_trial_intermediate_value(w.id, 0, &[f64::INFINITY])
        .expect("report");
    assert_eq!(check(&reader, &url, id), 1);
    // A finished trial is served from the cache by id; a running one is read.
    let before = reader.trials_loaded();
    assert_eq!(reader.trial(a.id).expect("trial").values, Some(vec![0.5]));
    assert_eq!(
        reader.trials_loaded(),
        before,
        "finished trial from the cache"
    );
    reader.trial(w.id).expect("trial");
    assert_eq!(reader.trials_loaded(), before + 1);
    // Another connection deletes the study.
    writer.delete_study(id).expect("delete");
    assert!(matches!(
        reader.trials(id, None),
        Err(Error::StudyNotFound(_))
    ));
    assert!(matches!(reader.trial(a.id), Err(Error::TrialNotFound(_))));
}

#[test]
fn reading_a_long_history_costs_what_changed() {
    const N: u64 = 10_000;
    let dir = common::TempDir::new("long");
    let url = dir.url("long.db");
    let writer = SqliteStorage::open(&url).expect("writer");
    let id = writer
        .create_study("long", &[Direction::Minimize], &BTreeMap::new())
        .expect("study");
    for i in 0..N {
        let mut t = FrozenTrial::completed(
            [(
                "x".to_owned(),
                FloatDistribution::uniform(0.0, 1.0).expect("valid").into(),
                ferrotune::ParamValue::Float(i as f64 / N as f64),
            )],
            vec![i as f64],
        );
        t.intermediate_values.insert(0, vec![i as f64]);
        writer.add_trial(id, &t).expect("add");
    }
    let reader = SqliteStorage::open(&url).expect("reader");
    assert_eq!(reader.trials(id, None).expect("cold").len() as u64, N);
    assert_eq!(reader.trials_loaded(), N);
    // Nothing new: nothing read. One new trial, and its writes: only it.
    let t0 = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(reader.trials(id, None).expect("warm").len() as u64, N);
    }
    let warm = t0.elapsed() / 10;
    assert_eq!(reader.trials_loaded(), N);
    let t = writer
        .create_trial(id, None)
        .expect("create")
        .expect("uncapped");
    writer.set_trial_param(t.id, &x(0.3)).expect("param");
    let all = reader.trials(id, None).expect("incremental");
    assert_eq!(all.len() as u64, N + 1);
    assert_eq!(
        all[N as usize].params.get("x"),
        Some(&ferrotune::ParamValue::Float(0.3))
    );
    assert_eq!(reader.trials_loaded(), N + 1);
    // Filtering by state reads nothing either (the Running trial is re-read, as always).
    let complete = reader
        .trials(id, Some(&[TrialState::Complete]))
        .expect("filter");
    assert_eq!(complete.len() as u64, N);
    assert_eq!(reader.trials_loaded(), N + 2);
    // Snapshots share the cached records (no copy per read).
    let again = reader.trials(id, None).expect("read");
    assert!(Arc::ptr_eq(&all[0], &again[0]));
    eprintln!("warm read of {N} trials: {warm:?}");
}
