//! Many worker processes on one study, through the Study API, as on a cluster.
//!
//! Each test re-runs this test binary as 8 child processes (the `child` test, selected by
//! environment variables), so every child is an ordinary program that opens its own
//! `PostgresStorage` and runs `Study::optimize` on the shared study.

mod common;

use ferrotune::{
    FrozenTrial, Optimize, ParamValue, PrunerSpec, SamplerSpec, Storage, Study, Trial, TrialError,
    TrialState,
};
use ferrotune_postgres::{PostgresOptions, PostgresStorage};
use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;

const ROLE: &str = "FERROTUNE_PG_CHILD_ROLE";
const SCHEMA: &str = "FERROTUNE_PG_CHILD_SCHEMA";
const WORKERS: usize = 8;
const PER_WORKER: u64 = 200;
const STEPS: u64 = 3;
const STUDY: &str = "shared";
const SEED: u64 = 7;

fn storage(url: &str, schema: &str) -> Arc<PostgresStorage> {
    Arc::new(
        PostgresStorage::connect_with(url, PostgresOptions::default().schema(schema))
            .expect("connect"),
    )
}

/// A pruner that reads the whole history at every report (it needs more completed trials
/// than the study will ever have, so it never prunes).
fn reading_pruner() -> PrunerSpec {
    PrunerSpec::Median {
        n_startup_trials: 1_000_000,
        n_warmup_steps: 0,
        interval_steps: 1,
        n_min_trials: 1,
    }
}

fn grid() -> BTreeMap<String, Vec<ParamValue>> {
    let mut g = BTreeMap::new();
    g.insert("x".to_owned(), (0..20).map(ParamValue::Int).collect());
    g.insert(
        "kind".to_owned(),
        vec![
            ParamValue::from("a"),
            ParamValue::from("b"),
            ParamValue::from("c"),
        ],
    );
    g
}

const CAP: u64 = 37;

/// The child: runs its share of the study given by the role, printing `ran <number>` for
/// every trial its objective evaluated, then `done`.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // End the harness's "test child ... " line, so every line below starts with its tag.
    println!();
    let url = std::env::var(common::URL_VAR).expect("url");
    let schema = std::env::var(SCHEMA).expect("schema");
    let storage = storage(&url, &schema);
    let builder = Study::builder()
        .name(STUDY)
        .storage(storage)
        .load_if_exists(true)
        .seed(SEED);
    let result = match role.as_str() {
        "random" => {
            let study = builder
                .sampler(SamplerSpec::Random)
                .pruner(reading_pruner())
                .build()
                .expect("study");
            study.optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    let x = t.suggest_float("x", 0.0, 1.0)?;
                    let k = t.suggest_int("k", 0, 9)?;
                    for step in 0..STEPS {
                        t.report(step, x + step as f64)?;
                        if t.should_prune()? {
                            return Err(TrialError::Pruned);
                        }
                    }
                    println!("ran {}", t.number());
                    Ok(x + k as f64)
                },
                Optimize::trials(PER_WORKER).handle_ctrl_c(false),
            )
        }
        "grid" => {
            let study = builder
                .sampler(SamplerSpec::Grid { grid: grid() })
                .pruner(PrunerSpec::Nop)
                .build()
                .expect("study");
            study.optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    let x = t.suggest_int("x", 0, 19)?;
                    let kind: &str = t.suggest_categorical("kind", &["a", "b", "c"])?;
                    println!("ran {}", t.number());
                    Ok(x as f64 + kind.len() as f64)
                },
                Optimize::unbounded().handle_ctrl_c(false),
            )
        }
        "capped" => {
            let study = builder
                .sampler(SamplerSpec::Random)
                .pruner(PrunerSpec::Nop)
                .max_trials(CAP)
                .build()
                .expect("study");
            study.optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    let x = t.suggest_float("x", 0.0, 1.0)?;
                    t.report(0, x)?;
                    println!("ran {}", t.number());
                    Ok(x)
                },
                Optimize::unbounded().handle_ctrl_c(false),
            )
        }
        other => panic!("unknown role {other}"),
    };
    // A grid that is used up, or a cap that is reached, may stop a worker's last ask.
    match result {
        Ok(()) | Err(ferrotune::Error::Stopped(_)) => println!("done"),
        Err(e) => panic!("optimize failed: {e}"),
    }
}

/// Runs `WORKERS` children with `role` on a fresh schema at once; returns the schema and
/// every trial number the children evaluated.
fn run_children(schemas: &common::Schemas, url: &str, role: &str) -> (String, Vec<u64>) {
    let schema = schemas.fresh();
    // Create the tables once up front so the children race on the study, not the schema.
    drop(storage(url, &schema));
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
                .env(ROLE, role)
                .env(SCHEMA, &schema)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let mut ran = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.lines().any(|l| l == "done"),
            "child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        ran.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("ran "))
                .map(|n| n.parse::<u64>().expect("number")),
        );
    }
    ran.sort_unstable();
    (schema, ran)
}

