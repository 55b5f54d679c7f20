//! End-to-end tests of scheduled studies: real checkpoints on disk, the scheduler's state in
//! storage, several threads, and a study stopped and reopened halfway.

use crate::schedule::checkpoint::ScratchDir;
use crate::schedule::{Rounding, SchedulerSpec};
use crate::storage::InMemoryStorage;
use crate::study::{Optimize, Study, CHECKPOINT_ATTR, CHECKPOINT_REFS_ATTR};
use crate::trial::{Trial, TrialState};
use crate::{SamplerSpec, TrialError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A toy training run with state: `x` is the parameter, the model's "weights" are the
/// steps trained so far and a running sum. The loss at step `t` is `(x − 0.3)² + 1/t`, so
/// the final ranking is the early one (successive halving's assumption) and a resumed trial
/// proves it loaded its checkpoint by continuing the sum.
fn toy(trial: &mut Trial<'_>, max_step: u64, epochs: &AtomicU64) -> Result<f64, TrialError> {
    let x = trial.suggest_float("x", 0.0, 1.0)?;
    let (mut trained, mut sum) = match trial.resume_from() {
        Some(c) => {
            let bytes = c.read_bytes()?;
            let state: (u64, f64) = serde_json::from_slice(&bytes)?;
            if state.0 != c.step() {
                return Err(TrialError::fail("checkpoint of the wrong step"));
            }
            state
        }
        None => (0, 0.0),
    };
    if trained + 1 != trial.first_step() {
        return Err(TrialError::fail("first_step disagrees with the checkpoint"));
    }
    let mut loss = f64::NAN;
    while trained < max_step {
        trained += 1;
        epochs.fetch_add(1, Ordering::Relaxed);
        loss = (x - 0.3).powi(2) + 1.0 / trained as f64;
        sum += loss;
        let state = (trained, sum);
        trial.report_scheduled(trained, loss, |w| {
            w.write_bytes(&serde_json::to_vec(&state).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())
        })?;
    }
    Ok(loss)
}

fn study(spec: SchedulerSpec, dir: &ScratchDir, storage: Arc<InMemoryStorage>) -> Study {
    Study::builder()
        .name("toy")
        .storage(storage)
        .sampler(SamplerSpec::Random)
        .scheduler(spec)
        .checkpoint_dir(dir.path())
        .seed(7)
        .load_if_exists(true)
        .build()
        .expect("study")
}

fn asha() -> SchedulerSpec {
    SchedulerSpec::Asha {
        min_resource: 1,
        max_resource: 9,
        eta: 3,
    }
}

/// Every trial's reports are the steps 1..=last without gaps: a resumed trial continued
/// where it paused.
fn assert_contiguous(study: &Study) {
    for t in study.trials().unwrap() {
        let steps: Vec<u64> = t.intermediate_values.keys().copied().collect();
        let expected: Vec<u64> = (1..=steps.len() as u64).collect();
        assert_eq!(steps, expected, "trial #{} reported {steps:?}", t.number);
    }
}

#[test]
fn asha_pauses_promotes_and_resumes_from_checkpoints_on_four_threads() {
    let dir = ScratchDir::new("asha");
    let s = study(asha(), &dir, Arc::new(InMemoryStorage::new()));
    let epochs = AtomicU64::new(0);
    s.optimize(
        |t: &mut Trial<'_>| toy(t, 9, &epochs),
        Optimize::trials(40).jobs(4),
    )
    .unwrap();
    let trials = s.trials().unwrap();
    let count = |state| trials.iter().filter(|t| t.state == state).count();
    assert_eq!(trials.len(), 40, "only new configurations count");
    assert_eq!(count(TrialState::Running), 0);
    assert_eq!(count(TrialState::Fail), 0);
    assert!(
        count(TrialState::Complete) >= 2,
        "some trials reached 9 steps"
    );
    assert!(count(TrialState::Paused) >= 20, "most wait at a rung");
    assert_contiguous(&s);
    // Every Paused trial has its checkpoint on disk and holds a reference on it.
    let stored = s
        .storage()
        .study_system_attr(s.id(), CHECKPOINT_REFS_ATTR)
        .unwrap()
        .unwrap();
    let refs: crate::schedule::checkpoint::CheckpointRefs =
        serde_json::from_str(stored.as_str().unwrap()).unwrap();
    for t in trials.iter().filter(|t| t.state == TrialState::Paused) {
        let id: crate::schedule::CheckpointId =
            serde_json::from_value(t.system_attrs[CHECKPOINT_ATTR].clone()).unwrap();
        assert_eq!(refs.refs(id), 1, "trial #{}", t.number);
        assert!(s.inner().checkpoints.as_ref().unwrap().0.exists(id));
    }
    // Pausing saved compute: far fewer epochs than 40 full runs.
    let spent = epochs.load(Ordering::Relaxed);
    assert!(spent < 40 * 9 / 2, "{spent} epochs");
    // The best trial is a completed one, near x = 0.3.
    let best = s.best_trial().unwrap();
    assert!((best.params["x"].as_f64().unwrap() - 0.3).abs() < 0.2);
}

#[test]
fn synchronous_successive_halving_keeps_the_top_third_of_each_rung() {
    let dir = ScratchDir::new("sha");
    let spec = SchedulerSpec::SuccessiveHalving {
        n_configs: 9,
        min_resource: 1,
        max_resource: 9,
        eta: 3,
        max_concurrent_brackets: 1,
    };
    for jobs in [1, 3] {
        let s = Study::builder()
            .name(format!("sha-{jobs}"))
            .sampler(SamplerSpec::Random)
            .scheduler(spec.clone())
            .checkpoint_dir(dir.path())
            .seed(3)
            .build()
            .unwrap();
        let epochs = AtomicU64::new(0);
        s.optimize(
            |t: &mut Trial<'_>| toy(t, 9, &epochs),
            Optimize::trials(9).jobs(jobs),
        )
        .unwrap();
        let trials = s.trials().unwrap();
        let last_steps: Vec<u64> = trials.iter().map(|t| t.last_step().unwrap_or(0)).collect();
        let at = |k: u64| last_steps.iter().filter(|&&s| s == k).count();
        // The paper's bracket: 9 at r=1, 3 at r=3, 1 at r=9.
        assert_eq!(
            (at(1), at(3), at(9)),
            (6, 2, 1),
            "{jobs} jobs: {last_steps:?}"
        );
        assert_eq!(epochs.load(Ordering::Relaxed), 9 + 3 * 2 + 6);
        let complete: Vec<_> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        assert_eq!(complete.len(), 1);
        // The survivor is the best of the first rung (the toy's ranking never changes).
        let best_first = trials
            .iter()
            .min_by(|a, b| a.intermediate(1).partial_cmp(&b.intermediate(1)).unwrap())
            .unwrap();
        assert_eq!(complete[0].number, best_first.number);
        assert!(trials
            .iter()
            .all(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)));
        assert_contiguous(&s);
    }
}

