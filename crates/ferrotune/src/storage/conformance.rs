//! The storage conformance suite: the behaviour every [`Storage`] backend must show. Backends
//! outside this crate enable the `conformance` feature and call [`run_all`] from a test with a
//! function that makes a fresh, empty storage.
//!
//! Each check panics with a message naming the broken rule.

use super::{Storage, StudyId};
use crate::error::Error;
use crate::space::{Distribution, FloatDistribution, IntDistribution, ParamValue};
use crate::study::Direction;
use crate::trial::{FrozenTrial, Param, TrialId, TrialState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Runs every check, each on a fresh storage from `make`.
pub fn run_all<S: Storage + 'static>(make: impl Fn() -> S) {
    studies_are_created_found_listed_and_deleted(&make());
    study_attributes_and_first_writer_wins(&make());
    study_attributes_compare_and_set(&make());
    trial_numbers_are_dense_and_capped(&make());
    params_intermediates_and_attrs_round_trip(&make());
    state_changes_are_compare_and_set(&make());
    finished_trials_are_immutable(&make());
    snapshots_do_not_alias_later_writes(&make());
    added_and_waiting_trials(&make());
    studies_are_renamed(&make());
    heartbeats_mark_stale_running_trials_only(&make());
    concurrent_workers_never_lose_or_duplicate(Arc::new(make()));
    concurrent_claims_and_first_writer_wins(Arc::new(make()));
    concurrent_compare_and_set_never_loses_updates(Arc::new(make()));
}

fn new_study(s: &dyn Storage, name: &str) -> StudyId {
    s.create_study(name, &[Direction::Minimize], &BTreeMap::new())
        .expect("create_study")
}

fn float01() -> Distribution {
    FloatDistribution::uniform(0.0, 1.0).expect("valid").into()
}

/// A parameter from its internal value.
fn param(name: &str, internal: f64, distribution: &Distribution) -> Param {
    Param::from_internal(name, distribution.clone(), internal).expect("valid")
}

/// Create, find by name and id, list, reject duplicates, delete.
pub fn studies_are_created_found_listed_and_deleted(s: &dyn Storage) {
    let mut attrs = BTreeMap::new();
    attrs.insert("k".to_owned(), json!({"a": 1}));
    let a = s
        .create_study("a", &[Direction::Minimize, Direction::Maximize], &attrs)
        .expect("create a");
    let b = new_study(s, "b");
    assert_ne!(a, b, "study ids must differ");
    let found = s.study_by_name("a").expect("find a");
    assert_eq!(found.id, a);
    assert_eq!(
        found.directions,
        vec![Direction::Minimize, Direction::Maximize]
    );
    assert_eq!(found.system_attrs.get("k"), Some(&json!({"a": 1})));
    assert_eq!(s.study(b).expect("by id").name, "b");
    assert!(
        matches!(
            s.create_study("a", &[Direction::Minimize], &BTreeMap::new()),
            Err(Error::DuplicateStudy(_))
        ),
        "a duplicate name must be rejected"
    );
    let names: Vec<String> = s
        .studies()
        .expect("list")
        .into_iter()
        .map(|st| st.name)
        .collect();
    assert_eq!(names, vec!["a", "b"], "studies listed in creation order");
    s.create_trial(a, None).expect("trial");
    s.delete_study(a).expect("delete");
    assert!(matches!(s.study_by_name("a"), Err(Error::StudyNotFound(_))));
    assert!(s.study(a).is_err(), "deleted study must be gone by id");
    assert_eq!(s.studies().expect("list").len(), 1);
}