/// Asserts that `got` is exactly `0..n`, naming the first differences (not the whole lists).
fn assert_exactly_0_to(got: &[u64], n: u64, what: &str) {
    let mut counts = vec![0u32; n as usize];
    let mut outside = Vec::new();
    for &x in got {
        match counts.get_mut(x as usize) {
            Some(c) => *c += 1,
            None => outside.push(x),
        }
    }
    let missing: Vec<u64> = (0..n)
        .filter(|&i| counts[i as usize] == 0)
        .take(20)
        .collect();
    let twice: Vec<u64> = (0..n)
        .filter(|&i| counts[i as usize] > 1)
        .take(20)
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && outside.is_empty(),
        "{what}: expected 0..{n} exactly once each; got {} entries; missing {missing:?}, \
         repeated {twice:?}, outside {outside:?} (first 20 of each)",
        got.len()
    );
}

fn numbers(trials: &[Arc<FrozenTrial>]) -> Vec<u64> {
    trials.iter().map(|t| t.number).collect()
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

#[test]
fn eight_processes_share_one_random_study() {
    let Some(url) = common::url("eight_processes_share_one_random_study") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let (schema, ran) = run_children(&schemas, &url, "random");
    let n = WORKERS as u64 * PER_WORKER;
    assert_exactly_0_to(&ran, n, "trial numbers evaluated by the processes");

    let storage = storage(&url, &schema);
    let study = Study::load(storage.clone(), STUDY).expect("load");
    let trials = study.trials().expect("trials");
    assert_exactly_0_to(&numbers(&trials), n, "stored trial numbers");
    let mut ids = HashSet::new();
    for t in &trials {
        assert!(ids.insert(t.id), "trial id {:?} twice", t.id);
        assert_eq!(t.state, TrialState::Complete, "trial {}", t.number);
        assert!(t.datetime_complete.is_some() && t.datetime_start.is_some());
        let x = t.params["x"].as_f64().expect("x");
        let k = t.params["k"].as_i64().expect("k");
        let values = t.values.as_deref().expect("values");
        assert!(
            values.len() == 1 && same(values[0], x + k as f64),
            "trial {}",
            t.number
        );
        assert_eq!(
            t.intermediate_values.len() as u64,
            STEPS,
            "trial {}",
            t.number
        );
        for step in 0..STEPS {
            let v = t.intermediate(step).expect("intermediate value");
            assert!(same(v, x + step as f64), "trial {} step {step}", t.number);
        }
        assert_eq!(t.fail_reason, None);
    }
    // Nothing was finished twice: the finishing compare-and-set bumps the study's finish
    // sequence once per finished trial.
    let seq: i64 = schemas
        .client()
        .query_one(
            &format!("SELECT finish_seq FROM \"{schema}\".ferrotune_studies WHERE name = $1"),
            &[&STUDY],
        )
        .expect("finish_seq")
        .get(0);
    assert_eq!(seq, n as i64, "one finish per trial");
    // A cold read by another storage agrees with this warm one.
    let cold = Study::load(self::storage(&url, &schema), STUDY)
        .expect("load")
        .trials()
        .expect("trials");
    assert_eq!(cold, trials);
    assert_eq!(
        storage
            .n_trials(study.id(), Some(&[TrialState::Complete]))
            .expect("n"),
        n
    );
}

#[test]
fn eight_processes_never_evaluate_a_grid_point_twice() {
    let Some(url) = common::url("eight_processes_never_evaluate_a_grid_point_twice") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let (schema, ran) = run_children(&schemas, &url, "grid");
    let points: usize = grid().values().map(Vec::len).product();
    let study = Study::load(storage(&url, &schema), STUDY).expect("load");
    let trials = study.trials().expect("trials");
    let complete: Vec<_> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let mut seen = HashSet::new();
    for t in &complete {
        let point = (t.params["x"].clone(), t.params["kind"].clone());
        assert!(
            seen.insert(format!("{point:?}")),
            "grid point {point:?} evaluated twice (trial {})",
            t.number
        );
    }
    assert_eq!(complete.len(), points, "every grid point evaluated once");
    assert_eq!(ran.len(), points, "children evaluated {} trials", ran.len());
    // Trials started while the last points were handed out fail with the grid's reason.
    for t in trials.iter().filter(|t| t.state != TrialState::Complete) {
        assert_eq!(t.state, TrialState::Fail, "trial {}", t.number);
    }
    assert_exactly_0_to(
        &numbers(&trials),
        trials.len() as u64,
        "stored trial numbers",
    );
}

#[test]
fn eight_processes_stop_at_exactly_max_trials() {
    let Some(url) = common::url("eight_processes_stop_at_exactly_max_trials") else {
        return;
    };
    let schemas = common::Schemas::new(&url);
    let (schema, ran) = run_children(&schemas, &url, "capped");
    assert_exactly_0_to(&ran, CAP, "trial numbers evaluated by the processes");
    let study = Study::load(storage(&url, &schema), STUDY).expect("load");
    let trials = study.trials().expect("trials");
    assert_exactly_0_to(&numbers(&trials), CAP, "stored trial numbers");
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
}
