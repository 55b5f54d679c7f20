//! The sampler test suite: bounds, determinism and conditional spaces, run by every sampler.
//! Samplers outside this crate enable the `conformance` feature and call [`run_all`].
//!
//! The suite's objective suggests these parameters, so a grid under test must list them:
//! `x` float [-5, 5], `lr` log float [1e-5, 1], `q` float [0, 1] step 0.25, `k` int [1, 10],
//! `n` log int [1, 1000], `m` int [0, 20] step 5, `opt` categorical ["adam", "sgd", "rmsprop"],
//! then `momentum` float [0, 0.99] only when `opt` is "sgd" and `beta` int [1, 3] otherwise.

use crate::objective::TrialError;
use crate::sampler::SamplerSpec;
use crate::space::{Distribution, FloatDistribution, IntDistribution, ParamValue};
use crate::study::{Optimize, Study};
use crate::trial::{Trial, TrialState};
use std::collections::BTreeMap;

/// Runs every check with studies built from `spec`.
pub fn run_all(spec: impl Fn() -> SamplerSpec) {
    every_value_is_inside_its_distribution(spec());
    same_seed_gives_same_trials(spec());
    conditional_parameters_appear_only_in_their_branch(spec());
}

/// The suite's objective: every kind of distribution plus a conditional branch.
pub fn suite_objective(trial: &mut Trial<'_>) -> Result<f64, TrialError> {
    let x = trial.suggest_float("x", -5.0, 5.0)?;
    let lr = trial.suggest_float_log("lr", 1e-5, 1.0)?;
    let q = trial.suggest("q", FloatDistribution::stepped(0.0, 1.0, 0.25)?)?;
    let k = trial.suggest_int("k", 1, 10)?;
    let n = trial.suggest_int_log("n", 1, 1000)?;
    let m = trial.suggest("m", IntDistribution::new(0, 20, false, 5)?)?;
    let opt: &str = trial.suggest_categorical("opt", &["adam", "sgd", "rmsprop"])?;
    let branch = if opt == "sgd" {
        trial.suggest_float("momentum", 0.0, 0.99)?
    } else {
        trial.suggest_int("beta", 1, 3)? as f64
    };
    Ok(x * x + lr.ln().abs() + q + k as f64 + (n as f64).ln() + m as f64 + branch)
}

/// A grid over the suite's parameters, for testing grid samplers with this suite.
pub fn suite_grid() -> BTreeMap<String, Vec<ParamValue>> {
    let mut g = BTreeMap::new();
    let f = |v: &[f64]| v.iter().map(|&x| ParamValue::Float(x)).collect::<Vec<_>>();
    let i = |v: &[i64]| v.iter().map(|&x| ParamValue::Int(x)).collect::<Vec<_>>();
    g.insert("x".into(), f(&[-5.0, 0.0, 5.0]));
    g.insert("lr".into(), f(&[1e-5, 1e-2]));
    g.insert("q".into(), f(&[0.0, 0.75]));
    g.insert("k".into(), i(&[1, 10]));
    g.insert("n".into(), i(&[1, 1000]));
    g.insert("m".into(), i(&[0, 20]));
    g.insert(
        "opt".into(),
        vec!["adam".into(), "sgd".into(), "rmsprop".into()],
    );
    g.insert("momentum".into(), f(&[0.0, 0.9]));
    g.insert("beta".into(), i(&[1, 3]));
    g
}

/// A single-objective in-memory study with `spec`, no pruner, and `seed`.
pub(crate) fn study(spec: SamplerSpec, seed: u64) -> Study {
    Study::builder()
        .sampler(spec)
        .pruner(crate::pruner::PrunerSpec::Nop)
        .seed(seed)
        .build()
        .expect("build study")
}

/// Every stored value lies inside its distribution and on its grid.
pub fn every_value_is_inside_its_distribution(spec: SamplerSpec) {
    let s = study(spec, 7);
    s.optimize(suite_objective, Optimize::trials(60))
        .expect("optimize");
    let trials = s.trials().expect("trials");
    assert!(!trials.is_empty());
    for t in trials.iter().filter(|t| t.state == TrialState::Complete) {
        for p in t.params.as_slice() {
            let (name, value, dist): (_, _, &Distribution) =
                (p.name(), p.value(), p.distribution());
            let internal = dist
                .to_internal(value)
                .unwrap_or_else(|e| panic!("trial {} `{name}`: {e}", t.number));
            assert!(dist.contains(internal), "`{name}` = {value} outside {dist}");
        }
    }
}

/// Two studies with one seed propose the same parameters; another seed proposes others.
pub fn same_seed_gives_same_trials(spec: SamplerSpec) {
    let run = |seed| {
        let s = study(spec.clone(), seed);
        s.optimize(suite_objective, Optimize::trials(30))
            .expect("optimize");
        s.trials()
            .expect("trials")
            .iter()
            .map(|t| t.params.clone())
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(11), run(11), run(12));
    assert_eq!(a, b, "same seed must give the same trials");
    assert_ne!(a, c, "another seed should give other trials");
}

/// A parameter suggested only in one branch is recorded only in that branch's trials.
pub fn conditional_parameters_appear_only_in_their_branch(spec: SamplerSpec) {
    let s = study(spec, 3);
    s.optimize(suite_objective, Optimize::trials(60))
        .expect("optimize");
    let mut branches = (0, 0);
    for t in s.trials().expect("trials").iter() {
        let sgd = t.params.get("opt") == Some(&ParamValue::from("sgd"));
        assert_eq!(t.params.contains_key("momentum"), sgd, "trial {}", t.number);
        assert_eq!(t.params.contains_key("beta"), !sgd, "trial {}", t.number);
        if sgd {
            branches.0 += 1;
        } else {
            branches.1 += 1;
        }
    }
    assert!(
        branches.0 > 0 && branches.1 > 0,
        "both branches explored: {branches:?}"
    );
}
