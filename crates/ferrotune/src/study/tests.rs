// These tests check that values are passed through unchanged, so exact float equality is
// the property under test.
#![allow(clippy::float_cmp)]

use super::*;
use crate::objective::TrialError;
use crate::pruner::PrunerSpec;
use crate::storage::InMemoryStorage;
use crate::trial::Trial;
use crate::{FloatDistribution, Optimize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn study() -> Study {
    Study::builder().seed(1).build().unwrap()
}

fn quadratic(t: &mut Trial) -> Result<f64, TrialError> {
    let x = t.suggest_float("x", -5.0, 5.0)?;
    Ok((x - 1.0).powi(2))
}

#[test]
fn ask_tell_records_params_and_values() {
    let s = study();
    let mut t = s.ask().unwrap();
    assert_eq!(t.number(), 0);
    let x = t.suggest_float("x", 0.0, 1.0).unwrap();
    assert_eq!(
        t.suggest_float("x", 0.0, 1.0).unwrap(),
        x,
        "same name, same value"
    );
    let err = t.suggest_float("x", 0.0, 2.0).unwrap_err();
    assert!(
        matches!(err, Error::IncompatibleDistribution { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("float[0, 1]") && err.to_string().contains("float[0, 2]"));
    t.set_user_attr("note", "hi").unwrap();
    let done = s.tell(t, x * 2.0).unwrap();
    assert_eq!(done.state, TrialState::Complete);
    assert_eq!(done.value(), Some(x * 2.0));
    assert_eq!(done.user_attrs["note"], "hi");
    assert!(done.duration().is_some());
    assert!(matches!(
        s.tell_number(0, 1.0),
        Err(Error::TrialFinished { number: 0, .. })
    ));
}

#[test]
fn nan_fails_the_trial_and_infinity_is_a_value() {
    let s = study();
    let t = s.ask().unwrap();
    let failed = s.tell(t, f64::NAN).unwrap();
    assert_eq!(failed.state, TrialState::Fail);
    assert!(failed.fail_reason.as_deref().unwrap().contains("NaN"));
    let t = s.ask().unwrap();
    let inf = s.tell(t, f64::INFINITY).unwrap();
    assert_eq!(inf.state, TrialState::Complete);
    assert_eq!(inf.value(), Some(f64::INFINITY));
    let t = s.ask().unwrap();
    let wrong = s.tell(t, vec![1.0, 2.0]).unwrap();
    assert_eq!(
        wrong.state,
        TrialState::Fail,
        "two values for one objective"
    );
}

#[test]
fn optimize_finds_the_minimum_and_best_trial_agrees() {
    let s = study();
    s.optimize(quadratic, Optimize::trials(200)).unwrap();
    assert_eq!(s.trials().unwrap().len(), 200);
    let best = s.best_trial().unwrap();
    assert!(best.value().unwrap() < 0.01);
    let min = s
        .trials()
        .unwrap()
        .iter()
        .filter_map(|t| t.value())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best.value(), Some(min));
    assert_eq!(s.best_value().unwrap(), min);
    assert!(s.best_params().unwrap().contains_key("x"));
}

#[test]
fn conditional_parameters_are_per_trial() {
    let s = study();
    s.optimize(
        |t: &mut Trial| -> Result<f64, TrialError> {
            let model: &str = t.suggest_categorical("model", &["svm", "tree"])?;
            Ok(match model {
                "svm" => t.suggest_float_log("c", 1e-3, 1e3)?,
                _ => t.suggest_int("depth", 1, 10)? as f64,
            })
        },
        Optimize::trials(40),
    )
    .unwrap();
    for t in s.trials().unwrap() {
        let svm = t.params["model"].as_str() == Some("svm");
        assert_eq!(t.params.contains_key("c"), svm);
        assert_eq!(t.params.contains_key("depth"), !svm);
    }
}

#[test]
fn enqueued_parameters_come_first_and_the_rest_is_sampled() {
    let s = study();
    s.enqueue_trial([("x", 0.5)]).unwrap();
    s.enqueue_trial([("x", 9.0)]).unwrap();
    let calls = AtomicU64::new(0);
    let result = s.optimize(
        |t: &mut Trial| -> Result<f64, TrialError> {
            calls.fetch_add(1, Ordering::SeqCst);
            let x = t.suggest_float("x", -5.0, 5.0)?;
            let y = t.suggest_float("y", 0.0, 1.0)?;
            Ok(x + y)
        },
        Optimize::trials(3).catch(Catch::Everything),
    );
    result.unwrap();
    let trials = s.trials().unwrap();
    assert_eq!(trials[0].params["x"], ParamValue::Float(0.5));
    assert!(trials[0].params.contains_key("y"));
    assert_eq!(trials[1].state, TrialState::Fail, "9.0 is outside [-5, 5]");
    assert!(trials[1]
        .fail_reason
        .as_deref()
        .unwrap()
        .contains("outside"));
    assert_eq!(trials.len(), 3);
}

#[test]
fn uncaught_errors_stop_the_study_caught_ones_do_not() {
    let failing = |t: &mut Trial| -> Result<f64, TrialError> {
        let x = t.suggest_float("x", 0.0, 1.0)?;
        if t.number() % 2 == 1 {
            return Err(std::io::Error::other("disk full").into());
        }
        Ok(x)
    };
    let s = study();
    let err = s.optimize(failing, Optimize::trials(10)).unwrap_err();
    assert!(
        matches!(err, Error::ObjectiveFailed { number: 1, .. }),
        "{err}"
    );
    let trials = s.trials().unwrap();
    assert_eq!(trials.len(), 2, "the study stops at the first failure");
    assert_eq!(trials[1].state, TrialState::Fail);
    assert_eq!(trials[1].fail_reason.as_deref(), Some("disk full"));

    let s = study();
    let only_io = Catch::If(Arc::new(|e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<std::io::Error>().is_some()
    }));
    s.optimize(failing, Optimize::trials(10).catch(only_io))
        .unwrap();
    assert_eq!(s.trials_in(&[TrialState::Fail]).unwrap().len(), 5);
    assert_eq!(s.trials_in(&[TrialState::Complete]).unwrap().len(), 5);
}

#[test]
fn a_panic_is_recorded_as_fail() {
    let s = study();
    let err = s
        .optimize(
            |_t: &mut Trial| -> Result<f64, TrialError> { panic!("exploded") },
            Optimize::trials(3),
        )
        .unwrap_err();
    assert!(err.to_string().contains("exploded"), "{err}");
    let t = &s.trials().unwrap()[0];
    assert_eq!(t.state, TrialState::Fail);
    assert!(t
        .fail_reason
        .as_deref()
        .unwrap()
        .contains("panicked: exploded"));
    // Caught panics let the study go on.
    let s = study();
    s.optimize(
        |_t: &mut Trial| -> Result<f64, TrialError> { panic!("exploded") },
        Optimize::trials(3).catch(Catch::Everything),
    )
    .unwrap();
    assert_eq!(s.trials_in(&[TrialState::Fail]).unwrap().len(), 3);
    assert!(s.trials_in(&[TrialState::Running]).unwrap().is_empty());
}

#[test]
fn callbacks_see_every_trial_and_can_stop_the_study() {
    let s = study();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    s.optimize(
        quadratic,
        Optimize::trials(100).callback(move |study, t| {
            seen2.fetch_add(1, Ordering::SeqCst);
            if t.number == 9 {
                study.stop();
            }
        }),
    )
    .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 10);
    assert_eq!(s.trials().unwrap().len(), 10);
    // stop() only ends that call.
    s.optimize(quadratic, Optimize::trials(5)).unwrap();
    assert_eq!(s.trials().unwrap().len(), 15);
}