/// User and system attributes; `set_study_system_attr_if_absent` keeps the first value.
pub fn study_attributes_and_first_writer_wins(s: &dyn Storage) {
    let id = new_study(s, "attrs");
    s.set_study_user_attr(id, "note", &json!("hello"))
        .expect("user attr");
    s.set_study_system_attr(id, "x", &json!(1))
        .expect("sys attr");
    s.set_study_system_attr(id, "x", &json!(2))
        .expect("overwrite");
    let first = s
        .set_study_system_attr_if_absent(id, "once", &json!("first"))
        .expect("if absent");
    let second = s
        .set_study_system_attr_if_absent(id, "once", &json!("second"))
        .expect("if absent again");
    assert_eq!(first, json!("first"));
    assert_eq!(second, json!("first"), "the first writer must win");
    let st = s.study(id).expect("study");
    assert_eq!(st.user_attrs.get("note"), Some(&json!("hello")));
    assert_eq!(st.system_attrs.get("x"), Some(&json!(2)));
    assert_eq!(
        s.study_system_attr(id, "once").expect("read"),
        Some(json!("first"))
    );
    assert_eq!(s.study_system_attr(id, "missing").expect("read"), None);
}

/// `compare_and_set_study_system_attr`: setting an absent attribute wins, a wrong or stale
/// expectation loses and changes nothing, the right one wins; equality is JSON value
/// equality, also for values that went through the storage; unknown studies are errors.
pub fn study_attributes_compare_and_set(s: &dyn Storage) {
    let id = new_study(s, "cas-attrs");
    let other = new_study(s, "cas-other");
    let cas = |study: StudyId, key: &str, expected: Option<&Value>, new: &Value| {
        s.compare_and_set_study_system_attr(study, key, expected, new)
            .expect("compare_and_set_study_system_attr")
    };
    let read = |key: &str| s.study_system_attr(id, key).expect("read");

    let v1 = json!({"rungs": [[0, 1]], "promoted": []});
    assert!(
        cas(id, "state", None, &v1),
        "setting an absent attribute must win"
    );
    assert!(
        !cas(id, "state", None, &json!("late")),
        "expecting an absent attribute must lose once it is set"
    );
    assert!(
        !cas(id, "state", Some(&json!({"rungs": [[0]]})), &json!("wrong")),
        "a wrong expected value must lose"
    );
    assert_eq!(
        read("state"),
        Some(v1.clone()),
        "a loser must change nothing"
    );
    assert!(
        !cas(id, "missing", Some(&v1), &json!(1)),
        "expecting a value of an absent attribute must lose"
    );
    assert_eq!(
        read("missing"),
        None,
        "a loser must not create the attribute"
    );
    let v2 = json!({"rungs": [[0, 1], [1]], "promoted": [0]});
    assert!(
        cas(id, "state", Some(&v1), &v2),
        "the right expected value must win"
    );
    assert!(
        !cas(id, "state", Some(&v1), &json!("stale")),
        "a stale expected value must lose"
    );
    assert_eq!(read("state"), Some(v2.clone()));

    // System attributes only: a user attribute of the same name is neither compared nor
    // changed, and neither are other studies.
    s.set_study_user_attr(id, "u", &json!(1))
        .expect("user attr");
    assert!(
        !cas(id, "u", Some(&json!(1)), &json!(2)),
        "a user attribute is not a system attribute"
    );
    assert!(cas(id, "u", None, &json!(3)));
    let st = s.study(id).expect("study");
    assert_eq!(st.user_attrs.get("u"), Some(&json!(1)));
    assert_eq!(st.system_attrs.get("u"), Some(&json!(3)));
    assert_eq!(s.study_system_attr(other, "state").expect("read"), None);

    // Values that went through the storage compare equal to the values written: nested
    // objects, floats that need every digit, integers beyond f64's precision.
    let tricky = json!({
        "floats": [0.1, 1e-300, -2.5e300, 1.0 / 3.0, f64::MAX, f64::MIN_POSITIVE, 5e-324,
                   123456789.125, -0.5],
        "ints": [u64::MAX, i64::MIN, 9007199254740993u64, 0, -1],
        "nested": {"b": {"c": [true, null, "é \"q\" \\ \u{0}"]}, "a": [], "e": {}},
    });
    s.set_study_system_attr(id, "tricky", &tricky).expect("set");
    assert_eq!(
        read("tricky"),
        Some(tricky.clone()),
        "values round-trip exactly"
    );
    assert!(
        cas(id, "tricky", Some(&tricky), &json!({"n": 0})),
        "the value written must equal the value stored"
    );
    assert!(cas(id, "tricky", Some(&json!({"n": 0})), &tricky));
    let back = read("tricky").expect("present");
    assert!(
        cas(id, "tricky", Some(&back), &Value::Null),
        "the value read must equal the value stored"
    );
    assert!(
        !cas(id, "tricky", None, &json!(1)),
        "a null value is present, not absent"
    );
    assert!(cas(id, "tricky", Some(&Value::Null), &json!(1)));

    // JSON value equality, not equality of text: -0.0 equals 0.0; 1 and 1.0 differ (as in
    // serde_json).
    s.set_study_system_attr(id, "zero", &json!({"x": -0.0}))
        .expect("set");
    assert!(
        cas(id, "zero", Some(&json!({"x": 0.0})), &json!("won")),
        "equal JSON values must match whatever their text"
    );
    assert!(
        !cas(id, "tricky", Some(&json!(1.0)), &json!(2)),
        "the integer 1 is not the float 1.0"
    );

    // Large values (a population of a few hundred kB).
    let population = |gen: u64| {
        json!({
            "generation": gen,
            "members": (0..4000u64)
                .map(|i| json!({"id": i, "lr": i as f64 * 1e-4 + 0.1, "tag": format!("m{i}")}))
                .collect::<Vec<_>>(),
        })
    };
    let (p0, p1) = (population(0), population(1));
    assert!(cas(id, "population", None, &p0));
    assert!(!cas(id, "population", Some(&p1), &p1));
    assert!(cas(id, "population", Some(&p0), &p1));
    assert_eq!(read("population"), Some(p1));

    s.delete_study(other).expect("delete");
    for expected in [None, Some(&v1)] {
        for study in [other, StudyId(u64::MAX)] {
            assert!(
                matches!(
                    s.compare_and_set_study_system_attr(study, "state", expected, &v1),
                    Err(Error::StudyNotFound(_))
                ),
                "an unknown study must be StudyNotFound (expected {expected:?})"
            );
        }
    }
}

