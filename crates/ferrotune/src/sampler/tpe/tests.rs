#![allow(clippy::float_cmp)]

use super::*;
use crate::sampler::conformance::{self, study};
use crate::sampler::SamplerSpec;
use crate::study::{Optimize, Study};
use crate::trial::Trial;
use crate::TrialError;

fn tpe() -> SamplerSpec {
    SamplerSpec::tpe(TpeConfig::default())
}

fn univariate() -> SamplerSpec {
    SamplerSpec::tpe(TpeConfig {
        multivariate: false,
        ..TpeConfig::default()
    })
}

#[test]
fn passes_the_sampler_suite_multivariate() {
    conformance::run_all(tpe);
}

#[test]
fn passes_the_sampler_suite_univariate() {
    conformance::run_all(univariate);
}

#[test]
fn gamma_and_weights() {
    assert_eq!(gamma(0), 0);
    assert_eq!(gamma(1), 1);
    assert_eq!(gamma(10), 1);
    assert_eq!(gamma(11), 2);
    assert_eq!(gamma(100), 10);
    assert_eq!(gamma(1000), 25);
    assert_eq!(default_weights(3), vec![1.0; 3]);
    assert_eq!(default_weights(25), vec![1.0; 25]);
    let w = default_weights(26);
    assert_eq!(w.len(), 26);
    assert!((w[0] - 1.0 / 26.0).abs() < 1e-15);
    let w = default_weights(30);
    assert_eq!(w.len(), 30);
    // linspace(1/30, 1, 5) then 25 ones.
    for (i, &x) in w[..5].iter().enumerate() {
        let want = 1.0 / 30.0 + (1.0 - 1.0 / 30.0) * i as f64 / 4.0;
        assert!((x - want).abs() < 1e-15);
    }
    assert!(w[5..].iter().all(|&x| x == 1.0));
}