#[test]
fn timeout_stops_starting_trials() {
    let s = study();
    let start = std::time::Instant::now();
    s.optimize(
        |t: &mut Trial| -> Result<f64, TrialError> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            quadratic(t)
        },
        Optimize::unbounded().timeout(std::time::Duration::from_millis(150)),
    )
    .unwrap();
    let n = s.trials().unwrap().len();
    assert!((3..=9).contains(&n), "{n} trials in 150 ms of 20 ms trials");
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn max_trials_is_exact_across_threads_and_calls() {
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    let make = || {
        Study::builder()
            .name("capped")
            .storage(storage.clone())
            .max_trials(37)
            .load_if_exists(true)
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            a.optimize(quadratic, Optimize::trials(100).jobs(4))
                .unwrap()
        });
        scope.spawn(|| {
            b.optimize(quadratic, Optimize::trials(100).jobs(4))
                .unwrap()
        });
    });
    assert_eq!(a.trials().unwrap().len(), 37);
    assert!(a.trials_in(&[TrialState::Running]).unwrap().is_empty());
}

#[test]
fn parallel_jobs_finish_every_trial() {
    let s = study();
    s.optimize(quadratic, Optimize::trials(64).jobs(4)).unwrap();
    let trials = s.trials().unwrap();
    assert_eq!(trials.len(), 64);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
}