/// Numbers are 0, 1, 2… per study; `max_trials` caps creation.
pub fn trial_numbers_are_dense_and_capped(s: &dyn Storage) {
    let a = new_study(s, "a");
    let b = new_study(s, "b");
    let mut ids = HashSet::new();
    for expected in 0..5 {
        let t = s.create_trial(a, None).expect("create").expect("uncapped");
        assert_eq!(t.number, expected, "numbers must be dense per study");
        assert_eq!(t.state, TrialState::Running);
        assert!(t.datetime_start.is_some());
        assert!(ids.insert(t.id), "trial ids must be unique");
    }
    let tb = s.create_trial(b, None).expect("create").expect("uncapped");
    assert_eq!(tb.number, 0, "each study numbers from 0");
    assert!(ids.insert(tb.id));
    assert!(s.create_trial(a, Some(6)).expect("create").is_some());
    assert!(
        s.create_trial(a, Some(6)).expect("create").is_none(),
        "max_trials must cap creation"
    );
    assert_eq!(s.n_trials(a, None).expect("count"), 6);
}

/// Params with distributions, intermediate values per step and objective, attributes.
pub fn params_intermediates_and_attrs_round_trip(s: &dyn Storage) {
    let id = new_study(s, "rt");
    let t = s.create_trial(id, None).expect("create").expect("uncapped");
    let lr: Distribution = FloatDistribution::log_uniform(1e-5, 1e-1)
        .expect("valid")
        .into();
    let layers: Distribution = IntDistribution::range(1, 8).expect("valid").into();
    let opt: Distribution = crate::space::CategoricalDistribution::new(["adam", "sgd"])
        .expect("valid")
        .into();
    s.set_trial_param(t.id, &param("lr", 0.001, &lr))
        .expect("param");
    s.set_trial_param(t.id, &param("layers", 3.0, &layers))
        .expect("param");
    s.set_trial_param(t.id, &param("opt", 1.0, &opt))
        .expect("param");
    assert!(
        matches!(
            s.set_trial_param(t.id, &param("lr", 0.5, &float01())),
            Err(Error::IncompatibleDistribution { .. })
        ),
        "a second distribution for one name must be rejected"
    );
    s.set_trial_intermediate_value(t.id, 0, &[0.9])
        .expect("report");
    s.set_trial_intermediate_value(t.id, 5, &[0.5])
        .expect("report");
    s.set_trial_intermediate_value(t.id, 5, &[0.4])
        .expect("overwrite");
    s.set_trial_user_attr(t.id, "u", &json!([1, 2]))
        .expect("attr");
    s.set_trial_system_attr(t.id, "s", &json!({"k": true}))
        .expect("attr");
    let back = s.trial(t.id).expect("read");
    assert_eq!(back.params.get("lr"), Some(&ParamValue::Float(0.001)));
    assert_eq!(back.params.get("layers"), Some(&ParamValue::Int(3)));
    assert_eq!(back.params.get("opt"), Some(&ParamValue::from("sgd")));
    assert_eq!(back.params.distribution("lr"), Some(&lr));
    assert_eq!(back.internal_param("opt"), Some(1.0));
    assert_eq!(back.intermediate_values.get(&0), Some(&vec![0.9]));
    assert_eq!(back.intermediate_values.get(&5), Some(&vec![0.4]));
    assert_eq!(back.last_step(), Some(5));
    assert_eq!(back.user_attrs.get("u"), Some(&json!([1, 2])));
    assert_eq!(back.system_attrs.get("s"), Some(&json!({"k": true})));

    let s2 = new_study_multi(s);
    let t2 = s.create_trial(s2, None).expect("create").expect("uncapped");
    s.set_trial_intermediate_value(t2.id, 1, &[0.1, 7.0])
        .expect("report per objective");
    assert_eq!(
        s.trial(t2.id).expect("read").intermediate_values.get(&1),
        Some(&vec![0.1, 7.0])
    );
}

