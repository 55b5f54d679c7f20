//! The `Problem` trait every benchmark problem implements, and the problems beyond plain
//! float boxes: a mixed integer + categorical one, a conditional (tree-structured) one, and
//! a noisy variant of a synthetic function.

use crate::synthetic::Synthetic;
use ferrotune::rng::TrialRng;
use ferrotune::{Params, Trial};

/// A benchmark problem: it suggests its parameters through a trial (define-by-run, so
/// conditional spaces are natural), then evaluates the suggested point (minimization).
/// Suggesting and evaluating are separate so the harness can time ferrotune alone.
pub trait Problem: Send + Sync {
    /// The name used in records and reports.
    fn name(&self) -> String;
    /// Suggests every parameter the point needs.
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()>;
    /// The objective at the suggested point; `noise_seed` makes noisy problems repeatable.
    fn evaluate(&self, params: &Params, noise_seed: u64) -> f64;
    /// The known global minimum, when there is one.
    fn optimum(&self) -> Option<f64>;
}

fn coordinate(params: &Params, i: usize) -> f64 {
    params
        .get(&format!("x{i}"))
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN)
}

impl Problem for Synthetic {
    fn name(&self) -> String {
        self.name.to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        for (i, &(lo, hi)) in self.bounds.iter().enumerate() {
            trial.suggest_float(&format!("x{i}"), lo, hi)?;
        }
        Ok(())
    }
    fn evaluate(&self, params: &Params, _noise_seed: u64) -> f64 {
        let x: Vec<f64> = (0..self.dim()).map(|i| coordinate(params, i)).collect();
        (self.f)(&x)
    }
    fn optimum(&self) -> Option<f64> {
        Some(self.optimum)
    }
}

/// A synthetic function observed with additive Gaussian noise of standard deviation `sigma`
/// (regret is still reported against the noiseless optimum).
#[derive(Clone, Copy, Debug)]
pub struct Noisy {
    /// The underlying function.
    pub base: Synthetic,
    /// The noise's standard deviation.
    pub sigma: f64,
}

impl Problem for Noisy {
    fn name(&self) -> String {
        format!("{}_noisy", self.base.name)
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        self.base.suggest(trial)
    }
    fn evaluate(&self, params: &Params, noise_seed: u64) -> f64 {
        self.base.evaluate(params, noise_seed)
            + self.sigma * TrialRng::from_seed(noise_seed).normal()
    }
    fn optimum(&self) -> Option<f64> {
        Some(self.base.optimum)
    }
}

/// A mixed space: two integers, a stepped float and a categorical with one clearly best
/// choice. `f = (n − 7)² / 10 + (m − 3)² + (q − 0.75)² ·4 + penalty(kind)`, n ∈ [0, 20],
/// m ∈ [1, 8], q ∈ {0, 0.25, …, 1}, kind ∈ {a: 0, b: 0.5, c: 1, d: 2}; minimum 0 at
/// (7, 3, 0.75, a).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mixed;

