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
    /// The noise-free value at `params` (the mean over a tabular benchmark's seeds, the
    /// underlying function of a noisy one), or `None` for a noiseless problem. Regret is
    /// measured on it for the incumbent, so a sampler that re-evaluates good points until
    /// one draw is lucky gains nothing.
    fn expected(&self, _params: &Params) -> Option<f64> {
        None
    }
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
    fn expected(&self, params: &Params) -> Option<f64> {
        Some(self.base.evaluate(params, 0))
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

/// Why [`find_problems`] could not resolve or load a problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindError {
    /// The name is no problem or group.
    #[error("unknown problem `{name}`; the problems are {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every known name and group, comma-separated.
        known: String,
    },
    /// A tabular problem was asked for without a data folder.
    #[error(
        "problem `{name}` needs the benchmark data: pass `--data DIR` or set {} to the folder \
         holding `tabular/`",
        crate::tabular::DATA_ENV
    )]
    NoData {
        /// The problem that needs it.
        name: String,
    },
    /// A tabular problem failed to load.
    #[error(transparent)]
    Tabular(#[from] crate::tabular::TabularError),
    /// The digits problem's cache could not be opened.
    #[error(transparent)]
    Digits(#[from] crate::ml::MlError),
}

/// The known optima of the problems named in a results file, for the report: the synthetic
/// suite's always, the tabular problems' (the best configuration's mean loss) when
/// `data_dir` is given — only the tables named are loaded. Without it the tabular problems
/// are reported by their best value instead of their regret.
pub fn known_optima<'a>(
    names: impl IntoIterator<Item = &'a str>,
    data_dir: Option<&std::path::Path>,
) -> Result<crate::report::Optima, FindError> {
    let mut problems = suite();
    if let Some(dir) = data_dir {
        let mut tabular: Vec<&str> = names
            .into_iter()
            .filter(|n| crate::tabular::tabular_names().iter().any(|t| t == n))
            .collect();
        tabular.sort_unstable();
        tabular.dedup();
        for p in crate::tabular::load_tabular(dir, &tabular)? {
            problems.push(Box::new(p));
        }
    }
    Ok(crate::report::optima(&problems))
}

/// The group names [`find_problems`] knows besides the problems' own names.
fn groups() -> Vec<&'static str> {
    std::iter::once(crate::tabular::ALL_GROUP)
        .chain(crate::tabular::FAMILIES.iter().map(|f| f.name))
        .collect()
}

/// Resolves problem names, in the order given and without repeats, over every kind of
/// problem: the [`suite`] (the default when `names` is empty), `digits`
/// ([`crate::ml::DigitsProblem`], cached in `cache` when given) and the tabular benchmarks
/// ([`crate::tabular`], read from `data_dir`), including the groups `tabular` (all fifteen),
/// `hpolib`, `hpobench` and `nasbench201`. Only the tables named are decompressed.
pub fn find_problems(
    names: &[String],
    data_dir: Option<&std::path::Path>,
    cache: Option<&std::path::Path>,
) -> Result<Vec<Box<dyn Problem>>, FindError> {
    if names.iter().all(|n| n.trim().is_empty()) {
        return Ok(suite());
    }
    enum Slot {
        Ready(Box<dyn Problem>),
        Tabular(String),
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut synthetic: Vec<Option<Box<dyn Problem>>> = suite().into_iter().map(Some).collect();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if let Some(tabular) = crate::tabular::expand_tabular(name) {
            for t in tabular {
                if seen.insert(t.clone()) {
                    slots.push(Slot::Tabular(t));
                }
            }
        } else if !seen.insert(name.to_owned()) {
            continue;
        } else if name == crate::ml::DIGITS_NAME {
            slots.push(Slot::Ready(Box::new(crate::ml::DigitsProblem::new(cache)?)));
        } else if let Some(p) = synthetic
            .iter_mut()
            .find(|p| p.as_ref().is_some_and(|p| p.name() == name))
            .and_then(Option::take)
        {
            slots.push(Slot::Ready(p));
        } else {
            let mut known: Vec<String> = suite().iter().map(|p| p.name()).collect();
            known.push(crate::ml::DIGITS_NAME.to_owned());
            known.extend(crate::tabular::tabular_names());
            known.extend(groups().into_iter().map(|g| format!("{g} (group)")));
            return Err(FindError::Unknown {
                name: name.to_owned(),
                known: known.join(", "),
            });
        }
    }
    let wanted: Vec<&str> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Tabular(n) => Some(n.as_str()),
            Slot::Ready(_) => None,
        })
        .collect();
    let mut tables = match (wanted.first(), data_dir) {
        (None, _) => Vec::new(),
        (Some(first), None) => {
            return Err(FindError::NoData {
                name: (*first).to_owned(),
            })
        }
        (Some(_), Some(dir)) => crate::tabular::load_tabular(dir, &wanted)?,
    }
    .into_iter();
    Ok(slots
        .into_iter()
        .filter_map(|s| match s {
            Slot::Ready(p) => Some(p),
            Slot::Tabular(_) => tables.next().map(|t| Box::new(t) as Box<dyn Problem>),
        })
        .collect())
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

    #[test]
    fn names_resolve_in_order_without_repeats_and_unknown_ones_list_the_known() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let all = find_problems(&[], None, None).unwrap();
        assert_eq!(all.len(), suite().len());
        let some = find_problems(&names(&["mixed", " branin", "mixed", ""]), None, None).unwrap();
        let got: Vec<String> = some.iter().map(|p| p.name()).collect();
        assert_eq!(got, ["mixed", "branin"]);

        let message = |v: &[&str]| match find_problems(&names(v), None, None) {
            Ok(_) => panic!("{v:?} resolved"),
            Err(e) => e.to_string(),
        };
        let msg = message(&["brannin"]);
        for known in ["branin", "digits", "hpobench/kc1", "nasbench201 (group)"] {
            assert!(msg.contains(known), "{msg}");
        }
        let msg = message(&["branin", "hpolib"]);
        assert!(
            msg.contains("hpolib/naval_propulsion")
                && msg.contains("--data DIR")
                && msg.contains("FERROTUNE_BENCH_DATA"),
            "{msg}"
        );
    }
}