fn new_study_multi(s: &dyn Storage) -> StudyId {
    s.create_study(
        "multi",
        &[Direction::Minimize, Direction::Maximize],
        &BTreeMap::new(),
    )
    .expect("create")
}

/// Leaving Running is a compare-and-set that tells the caller whether it won.
pub fn state_changes_are_compare_and_set(s: &dyn Storage) {
    let id = new_study(s, "cas");
    let t = s.create_trial(id, None).expect("create").expect("uncapped");
    assert!(s
        .set_trial_state(
            t.id,
            TrialState::Running,
            TrialState::Complete,
            Some(&[1.5]),
            None
        )
        .expect("finish"));
    assert!(
        !s.set_trial_state(
            t.id,
            TrialState::Running,
            TrialState::Fail,
            None,
            Some("late")
        )
        .expect("second finish"),
        "a second finisher must lose"
    );
    let back = s.trial(t.id).expect("read");
    assert_eq!(back.state, TrialState::Complete);
    assert_eq!(back.values, Some(vec![1.5]));
    assert!(back.datetime_complete.is_some());
    assert_eq!(back.fail_reason, None);

    let f = s.create_trial(id, None).expect("create").expect("uncapped");
    assert!(s
        .set_trial_state(
            f.id,
            TrialState::Running,
            TrialState::Fail,
            None,
            Some("boom")
        )
        .expect("fail"));
    assert_eq!(
        s.trial(f.id).expect("read").fail_reason.as_deref(),
        Some("boom")
    );

    let by_state = s.trials(id, Some(&[TrialState::Fail])).expect("filter");
    assert_eq!(by_state.len(), 1);
    assert_eq!(by_state[0].number, 1);
    assert_eq!(
        s.n_trials(id, Some(&[TrialState::Complete]))
            .expect("count"),
        1
    );
}