#[test]
fn same_seed_same_trials_on_one_thread() {
    let run = |seed| {
        let s = Study::builder().seed(seed).build().unwrap();
        s.optimize(quadratic, Optimize::trials(20)).unwrap();
        s.trials()
            .unwrap()
            .iter()
            .map(|t| t.params["x"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn reopening_uses_the_stored_configuration_and_rejects_conflicts() {
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    let created = Study::builder()
        .name("s")
        .storage(storage.clone())
        .direction(Direction::Maximize)
        .sampler(SamplerSpec::Qmc {
            kind: crate::sampler::QmcKind::Halton,
            scramble: true,
        })
        .pruner(PrunerSpec::Nop)
        .build()
        .unwrap();
    let loaded = Study::load(storage.clone(), "s").unwrap();
    assert_eq!(
        loaded.config(),
        created.config(),
        "seed, sampler and pruner stored"
    );
    assert_eq!(loaded.directions(), &[Direction::Maximize]);
    assert_eq!(loaded.config().version, env!("CARGO_PKG_VERSION"));

    let dup = Study::builder().name("s").storage(storage.clone()).build();
    assert!(matches!(dup, Err(Error::DuplicateStudy(_))));
    let conflict = Study::builder()
        .name("s")
        .storage(storage.clone())
        .sampler(SamplerSpec::Random)
        .load_if_exists(true)
        .build()
        .unwrap_err();
    let msg = conflict.to_string();
    assert!(msg.contains("sampler") && msg.contains("halton"), "{msg}");
    let seed_conflict = Study::builder()
        .name("s")
        .storage(storage.clone())
        .seed(created.seed().wrapping_add(1))
        .load_if_exists(true)
        .build()
        .unwrap_err();
    assert!(seed_conflict
        .to_string()
        .contains(&created.seed().to_string()));
    assert!(matches!(
        Study::load(storage, "missing"),
        Err(Error::StudyNotFound(_))
    ));
}

#[test]
fn constraints_decide_the_best_trial() {
    let s = study();
    let mut t = s.ask().unwrap();
    t.set_constraint("memory", 2.0).unwrap();
    t.set_constraint("memory", -1.0).unwrap(); // ignored: written once
    s.tell(t, 0.1).unwrap();
    assert!(matches!(s.best_trial(), Err(Error::NoCompletedTrial(m)) if m.contains("constraints")));
    let mut t = s.ask().unwrap();
    t.set_constraint("memory", 0.0).unwrap();
    s.tell(t, 0.5).unwrap();
    let best = s.best_trial().unwrap();
    assert_eq!(best.number, 1, "the infeasible better value does not count");
    assert!(best.is_feasible());
    let first = &s.trials().unwrap()[0];
    assert!((first.constraint_violation() - 2.0).abs() < 1e-12);
    let mut t = s.ask().unwrap();
    assert!(t.set_constraint("x", f64::NAN).is_err());
    s.tell_failed(t, "done").unwrap();
}

#[test]
fn pareto_front_for_two_objectives() {
    let s = Study::builder()
        .directions([Direction::Minimize, Direction::Maximize])
        .seed(2)
        .build()
        .unwrap();
    for (a, b) in [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (0.5, 0.5), (2.0, 3.0)] {
        let t = s.ask().unwrap();
        s.tell(t, [a, b]).unwrap();
    }
    let front: Vec<u64> = s.best_trials().unwrap().iter().map(|t| t.number).collect();
    assert_eq!(front, vec![0, 1, 3, 4]);
    assert!(matches!(s.best_trial(), Err(Error::Unsupported(_))));
    assert_eq!(
        s.pruner_spec(),
        &PrunerSpec::Nop,
        "multi-objective studies default to no pruning"
    );
}

#[test]
fn pruned_trials_keep_their_last_intermediate_value() {
    let s = Study::builder()
        .seed(3)
        .pruner(PrunerSpec::Median {
            n_startup_trials: 3,
            n_warmup_steps: 2,
            interval_steps: 1,
            n_min_trials: 1,
        })
        .build()
        .unwrap();
    // Learning curves: loss = level / (step + 1); trials with a high level are pruned.
    s.optimize(
        |t: &mut Trial| -> Result<f64, TrialError> {
            let level = t.suggest_float("level", 1.0, 10.0)?;
            let mut loss = level;
            for step in 0..10 {
                loss = level / (step + 1) as f64;
                t.report(step, loss)?;
                if t.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
            Ok(loss)
        },
        Optimize::trials(40),
    )
    .unwrap();
    let pruned = s.trials_in(&[TrialState::Pruned]).unwrap();
    assert!(pruned.len() >= 10, "only {} pruned", pruned.len());
    for t in &pruned {
        let last = t.last_step().unwrap();
        assert!(last >= 2, "no pruning during warm-up");
        assert_eq!(t.value(), t.intermediate(last));
    }
    // Pruned trials were the worse ones: their level exceeds the best completed level.
    let best_level = s.best_params().unwrap()["level"].as_f64().unwrap();
    assert!(pruned
        .iter()
        .all(|t| t.params["level"].as_f64().unwrap() > best_level));
}

#[test]
fn reports_per_objective_and_duplicate_steps() {
    let s = Study::builder()
        .directions([Direction::Minimize, Direction::Minimize])
        .build()
        .unwrap();
    let mut t = s.ask().unwrap();
    t.report_values(0, &[1.0, 2.0]).unwrap();
    t.report_values(0, &[5.0, 5.0]).unwrap(); // ignored
    assert!(t.report(1, 1.0).is_err(), "one value for two objectives");
    let done = s.tell_pruned(t).unwrap();
    assert_eq!(done.intermediate_values[&0], vec![1.0, 2.0]);
    assert_eq!(done.values, Some(vec![1.0, 2.0]));
}

#[test]
fn add_trial_validates_and_warm_starts() {
    let s = study();
    let x: crate::Distribution = FloatDistribution::uniform(0.0, 1.0).unwrap().into();
    let good = FrozenTrial::completed(
        [("x".to_owned(), x.clone(), ParamValue::Float(0.3))],
        vec![0.2],
    );
    s.add_trial(&good).unwrap();
    let outside = FrozenTrial::completed(
        [("x".to_owned(), x.clone(), ParamValue::Float(3.0))],
        vec![0.2],
    );
    assert!(matches!(
        s.add_trial(&outside),
        Err(Error::ValueOutOfDistribution { .. })
    ));
    let nan = FrozenTrial::completed(
        [("x".to_owned(), x, ParamValue::Float(0.3))],
        vec![f64::NAN],
    );
    assert!(s.add_trial(&nan).is_err());
    let mut running = good.clone();
    running.state = TrialState::Running;
    running.values = None;
    assert!(s.add_trial(&running).is_err());
    assert_eq!(s.best_value().unwrap(), 0.2);
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Study>();
    assert_send_sync::<InMemoryStorage>();
    assert_send_sync::<Arc<dyn crate::Sampler>>();
    assert_send_sync::<Arc<dyn crate::Pruner>>();
}

#[test]
fn trials_are_told_by_number_from_elsewhere() {
    let s = study();
    let mut a = s.ask().unwrap();
    a.suggest_float("x", 0.0, 1.0).unwrap();
    a.report(3, 0.25).unwrap();
    let b = s.ask().unwrap();
    let (na, nb) = (a.number(), b.number());
    // The live trials are dropped: another process tells them by number.
    drop((a, b));
    let pruned = s.tell_number_pruned(na).unwrap();
    assert_eq!(pruned.state, TrialState::Pruned);
    assert_eq!(
        pruned.values,
        Some(vec![0.25]),
        "the last report is the value"
    );
    let failed = s.tell_number_failed(nb, "out of memory").unwrap();
    assert_eq!(failed.state, TrialState::Fail);
    assert_eq!(failed.fail_reason.as_deref(), Some("out of memory"));
    let again = s.tell_number_failed(na, "late").unwrap_err();
    assert!(matches!(again, Error::TrialFinished { .. }), "{again}");
    assert!(matches!(
        s.tell_number_pruned(99).unwrap_err(),
        Error::TrialNotFound(_)
    ));
}