impl Problem for Mixed {
    fn name(&self) -> String {
        "mixed".to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        trial.suggest_int("n", 0, 20)?;
        trial.suggest_int("m", 1, 8)?;
        trial.suggest("q", ferrotune::FloatDistribution::stepped(0.0, 1.0, 0.25)?)?;
        trial.suggest_categorical("kind", &["a", "b", "c", "d"])?;
        Ok(())
    }
    fn evaluate(&self, params: &Params, _noise_seed: u64) -> f64 {
        let get = |k: &str| params.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let penalty = match params.get("kind").and_then(|v| v.as_str()) {
            Some("a") => 0.0,
            Some("b") => 0.5,
            Some("c") => 1.0,
            _ => 2.0,
        };
        (get("n") - 7.0).powi(2) / 10.0
            + (get("m") - 3.0).powi(2)
            + (get("q") - 0.75).powi(2) * 4.0
            + penalty
    }
    fn optimum(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// A conditional (tree-structured) space in the shape of model selection: a categorical
/// `model` decides which parameters exist. `svm`: log-scaled `c` ∈ [1e-3, 1e3], loss
/// (log10 c − 1)² / 4; `tree`: integer `depth` ∈ [1, 20] and float `min_leaf` ∈ [0, 1], loss
/// 0.1 + (depth − 12)²/50 + min_leaf; `knn`: integer `k` ∈ [1, 50], loss 0.3 + |k − 10|/20.
/// Minimum 0 (svm with c = 10).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditional;

impl Problem for Conditional {
    fn name(&self) -> String {
        "conditional".to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        match trial.suggest_categorical("model", &["svm", "tree", "knn"])? {
            "svm" => {
                trial.suggest_float_log("c", 1e-3, 1e3)?;
            }
            "tree" => {
                trial.suggest_int("depth", 1, 20)?;
                trial.suggest_float("min_leaf", 0.0, 1.0)?;
            }
            _ => {
                trial.suggest_int("k", 1, 50)?;
            }
        }
        Ok(())
    }
    fn evaluate(&self, params: &Params, _noise_seed: u64) -> f64 {
        let get = |k: &str| params.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        match params.get("model").and_then(|v| v.as_str()) {
            Some("svm") => (get("c").log10() - 1.0).powi(2) / 4.0,
            Some("tree") => 0.1 + (get("depth") - 12.0).powi(2) / 50.0 + get("min_leaf"),
            _ => 0.3 + (get("k") - 10.0).abs() / 20.0,
        }
    }
    fn optimum(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// Every problem of the suite that needs no data files: the synthetic functions, a noisy
/// Hartmann-6, the mixed and the conditional problem.
pub fn suite() -> Vec<Box<dyn Problem>> {
    let mut all: Vec<Box<dyn Problem>> = crate::SYNTHETIC
        .iter()
        .map(|s| Box::new(*s) as Box<dyn Problem>)
        .collect();
    all.push(Box::new(Noisy {
        base: crate::synthetic::SYNTHETIC[2],
        sigma: 0.1,
    }));
    all.push(Box::new(Mixed));
    all.push(Box::new(Conditional));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{Optimize, SamplerSpec, Study, TrialError};

    fn best(problem: &dyn Problem, trials: u64) -> f64 {
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(1)
            .build()
            .unwrap();
        study
            .optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    problem.suggest(t)?;
                    Ok(problem.evaluate(&t.frozen().params, t.number()))
                },
                Optimize::trials(trials),
            )
            .unwrap();
        study.best_value().unwrap()
    }

    #[test]
    fn every_problem_is_above_its_optimum_and_random_search_gets_close() {
        for p in suite() {
            let b = best(p.as_ref(), 300);
            let opt = p.optimum().unwrap();
            let noise = if p.name().ends_with("noisy") {
                0.5
            } else {
                1e-9
            };
            assert!(b >= opt - noise, "{}: {b} below optimum {opt}", p.name());
            assert!(b.is_finite(), "{}", p.name());
        }
    }

    #[test]
    fn the_mixed_and_conditional_optima_are_reachable() {
        use ferrotune::{FloatDistribution, Param, ParamValue};
        let at = |pairs: Vec<Param>| pairs.into_iter().collect::<Params>();
        let mixed = at(vec![
            Param::new(
                "n",
                ferrotune::IntDistribution::range(0, 20).unwrap().into(),
                ParamValue::Int(7),
            ),
            Param::new(
                "m",
                ferrotune::IntDistribution::range(1, 8).unwrap().into(),
                ParamValue::Int(3),
            ),
            Param::new(
                "q",
                FloatDistribution::stepped(0.0, 1.0, 0.25).unwrap().into(),
                ParamValue::Float(0.75),
            ),
            Param::new(
                "kind",
                ferrotune::CategoricalDistribution::new(["a", "b", "c", "d"])
                    .unwrap()
                    .into(),
                "a".into(),
            ),
        ]);
        assert!(Mixed.evaluate(&mixed, 0).abs() < 1e-12);
        let svm = at(vec![
            Param::new(
                "model",
                ferrotune::CategoricalDistribution::new(["svm", "tree", "knn"])
                    .unwrap()
                    .into(),
                "svm".into(),
            ),
            Param::new(
                "c",
                FloatDistribution::log_uniform(1e-3, 1e3).unwrap().into(),
                ParamValue::Float(10.0),
            ),
        ]);
        assert!(Conditional.evaluate(&svm, 0).abs() < 1e-12);
    }

    #[test]
    fn noise_is_repeatable_per_seed() {
        let p = Noisy {
            base: crate::synthetic::SYNTHETIC[0],
            sigma: 1.0,
        };
        let params: Params = vec![
            ferrotune::Param::new("x0", float_domain(), ferrotune::ParamValue::Float(1.0)),
            ferrotune::Param::new("x1", float_domain(), ferrotune::ParamValue::Float(2.0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            p.evaluate(&params, 3).to_bits(),
            p.evaluate(&params, 3).to_bits()
        );
        assert_ne!(
            p.evaluate(&params, 3).to_bits(),
            p.evaluate(&params, 4).to_bits()
        );
    }

    fn float_domain() -> ferrotune::Distribution {
        ferrotune::FloatDistribution::uniform(-5.0, 15.0)
            .unwrap()
            .into()
    }
}