/// Writing to a finished trial is an error and changes nothing.
pub fn finished_trials_are_immutable(s: &dyn Storage) {
    let id = new_study(s, "imm");
    let t = s.create_trial(id, None).expect("create").expect("uncapped");
    s.set_trial_state(t.id, TrialState::Running, TrialState::Pruned, None, None)
        .expect("prune");
    let finished = |r: crate::Result<()>| matches!(r, Err(Error::TrialFinished { .. }));
    assert!(finished(
        s.set_trial_param(t.id, &param("x", 0.5, &float01()))
    ));
    assert!(finished(s.set_trial_intermediate_value(t.id, 1, &[1.0])));
    assert!(finished(s.set_trial_user_attr(t.id, "k", &Value::Null)));
    assert!(finished(s.set_trial_system_attr(t.id, "k", &Value::Null)));
    let back = s.trial(t.id).expect("read");
    assert!(back.params.is_empty() && back.user_attrs.is_empty());
    assert!(matches!(
        s.trial(TrialId(u64::MAX)),
        Err(Error::TrialNotFound(_))
    ));
}

/// A snapshot read before a write does not see it.
pub fn snapshots_do_not_alias_later_writes(s: &dyn Storage) {
    let id = new_study(s, "snap");
    let t = s.create_trial(id, None).expect("create").expect("uncapped");
    let before = s.trials(id, None).expect("snapshot");
    let single = s.trial(t.id).expect("read");
    s.set_trial_param(t.id, &param("x", 0.25, &float01()))
        .expect("param");
    s.set_trial_state(
        t.id,
        TrialState::Running,
        TrialState::Complete,
        Some(&[0.0]),
        None,
    )
    .expect("finish");
    assert!(
        before[0].params.is_empty(),
        "snapshot changed by a later write"
    );
    assert_eq!(before[0].state, TrialState::Running);
    assert_eq!(single.state, TrialState::Running);
    assert_eq!(s.trial(t.id).expect("read").state, TrialState::Complete);
}

/// `add_trial` copies a template with a new number; Waiting trials are claimed once.
pub fn added_and_waiting_trials(s: &dyn Storage) {
    let id = new_study(s, "add");
    s.create_trial(id, None).expect("create");
    let mut done = FrozenTrial::completed(
        [("x".to_owned(), float01(), ParamValue::Float(0.5))],
        vec![3.0],
    );
    done.intermediate_values.insert(2, vec![4.0]);
    done.user_attrs.insert("src".into(), json!("warm"));
    let added = s.add_trial(id, &done).expect("add");
    assert_eq!(added.number, 1);
    let back = s.trial(added.id).expect("read");
    assert_eq!(back.state, TrialState::Complete);
    assert_eq!(back.values, Some(vec![3.0]));
    assert_eq!(back.params.get("x"), Some(&ParamValue::Float(0.5)));
    assert_eq!(back.intermediate_values.get(&2), Some(&vec![4.0]));
    assert_eq!(back.user_attrs.get("src"), Some(&json!("warm")));

    let mut waiting = FrozenTrial::new_running(TrialId(0), 0);
    waiting.state = TrialState::Waiting;
    waiting
        .system_attrs
        .insert("fixed_params".into(), json!({"x": 0.1}));
    let w = s.add_trial(id, &waiting).expect("enqueue");
    assert_eq!(w.state, TrialState::Waiting);
    let claimed = s
        .claim_waiting_trial(id)
        .expect("claim")
        .expect("one waiting");
    assert_eq!(claimed.id, w.id);
    assert_eq!(claimed.state, TrialState::Running);
    assert_eq!(
        claimed.system_attrs.get("fixed_params"),
        Some(&json!({"x": 0.1}))
    );
    assert!(s.claim_waiting_trial(id).expect("claim").is_none());
}