#[test]
fn hyperband_runs_the_papers_brackets_and_bohb_uses_its_model() {
    let dir = ScratchDir::new("hb");
    let spec = SchedulerSpec::Hyperband {
        min_resource: 1,
        max_resource: 9,
        eta: 3,
        rounding: Rounding::Ceil,
        max_concurrent_brackets: 1,
    };
    let s = Study::builder()
        .sampler(SamplerSpec::Random)
        .scheduler(spec)
        .checkpoint_dir(dir.path())
        .seed(5)
        .build()
        .unwrap();
    let epochs = AtomicU64::new(0);
    // Brackets for R = 9, η = 3: s = 2 (9 configs), s = 1 (5 configs), s = 0 (3 configs).
    s.optimize(
        |t: &mut Trial<'_>| toy(t, 9, &epochs),
        Optimize::trials(17).jobs(2),
    )
    .unwrap();
    let mut per_bracket: BTreeMap<u64, usize> = BTreeMap::new();
    for t in s.trials().unwrap() {
        let b = t.system_attrs[super::BRACKET_ATTR].as_u64().unwrap();
        *per_bracket.entry(b).or_default() += 1;
        assert!(t.state.is_finished(), "#{} is {}", t.number, t.state);
    }
    assert_eq!(per_bracket, BTreeMap::from([(0, 3), (1, 5), (2, 9)]));
    assert_contiguous(&s);

    let bohb = Study::builder()
        .scheduler(SchedulerSpec::Bohb {
            min_resource: 1,
            max_resource: 9,
            eta: 3,
            max_concurrent_brackets: 1,
        })
        .checkpoint_dir(dir.path())
        .seed(5)
        .build()
        .unwrap();
    assert_eq!(bohb.sampler_spec().name(), "bohb");
    bohb.optimize(|t: &mut Trial<'_>| toy(t, 9, &epochs), Optimize::trials(17))
        .unwrap();
    assert_eq!(bohb.trials().unwrap().len(), 17);
    let wrong = Study::builder()
        .sampler(SamplerSpec::Random)
        .scheduler(SchedulerSpec::Bohb {
            min_resource: 1,
            max_resource: 9,
            eta: 3,
            max_concurrent_brackets: 1,
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("bohb"), "{wrong}");
}

#[test]
fn overlapping_hyperband_brackets_run_through_storage_on_three_threads() {
    let dir = ScratchDir::new("hb-overlap");
    let spec = SchedulerSpec::Hyperband {
        min_resource: 1,
        max_resource: 9,
        eta: 3,
        rounding: Rounding::Ceil,
        max_concurrent_brackets: 3,
    };
    let s = study(spec, &dir, Arc::new(InMemoryStorage::new()));
    let epochs = AtomicU64::new(0);
    s.optimize(
        |t: &mut Trial<'_>| toy(t, 9, &epochs),
        Optimize::trials(17).jobs(3),
    )
    .unwrap();
    // Brackets open in the plan's order and hand out their configurations in turn: s = 2
    // (9), s = 1 (5), s = 0 (3) — unless the s = 2 bracket finished early and a new one
    // (s = 2 again) gave the 17th start while the s = 0 bracket's last start was in flight.
    let mut per_bracket: BTreeMap<u64, usize> = BTreeMap::new();
    for t in s.trials().unwrap() {
        let b = t.system_attrs[super::BRACKET_ATTR].as_u64().unwrap();
        *per_bracket.entry(b).or_default() += 1;
        assert!(t.state.is_finished(), "#{} is {}", t.number, t.state);
    }
    assert_eq!(per_bracket.values().sum::<usize>(), 17, "{per_bracket:?}");
    assert_eq!(per_bracket.get(&1), Some(&5), "{per_bracket:?}");
    assert!(per_bracket.get(&2) >= Some(&9), "{per_bracket:?}");
    assert_contiguous(&s);
    let stored = s
        .storage()
        .study_system_attr(s.id(), super::SCHEDULER_STATE_ATTR)
        .unwrap()
        .unwrap();
    let text = stored.as_str().unwrap();
    assert!(text.contains("\"max_concurrent_brackets\":3"), "{text}");
    let state: super::SchedulerState = serde_json::from_str(text).unwrap();
    let super::SchedulerState::Hyperband(hb) = state else {
        panic!("{text}");
    };
    assert_eq!(hb.max_concurrent_brackets(), 3);
    assert!(hb.running_brackets().len() <= 3, "{text}");
    assert!(hb.brackets_completed() >= 2, "{text}");
}

/// The schedule as data: each trial's parameters, state and reported steps.
fn schedule_of(study: &Study) -> Vec<(u64, String, TrialState, Vec<u64>)> {
    study
        .trials()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t.number,
                format!("{:?}", t.params["x"]),
                t.state,
                t.intermediate_values.keys().copied().collect(),
            )
        })
        .collect()
}