#[test]
fn config_is_validated_and_spec_round_trips() {
    assert!(TpeSampler::new(TpeConfig {
        n_ei_candidates: 0,
        ..TpeConfig::default()
    })
    .is_err());
    assert!(TpeSampler::new(TpeConfig {
        prior_weight: -1.0,
        ..TpeConfig::default()
    })
    .is_err());
    let spec: SamplerSpec = serde_json::from_str(r#"{"type": "tpe"}"#).unwrap();
    assert_eq!(spec, tpe());
    assert_eq!(spec.name(), "tpe");
    let spec: SamplerSpec =
        serde_json::from_str(r#"{"type": "tpe", "multivariate": false}"#).unwrap();
    assert_eq!(spec, univariate());
    let back: SamplerSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    assert!(serde_json::from_str::<SamplerSpec>(r#"{"type": "tpe", "bogus": 1}"#).is_err());
}

fn branin(trial: &mut Trial<'_>) -> Result<f64, TrialError> {
    let x1 = trial.suggest_float("x1", -5.0, 10.0)?;
    let x2 = trial.suggest_float("x2", 0.0, 15.0)?;
    let pi = std::f64::consts::PI;
    let (b, c) = (5.1 / (4.0 * pi * pi), 5.0 / pi);
    let t = 1.0 / (8.0 * pi);
    Ok((x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0)
}

fn hartmann6(trial: &mut Trial<'_>) -> Result<f64, TrialError> {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    let mut x = [0.0; 6];
    for (j, xj) in x.iter_mut().enumerate() {
        *xj = trial.suggest_float(&format!("x{j}"), 0.0, 1.0)?;
    }
    let mut y = 0.0;
    for i in 0..4 {
        let e: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
        y -= ALPHA[i] * (-e).exp();
    }
    Ok(y)
}

fn median_best(
    spec: &SamplerSpec,
    objective: fn(&mut Trial<'_>) -> Result<f64, TrialError>,
) -> f64 {
    let mut bests: Vec<f64> = (0..9)
        .map(|seed| {
            let s = study(spec.clone(), 100 + seed);
            s.optimize(objective, Optimize::trials(100)).unwrap();
            s.best_value().unwrap()
        })
        .collect();
    bests.sort_by(f64::total_cmp);
    bests[4]
}

#[test]
fn beats_random_search_on_branin_and_hartmann6() {
    for (name, f) in [
        (
            "branin",
            branin as fn(&mut Trial<'_>) -> Result<f64, TrialError>,
        ),
        ("hartmann6", hartmann6),
    ] {
        let random = median_best(&SamplerSpec::Random, f);
        for spec in [tpe(), univariate()] {
            let t = median_best(&spec, f);
            eprintln!("{name}: {spec:?} median best {t:.5} vs random {random:.5}");
            assert!(t < random, "{name}: TPE {t} vs random {random}");
        }
    }
}

#[test]
fn same_seed_same_proposals() {
    let run = |seed| {
        let s = study(tpe(), seed);
        s.optimize(branin, Optimize::trials(25)).unwrap();
        s.trials()
            .unwrap()
            .iter()
            .map(|t| t.params.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn infinite_values_are_ranked_not_fatal() {
    for spec in [tpe(), univariate()] {
        let s = study(spec, 9);
        s.optimize(
            |t: &mut Trial<'_>| -> Result<f64, TrialError> {
                let x = t.suggest_float("x", -1.0, 1.0)?;
                Ok(if x < -0.5 {
                    f64::NEG_INFINITY
                } else if x > 0.5 {
                    f64::INFINITY
                } else {
                    x
                })
            },
            Optimize::trials(40),
        )
        .unwrap();
        assert_eq!(s.best_value().unwrap(), f64::NEG_INFINITY);
        assert_eq!(s.trials().unwrap().len(), 40);
    }
}

/// The next proposal of `spec` after 15 complete trials and 12 trials at x near 0.9, which
/// are Pruned (with an intermediate value) or, when `pruned` is false, Failed.
fn next_after_history(spec: SamplerSpec, pruned: bool) -> f64 {
    let dist: Distribution = crate::FloatDistribution::uniform(0.0, 1.0)
        .expect("valid")
        .into();
    let point = |x: f64| vec![("x".to_owned(), dist.clone(), crate::ParamValue::Float(x))];
    let s = study(spec, 3);
    for i in 0..15 {
        let x = f64::from(i) / 14.0;
        s.add_trial(&FrozenTrial::completed(point(x), vec![(x - 0.3).powi(2)]))
            .expect("added");
    }
    for i in 0..12 {
        let mut t = FrozenTrial::completed(point(0.85 + 0.01 * f64::from(i)), vec![0.0]);
        t.values = None;
        if pruned {
            t.state = TrialState::Pruned;
            t.intermediate_values.insert(1, vec![0.5]);
        } else {
            t.state = TrialState::Fail;
        }
        s.add_trial(&t).expect("added");
    }
    let mut trial = s.ask().expect("asked");
    trial.suggest_float("x", 0.0, 1.0).expect("suggested")
}

#[test]
fn pruned_trials_join_the_model_unless_left_out() {
    // By default (Optuna's rule) pruned trials join the model (here: the bad group).
    assert_ne!(
        next_after_history(tpe(), true).to_bits(),
        next_after_history(tpe(), false).to_bits()
    );
    // Left out, a pruned trial counts as much as a failed one: not at all.
    let complete_only = || {
        SamplerSpec::tpe(TpeConfig {
            consider_pruned_trials: false,
            ..TpeConfig::default()
        })
    };
    assert_eq!(
        next_after_history(complete_only(), true).to_bits(),
        next_after_history(complete_only(), false).to_bits()
    );
}

#[test]
fn split_ranks_infinities_and_pruned_and_running() {
    let mk = |number, state, value: Option<f64>| {
        let mut t = FrozenTrial::new_running(crate::trial::TrialId(number), number);
        t.state = state;
        t.values = value.map(|v| vec![v]);
        t
    };
    let mut p = mk(5, TrialState::Pruned, None);
    p.intermediate_values.insert(3, vec![-100.0]);
    let trials = [
        mk(0, TrialState::Complete, Some(f64::INFINITY)),
        mk(1, TrialState::Complete, Some(f64::NEG_INFINITY)),
        mk(2, TrialState::Complete, Some(2.0)),
        mk(3, TrialState::Running, None),
        mk(4, TrialState::Complete, Some(1.0)),
        p,
    ];
    let refs: Vec<&FrozenTrial> = trials.iter().collect();
    let num = |v: &[&FrozenTrial]| v.iter().map(|t| t.number).collect::<Vec<_>>();
    let (below, above) = split(&refs, 2, &[Direction::Minimize]);
    assert_eq!(num(&below), vec![1, 4]);
    assert_eq!(num(&above), vec![0, 2, 3, 5]);
    // Maximizing: +∞ is best; then the pruned trial comes after every complete one.
    let (below, _) = split(&refs, 5, &[Direction::Maximize]);
    assert_eq!(num(&below), vec![0, 1, 2, 4, 5]);
}

#[test]
fn multi_objective_split_takes_whole_fronts_then_the_largest_hypervolume() {
    let mk = |number, values: [f64; 2]| {
        let mut t = FrozenTrial::new_running(crate::trial::TrialId(number), number);
        t.state = TrialState::Complete;
        t.values = Some(values.to_vec());
        t
    };
    // Minimize × maximize. Losses: (1, -4) (2, -2) (3, -3) (4, -1) (5, -5) (6, -0.5):
    // front 0 = {0, 4} ((5,-5) is not dominated: best second loss), front 1 = {2}, …
    let trials = [
        mk(0, [1.0, 4.0]),
        mk(1, [2.0, 2.0]),
        mk(2, [3.0, 3.0]),
        mk(3, [4.0, 1.0]),
        mk(4, [5.0, 5.0]),
        mk(5, [6.0, 0.5]),
    ];
    let refs: Vec<&FrozenTrial> = trials.iter().collect();
    let num = |v: &[&FrozenTrial]| v.iter().map(|t| t.number).collect::<Vec<_>>();
    let dirs = [Direction::Minimize, Direction::Maximize];
    let (below, above) = split(&refs, 2, &dirs);
    assert_eq!(num(&below), vec![0, 4]);
    assert_eq!(num(&above), vec![1, 2, 3, 5]);
    // Three: front 0, then one of front 1 = {1 (2,-2), 2 (3,-3)}: within that rank the
    // reference is (max(3.3, 2.7), max(-2.2, -1.8)) = (3.3, -1.8); (3,-3) dominates
    // 0.3·1.2 = 0.36, (2,-2) dominates 1.3·0.2 = 0.26.
    let (below, _) = split(&refs, 3, &dirs);
    assert_eq!(num(&below), vec![0, 2, 4]);
}

/// The hypervolume of a study's Pareto front (two objectives, both minimized).
fn front_hypervolume(s: &Study, reference: [f64; 2]) -> f64 {
    let front = s.best_trials().unwrap();
    let points: Vec<Vec<f64>> = front.iter().map(|t| t.values.clone().unwrap()).collect();
    let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
    crate::pareto::hypervolume(&refs, &reference)
}

/// ZDT1 in 5 dimensions (Zitzler, Deb & Thiele 2000): a convex front at g = 1.
fn zdt1(trial: &mut Trial<'_>) -> Result<Vec<f64>, TrialError> {
    let x: Vec<f64> = (0..5)
        .map(|i| trial.suggest_float(&format!("x{i}"), 0.0, 1.0))
        .collect::<crate::Result<_>>()?;
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / 4.0;
    let f2 = g * (1.0 - (x[0] / g).sqrt());
    Ok(vec![x[0], f2])
}

#[test]
fn motpe_beats_random_search_on_zdt1() {
    let median_hv = |spec: &SamplerSpec| {
        let mut hv: Vec<f64> = (0..5)
            .map(|seed| {
                let s = Study::builder()
                    .directions(vec![Direction::Minimize, Direction::Minimize])
                    .sampler(spec.clone())
                    .pruner(crate::pruner::PrunerSpec::Nop)
                    .seed(200 + seed)
                    .build()
                    .unwrap();
                s.optimize(zdt1, Optimize::trials(120)).unwrap();
                front_hypervolume(&s, [1.1, 11.0])
            })
            .collect();
        hv.sort_by(f64::total_cmp);
        hv[2]
    };
    let random = median_hv(&SamplerSpec::Random);
    for spec in [tpe(), univariate()] {
        let motpe = median_hv(&spec);
        eprintln!("zdt1 hypervolume: {spec:?} {motpe:.4} vs random {random:.4}");
        assert!(motpe > random, "MOTPE {motpe} vs random {random}");
    }
}

/// With the constant liar, a second parallel ask moves away from the Running trial's point.
#[test]
fn constant_liar_spreads_parallel_asks() {
    let mean_gap = |liar: bool| {
        let mut total = 0.0;
        for seed in 0..12 {
            let s = study(
                SamplerSpec::tpe(TpeConfig {
                    constant_liar: liar,
                    ..TpeConfig::default()
                }),
                seed,
            );
            s.optimize(
                |t: &mut Trial<'_>| -> Result<f64, TrialError> {
                    let x = t.suggest_float("x", -10.0, 10.0)?;
                    Ok((x - 1.0).powi(2))
                },
                Optimize::trials(30),
            )
            .unwrap();
            let mut a = s.ask().unwrap();
            let xa = a.suggest_float("x", -10.0, 10.0).unwrap();
            let mut b = s.ask().unwrap();
            let xb = b.suggest_float("x", -10.0, 10.0).unwrap();
            total += (xa - xb).abs();
        }
        total / 12.0
    };
    let (with, without) = (mean_gap(true), mean_gap(false));
    eprintln!("mean gap with liar {with:.4}, without {without:.4}");
    assert!(with > without, "liar {with} vs none {without}");
}

/// Two branches: `a` has two coupled parameters (a valley along y = x, minimum 0 at (1, 1)),
/// `b` one (minimum 2).
fn two_branches(trial: &mut Trial<'_>) -> Result<f64, TrialError> {
    let branch: &str = trial.suggest_categorical("branch", &["a", "b"])?;
    Ok(if branch == "a" {
        let x = trial.suggest_float("x", -5.0, 5.0)?;
        let y = trial.suggest_float("y", -5.0, 5.0)?;
        (x - 1.0).powi(2) + (y - x).powi(2)
    } else {
        let z = trial.suggest_float("z", 0.0, 10.0)?;
        (z - 3.0).powi(2) + 2.0
    })
}

#[test]
fn groups_follow_co_occurrence() {
    let s = study(SamplerSpec::Random, 4);
    s.optimize(two_branches, Optimize::trials(30)).unwrap();
    let view = s.view();
    let mut cache = Cache::default();
    let finished = view
        .trials_in(&[TrialState::Complete, TrialState::Pruned])
        .unwrap();
    let groups: Vec<Vec<String>> = cache
        .groups(view.study_id(), finished)
        .into_iter()
        .map(|g| g.into_keys().collect())
        .collect();
    let mut sorted = groups.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            vec!["branch".to_owned()],
            vec!["x".to_owned(), "y".to_owned()],
            vec!["z".to_owned()]
        ],
        "{groups:?}"
    );
}

#[test]
fn grouped_tpe_beats_random_on_a_conditional_space() {
    let grouped = SamplerSpec::tpe(TpeConfig {
        group: true,
        ..TpeConfig::default()
    });
    assert!(TpeSampler::new(TpeConfig {
        group: true,
        multivariate: false,
        ..TpeConfig::default()
    })
    .is_err());
    let random = median_best(&SamplerSpec::Random, two_branches);
    let t = median_best(&grouped, two_branches);
    eprintln!("two branches: grouped TPE {t:.5} vs random {random:.5}");
    assert!(t < random, "grouped TPE {t} vs random {random}");
    // Same seed, same proposals.
    let run = |seed| {
        let s = study(grouped.clone(), seed);
        s.optimize(two_branches, Optimize::trials(30)).unwrap();
        s.trials()
            .unwrap()
            .iter()
            .map(|t| t.params.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
}