/// Many threads creating, writing and finishing trials at once: every number exactly once,
/// every value and report present, no trial finished twice.
pub fn concurrent_workers_never_lose_or_duplicate<S: Storage + 'static>(s: Arc<S>) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 50;
    let id = new_study(&*s, "race");
    let wins = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for w in 0..THREADS {
            let s = &s;
            let wins = &wins;
            scope.spawn(move || {
                for _ in 0..PER_THREAD {
                    let t = s.create_trial(id, None).expect("create").expect("uncapped");
                    let x = t.number as f64 / 1000.0;
                    s.set_trial_param(t.id, &param("x", x, &float01()))
                        .expect("param");
                    s.set_trial_intermediate_value(t.id, 0, &[x])
                        .expect("report");
                    s.set_trial_user_attr(t.id, "worker", &json!(w))
                        .expect("attr");
                    // Two finishers race for every trial: exactly one may win.
                    let a = s
                        .set_trial_state(
                            t.id,
                            TrialState::Running,
                            TrialState::Complete,
                            Some(&[x]),
                            None,
                        )
                        .expect("finish");
                    let b = s
                        .set_trial_state(
                            t.id,
                            TrialState::Running,
                            TrialState::Fail,
                            None,
                            Some("dup"),
                        )
                        .expect("finish again");
                    assert!(a && !b, "exactly one finisher must win");
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    let trials = s.trials(id, None).expect("read");
    let n = THREADS * PER_THREAD;
    assert_eq!(trials.len() as u64, n);
    assert_eq!(wins.into_inner(), n);
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(
        numbers,
        (0..n).collect::<Vec<_>>(),
        "numbers 0..n exactly once, in order"
    );
    for t in &trials {
        let x = t.number as f64 / 1000.0;
        assert_eq!(t.state, TrialState::Complete);
        assert_eq!(t.values.as_deref(), Some(&[x][..]));
        assert_eq!(t.intermediate_values.get(&0), Some(&vec![x]));
        assert_eq!(t.params.get("x"), Some(&ParamValue::Float(x)));
    }
}

/// Threads claiming the same Waiting trials and racing on one first-writer-wins key.
pub fn concurrent_claims_and_first_writer_wins<S: Storage + 'static>(s: Arc<S>) {
    const WAITING: usize = 40;
    let id = new_study(&*s, "claims");
    let mut template = FrozenTrial::new_running(TrialId(0), 0);
    template.state = TrialState::Waiting;
    for _ in 0..WAITING {
        s.add_trial(id, &template).expect("enqueue");
    }
    let claimed = std::sync::Mutex::new(Vec::new());
    let winners = std::sync::Mutex::new(HashSet::new());
    std::thread::scope(|scope| {
        for w in 0..8u64 {
            let (s, claimed, winners) = (&s, &claimed, &winners);
            scope.spawn(move || {
                let won = s
                    .set_study_system_attr_if_absent(id, "leader", &json!(w))
                    .expect("if absent");
                winners.lock().expect("lock").insert(won.to_string());
                while let Some(t) = s.claim_waiting_trial(id).expect("claim") {
                    claimed.lock().expect("lock").push(t.number);
                }
            });
        }
    });
    let mut claimed = claimed.into_inner().expect("lock");
    claimed.sort_unstable();
    assert_eq!(
        claimed,
        (0..WAITING as u64).collect::<Vec<_>>(),
        "every waiting trial claimed exactly once"
    );
    assert_eq!(
        winners.into_inner().expect("lock").len(),
        1,
        "one winner for all"
    );
}

/// Threads incrementing one counter attribute with read–modify–compare-and-set loops: every
/// increment lands exactly once (a compare-and-set that is not atomic loses updates, or lets
/// two callers win from one value).
pub fn concurrent_compare_and_set_never_loses_updates<S: Storage + 'static>(s: Arc<S>) {
    let handles: Vec<&dyn Storage> = (0..8).map(|_| &*s as &dyn Storage).collect();
    compare_and_set_across_handles(&handles);
}

/// The race of [`concurrent_compare_and_set_never_loses_updates`], one thread per handle.
/// Backends whose handles each hold their own connection call it with several handles opened
/// on one database (what workers on many machines do); the first one creates the study.
pub fn compare_and_set_across_handles(handles: &[&dyn Storage]) {
    const PER_THREAD: u64 = 50;
    let Some(first) = handles.first() else {
        return;
    };
    let id = new_study(*first, "cas-race");
    let won = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for &s in handles {
            let won = &won;
            scope.spawn(move || {
                for _ in 0..PER_THREAD {
                    loop {
                        let old = s.study_system_attr(id, "counter").expect("read");
                        let n = match &old {
                            None => 0,
                            Some(v) => v["n"].as_u64().expect("a counter"),
                        };
                        // A float that needs every digit, so equality after the round trip
                        // through storage is exercised on every attempt.
                        let new = json!({"n": n + 1, "mean": (n + 1) as f64 / 3.0});
                        if s.compare_and_set_study_system_attr(id, "counter", old.as_ref(), &new)
                            .expect("compare and set")
                        {
                            won.lock().expect("lock").push(n + 1);
                            break;
                        }
                    }
                }
            });
        }
    });
    let total = handles.len() as u64 * PER_THREAD;
    let mut won = won.into_inner().expect("lock");
    won.sort_unstable();
    assert_eq!(
        won,
        (1..=total).collect::<Vec<_>>(),
        "each value must be won exactly once"
    );
    assert_eq!(
        first.study_system_attr(id, "counter").expect("read"),
        Some(json!({"n": total, "mean": total as f64 / 3.0})),
        "a compare-and-set lost an update"
    );
}