#[test]
fn a_study_stopped_halfway_and_reopened_continues_the_same_schedule() {
    let epochs = AtomicU64::new(0);
    for spec in [
        asha(),
        SchedulerSpec::Hyperband {
            min_resource: 1,
            max_resource: 9,
            eta: 3,
            rounding: Rounding::Ceil,
            max_concurrent_brackets: 1,
        },
    ] {
        let whole_dir = ScratchDir::new("whole");
        let whole = study(spec.clone(), &whole_dir, Arc::new(InMemoryStorage::new()));
        whole
            .optimize(|t: &mut Trial<'_>| toy(t, 9, &epochs), Optimize::trials(20))
            .unwrap();

        let storage = Arc::new(InMemoryStorage::new());
        let dir = ScratchDir::new("restart");
        let first = study(spec.clone(), &dir, storage.clone());
        // Stop after a few trials ended (paused or not): the process "dies" here.
        first
            .optimize(|t: &mut Trial<'_>| toy(t, 9, &epochs), Optimize::trials(8))
            .unwrap();
        drop(first);
        let second = Study::load(storage.clone(), "toy").unwrap();
        second
            .optimize(|t: &mut Trial<'_>| toy(t, 9, &epochs), Optimize::trials(12))
            .unwrap();
        assert_eq!(schedule_of(&second), schedule_of(&whole), "{spec:?}");
    }
}

#[test]
fn a_scheduled_study_refuses_a_pruner_and_several_objectives() {
    let err = Study::builder()
        .scheduler(asha())
        .pruner(crate::PrunerSpec::median())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("remove the pruner"), "{err}");
    let err = Study::builder()
        .scheduler(asha())
        .directions([crate::Direction::Minimize, crate::Direction::Minimize])
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("one objective"), "{err}");
}

/// Jaderberg et al. (2017), section 4.1's toy problem: maximize `Q(θ) = 1.2 − (θ₀² + θ₁²)`
/// from `θ = (0.9, 0.9)` by gradient ascent (learning rate 0.01) on the surrogate
/// `Q̂(θ|h) = 1.2 − (h₀θ₀² + h₁θ₁²)`; `h` are the hyperparameters, `θ` the model in the
/// checkpoint.
fn quadratic(trial: &mut Trial<'_>, max_step: u64) -> Result<f64, TrialError> {
    let h = [
        trial.suggest_float("h0", 0.0, 1.0)?,
        trial.suggest_float("h1", 0.0, 1.0)?,
    ];
    let mut theta: [f64; 2] = match trial.resume_from() {
        Some(c) => serde_json::from_slice(&c.read_bytes()?)?,
        None => [0.9, 0.9],
    };
    let mut q = f64::NAN;
    for step in trial.first_step()..=max_step {
        for i in 0..2 {
            theta[i] -= 0.01 * 2.0 * h[i] * theta[i];
        }
        q = 1.2 - (theta[0].powi(2) + theta[1].powi(2));
        let bytes = serde_json::to_vec(&theta)?;
        trial.report_scheduled(step, q, |w| w.write_bytes(&bytes))?;
    }
    Ok(q)
}

fn population_study(spec: SchedulerSpec, dir: &ScratchDir, seed: u64) -> Study {
    Study::builder()
        .direction(crate::Direction::Maximize)
        .sampler(SamplerSpec::Random)
        .scheduler(spec)
        .checkpoint_dir(dir.path())
        .seed(seed)
        .build()
        .unwrap()
}

fn pbt(population_size: usize) -> SchedulerSpec {
    SchedulerSpec::Pbt {
        population_size,
        interval: 4,
        max_step: 40,
        config: Default::default(),
    }
}

/// The best of `n` fixed configurations run for the whole 40 steps: random search with the
/// same compute as a population of `n`.
fn random_search_best(n: u64, seed: u64) -> f64 {
    let s = Study::builder()
        .direction(crate::Direction::Maximize)
        .sampler(SamplerSpec::Random)
        .pruner(crate::PrunerSpec::Nop)
        .seed(seed)
        .build()
        .unwrap();
    s.optimize(|t: &mut Trial<'_>| quadratic(t, 40), Optimize::trials(n))
        .unwrap();
    s.best_value().unwrap()
}

#[test]
fn pbt_members_exploit_each_other_and_the_lineage_links_them() {
    for jobs in [1, 4] {
        let dir = ScratchDir::new("pbt");
        let s = population_study(pbt(8), &dir, 11);
        s.optimize(
            |t: &mut Trial<'_>| quadratic(t, 40),
            Optimize::unbounded().jobs(jobs),
        )
        .unwrap();
        let trials = s.trials().unwrap();
        let complete: Vec<_> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        assert_eq!(
            complete.len(),
            8,
            "{jobs} jobs: one complete member per slot"
        );
        assert!(trials.len() > 8, "{jobs} jobs: members were replaced");
        for t in &trials {
            assert!(
                matches!(t.state, TrialState::Complete | TrialState::Pruned),
                "#{} is {}",
                t.number,
                t.state
            );
            if t.state == TrialState::Pruned {
                assert!(t.system_attrs.contains_key(super::REPLACED_BY_ATTR));
            }
        }
        let best = s.best_trial().unwrap();
        let lineage = s.lineage(best.number).unwrap();
        assert_eq!(lineage[0].0.number, best.number);
        // Each link continues its parent's model from a step the parent reached.
        for pair in lineage.windows(2) {
            let (child, from) = (&pair[0].0, pair[0].1.unwrap());
            let parent = &pair[1].0;
            assert_eq!(
                child.system_attrs[super::PARENT_ATTR].as_u64(),
                Some(parent.number)
            );
            assert!(parent.intermediate(from).is_some());
            assert_eq!(child.intermediate_values.keys().next(), Some(&(from + 1)));
        }
        assert_eq!(
            lineage.last().unwrap().1,
            None,
            "the first member starts fresh"
        );
        // Only a bounded number of checkpoints is left on disk.
        let left = walk(s.inner().checkpoints.as_ref().unwrap().0.root());
        assert!(
            left <= 8 + crate::study::DEFAULT_KEEP_CHECKPOINTS,
            "{left} left"
        );
    }
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| std::fs::read_dir(e.path()).map_or(0, |d| d.count()))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn pbt_and_pb2_match_or_beat_the_best_fixed_configuration_with_the_same_compute() {
    let pb2 = |population_size| SchedulerSpec::Pb2 {
        population_size,
        interval: 4,
        max_step: 40,
        config: Default::default(),
        pb2: Default::default(),
    };
    let (mut pbt_wins, mut pb2_wins) = (0, 0);
    let seeds = 0..6u64;
    for seed in seeds.clone() {
        let fixed = random_search_best(4, seed);
        for (spec, wins) in [(pbt(4), &mut pbt_wins), (pb2(4), &mut pb2_wins)] {
            let dir = ScratchDir::new("pbt-vs-random");
            let s = population_study(spec, &dir, seed);
            s.optimize(|t: &mut Trial<'_>| quadratic(t, 40), Optimize::unbounded())
                .unwrap();
            if s.best_value().unwrap() >= fixed {
                *wins += 1;
            }
        }
    }
    assert!(
        pbt_wins >= 5,
        "PBT matched random search in {pbt_wins} of 6 seeds"
    );
    assert!(
        pb2_wins >= 5,
        "PB2 matched random search in {pb2_wins} of 6 seeds"
    );
}

#[test]
fn a_damaged_scheduler_state_is_a_clear_error() {
    let dir = ScratchDir::new("damaged");
    let storage = Arc::new(InMemoryStorage::new());
    let s = study(asha(), &dir, storage.clone());
    use crate::Storage as _;
    storage
        .set_study_system_attr(
            s.id(),
            super::SCHEDULER_STATE_ATTR,
            &serde_json::Value::String("{\"asha\": 3".into()),
        )
        .unwrap();
    let err = s.try_ask().err().expect("an error").to_string();
    assert!(
        err.contains("ferrotune:scheduler") && err.contains("backup"),
        "{err}"
    );
}

/// A worker that reserved a start, created its trial and died before registering it: once
/// the trial is reaped it takes the reserved start and fails there, and the synchronous rung
/// completes instead of waiting for it forever.
#[test]
fn a_start_reserved_by_a_dead_worker_does_not_block_a_synchronous_rung() {
    let dir = ScratchDir::new("dead-start");
    let spec = SchedulerSpec::SuccessiveHalving {
        n_configs: 3,
        min_resource: 1,
        max_resource: 3,
        eta: 3,
        max_concurrent_brackets: 1,
    };
    let s = study(spec, &dir, Arc::new(InMemoryStorage::new()));
    // The dead worker: a start reserved and a trial created, never registered.
    let work = s.with_scheduler(|st| st.next_work()).unwrap();
    assert!(matches!(work, crate::schedule::Work::Start { .. }));
    let orphan = s.ask_plain(true).unwrap().frozen().clone();
    // Its trial is reaped (as heartbeats would) and reported to the scheduler.
    assert!(s
        .storage()
        .set_trial_state(
            orphan.id,
            TrialState::Running,
            TrialState::Fail,
            None,
            Some("dead")
        )
        .unwrap());
    let reaped = s.storage().trial(orphan.id).unwrap();
    s.scheduler_reaped(&[reaped]).unwrap();
    // The other two configurations fill the rung; the best goes on to step 3.
    let epochs = AtomicU64::new(0);
    // (A rung left waiting would make the loop wait; the timeout turns that into a failure.)
    s.optimize(
        |t: &mut Trial<'_>| toy(t, 3, &epochs),
        Optimize::trials(2).timeout(std::time::Duration::from_secs(20)),
    )
    .unwrap();
    let trials = s.trials().unwrap();
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t.state.is_finished()), "{trials:?}");
    assert_eq!(
        trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count(),
        1
    );
}