/// Renaming keeps the study and its trials; a taken name is refused.
pub fn studies_are_renamed(s: &dyn Storage) {
    let a = new_study(s, "old");
    new_study(s, "taken");
    s.create_trial(a, None).expect("trial");
    s.rename_study(a, "new").expect("rename");
    assert_eq!(s.study_by_name("new").expect("renamed").id, a);
    assert!(matches!(
        s.study_by_name("old"),
        Err(Error::StudyNotFound(_))
    ));
    assert_eq!(s.n_trials(a, None).expect("count"), 1);
    assert!(matches!(
        s.rename_study(a, "taken"),
        Err(Error::DuplicateStudy(_))
    ));
}

/// Only Running trials with an old heartbeat are stale: never those without one, nor
/// finished or Paused ones; entering Running again clears the heartbeat.
pub fn heartbeats_mark_stale_running_trials_only(s: &dyn Storage) {
    let id = new_study(s, "beats");
    let grace = std::time::Duration::from_millis(300);
    let beating = s.create_trial(id, None).expect("create").expect("uncapped");
    let silent = s.create_trial(id, None).expect("create").expect("uncapped");
    let fresh = s.create_trial(id, None).expect("create").expect("uncapped");
    let finished = s.create_trial(id, None).expect("create").expect("uncapped");
    let paused = s.create_trial(id, None).expect("create").expect("uncapped");
    for t in [&beating, &finished, &paused] {
        s.record_heartbeat(t.id).expect("heartbeat");
    }
    assert!(s.stale_trials(id, grace).expect("stale").is_empty());
    std::thread::sleep(grace + std::time::Duration::from_millis(200));
    s.record_heartbeat(fresh.id).expect("heartbeat");
    s.set_trial_state(
        finished.id,
        TrialState::Running,
        TrialState::Complete,
        Some(&[1.0]),
        None,
    )
    .expect("finish");
    s.set_trial_state(
        paused.id,
        TrialState::Running,
        TrialState::Paused,
        None,
        None,
    )
    .expect("pause");
    assert_eq!(
        s.stale_trials(id, grace).expect("stale"),
        vec![beating.id],
        "only the running trial with an old heartbeat is stale (not {:?} without one)",
        silent.id
    );
    // A resumed trial starts without a heartbeat.
    s.set_trial_state(
        paused.id,
        TrialState::Paused,
        TrialState::Running,
        None,
        None,
    )
    .expect("resume");
    assert_eq!(s.stale_trials(id, grace).expect("stale"), vec![beating.id]);
    assert!(
        s.record_heartbeat(finished.id).is_err(),
        "finished trials take no heartbeat"
    );
}
