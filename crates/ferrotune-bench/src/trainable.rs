//! Problems with training state, for pause-and-resume schedulers ([`crate::schedsim`]): a
//! trial is a training run that advances one step at a time, and that a scheduler can pause
//! (its state saved as bytes into a real checkpoint) and resume later — on another worker,
//! or, for Population Based Training, as a *child* trial that continues another trial's
//! state with new hyperparameters.
//!
//! - [`Stateless`] wraps any [`FidelityProblem`] (MFHartmann, the learning curves, Counting
//!   Ones…): its value is a pure function of the parameters and the step, so its
//!   checkpoint only holds the step and the noise seed — written and read through the real
//!   checkpoint files all the same, so the path is exercised.
//! - [`Quadratic`]: the toy example of Jaderberg et al., "Population based training of neural
//!   networks" (arXiv:1711.09846, 2017, Figure 2), whose state is the model `θ`.
//! - [`DigitsMlp`]: the examples crate's network trained on digits with real checkpoints
//!   (weights and momentum buffer, [`MlpState::to_bytes`]): the whole six-hyperparameter
//!   space as `digits_net`, or a fixed architecture whose optimizer settings a PBT child may
//!   change as `digits_pbt`.

use crate::digits_net::DigitsNet;
use crate::fidelity::{find_fidelity_problems, FidelityFindError, FidelityProblem, UnknownProblem};
use crate::harness::HarnessError;
use ferrotune::{Params, Trial};
use ferrotune_examples::digits::{
    epoch_cost, Dataset, MlpConfig, MlpState, MlpTrainer, LEARNING_RATE_RANGE, MOMENTUM_RANGE,
    WEIGHT_DECAY_RANGE,
};
use ferrotune_examples::jobs::{mlp_config_from_params, mlp_params, MLP_MAX_EPOCHS};
use std::path::Path;

/// A training run in progress: one trial's model.
pub trait TrainingRun {
    /// Trains one more step; the value after it (minimized).
    ///
    /// # Errors
    /// When the model cannot be evaluated.
    fn step(&mut self) -> Result<f64, HarnessError>;
    /// Steps trained so far (the checkpoint's step for a resumed run).
    fn steps(&self) -> u64;
    /// The state as bytes, for a checkpoint.
    fn save(&self) -> Vec<u8>;
}

/// How a population scheduler (PBT, PB2) runs a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Population {
    /// Members trained at once.
    pub size: usize,
    /// Steps between two exploit/explore decisions.
    pub interval: u64,
}

/// A problem whose trials are training runs that can be checkpointed and resumed.
pub trait Trainable: Send + Sync {
    /// The name used in records and reports.
    fn name(&self) -> String;
    /// Suggests every parameter (a resumed trial gets its stored values back).
    ///
    /// # Errors
    /// As the trial's suggestions.
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()>;
    /// The last step (full fidelity); steps run from 1 to it.
    fn max_steps(&self) -> u64;
    /// Simulated seconds that `step` takes at `params` (positive).
    fn cost(&self, params: &Params, step: u64) -> f64;
    /// Opens a training run at `params`: a fresh one seeded by `seed` when `checkpoint` is
    /// `None`, else the run saved in `checkpoint` (its step and bytes), continued with the
    /// hyperparameters of `params`.
    ///
    /// # Errors
    /// [`HarnessError::Schedule`] when the parameters or the checkpoint do not fit the
    /// problem.
    fn open<'a>(
        &'a self,
        params: &Params,
        seed: u64,
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Box<dyn TrainingRun + 'a>, HarnessError>;
    /// The first rung of the successive-halving schedulers: `max_steps / 27` (at least 1),
    /// so every plan has four rungs with η = 3 (three for fewer than 27 steps) and the most
    /// aggressive bracket starts 27 configurations.
    fn min_resource(&self) -> u64 {
        (self.max_steps() / 27).max(1)
    }
    /// PBT's and PB2's settings, for the problems they run on (those with training state
    /// whose hyperparameters may change on resume).
    fn population(&self) -> Option<Population> {
        None
    }
}

/// A [`HarnessError::Schedule`] for `problem`.
fn bad(problem: &str, reason: impl std::fmt::Display) -> HarnessError {
    HarnessError::Schedule(format!("{problem}: {reason}"))
}

/// Reads the little-endian `u64` at `at` of `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// Reads the little-endian `f64` at `at` of `bytes`.
fn f64_at(bytes: &[u8], at: usize) -> Option<f64> {
    u64_at(bytes, at).map(f64::from_bits)
}

/// A [`FidelityProblem`] as a [`Trainable`]: the value at a step is a pure function of the
/// parameters and the step, so the checkpoint holds `FTSTEP01`, the step and the noise
/// seed (little-endian `u64`s).
pub struct Stateless(pub Box<dyn FidelityProblem>);

/// The first bytes of a [`Stateless`] checkpoint.
const STEP_MAGIC: &[u8; 8] = b"FTSTEP01";

struct StatelessRun<'a> {
    problem: &'a dyn FidelityProblem,
    params: Params,
    noise_seed: u64,
    steps: u64,
}

impl TrainingRun for StatelessRun<'_> {
    fn step(&mut self) -> Result<f64, HarnessError> {
        self.steps += 1;
        Ok(self
            .problem
            .evaluate_at(&self.params, self.steps, self.noise_seed))
    }
    fn steps(&self) -> u64 {
        self.steps
    }
    fn save(&self) -> Vec<u8> {
        let mut out = STEP_MAGIC.to_vec();
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.noise_seed.to_le_bytes());
        out
    }
}

impl Trainable for Stateless {
    fn name(&self) -> String {
        self.0.name()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        self.0.suggest(trial)
    }
    fn max_steps(&self) -> u64 {
        self.0.max_steps()
    }
    fn cost(&self, params: &Params, step: u64) -> f64 {
        self.0.cost(params, step)
    }
    fn open<'a>(
        &'a self,
        params: &Params,
        seed: u64,
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Box<dyn TrainingRun + 'a>, HarnessError> {
        let (steps, noise_seed) = match checkpoint {
            None => (0, seed),
            Some((_, bytes)) => {
                let parsed = (bytes.len() == 24 && bytes.starts_with(STEP_MAGIC))
                    .then(|| Some((u64_at(bytes, 8)?, u64_at(bytes, 16)?)))
                    .flatten();
                parsed.ok_or_else(|| {
                    bad(
                        &self.name(),
                        format!("a {}-byte checkpoint is not a step checkpoint", bytes.len()),
                    )
                })?
            }
        };
        Ok(Box::new(StatelessRun {
            problem: self.0.as_ref(),
            params: params.clone(),
            noise_seed,
            steps,
        }))
    }
}

/// The toy example of Jaderberg et al. (arXiv:1711.09846, Figure 2): the true objective is
/// `Q(θ) = 1.2 − (θ₀² + θ₁²)` (maximized, at most 1.2 at θ = 0), but training only sees the
/// surrogate `Q̂(θ | h) = 1.2 − (h₀θ₀² + h₁θ₁²)`, whose hyperparameters `h ∈ [0, 1]²`
/// decide which coordinates a gradient-ascent step `θ ← θ + α·∇Q̂ = θ − 2α·h⊙θ` shrinks.
/// Every run starts at θ = (0.9, 0.9) with step size α = 0.01. The reported value is
/// `−Q(θ)` after each step (minimized, so the harness's "lower is better" holds
/// throughout); a full run is [`Quadratic::STEPS`] steps of 1/[`Quadratic::STEPS`]
/// simulated seconds each. The state is θ: the checkpoint holds `FTQUAD01`, the steps and
/// θ₀, θ₁ (little-endian).
#[derive(Clone, Copy, Debug, Default)]
pub struct Quadratic;

impl Quadratic {
    /// Gradient-ascent steps of a full run.
    pub const STEPS: u64 = 100;
    /// The step size α.
    pub const LEARNING_RATE: f64 = 0.01;
    /// θ at the start of every run.
    pub const THETA0: [f64; 2] = [0.9, 0.9];
    /// PBT's population and interval (Ray Tune's and the PB2 paper's small populations;
    /// the paper's toy uses two members).
    pub const POPULATION: Population = Population {
        size: 8,
        interval: 4,
    };

    /// `−Q(θ)`: the value reported (minimized).
    pub fn value(theta: [f64; 2]) -> f64 {
        theta[0] * theta[0] + theta[1] * theta[1] - 1.2
    }

    /// θ after `steps` steps from [`Quadratic::THETA0`] with the fixed hyperparameters `h`.
    pub fn train_fixed(h: [f64; 2], steps: u64) -> [f64; 2] {
        let mut theta = Self::THETA0;
        for _ in 0..steps {
            theta = Self::step(theta, h);
        }
        theta
    }

    /// One gradient-ascent step on the surrogate.
    fn step(theta: [f64; 2], h: [f64; 2]) -> [f64; 2] {
        [0, 1].map(|i| theta[i] - Self::LEARNING_RATE * 2.0 * h[i] * theta[i])
    }

    /// `h` from the trial's parameters `h0`, `h1`.
    pub fn hyperparameters(params: &Params) -> Option<[f64; 2]> {
        Some([params.get("h0")?.as_f64()?, params.get("h1")?.as_f64()?])
    }
}

/// The first bytes of a [`Quadratic`] checkpoint.
const QUAD_MAGIC: &[u8; 8] = b"FTQUAD01";

struct QuadraticRun {
    h: [f64; 2],
    theta: [f64; 2],
    steps: u64,
}

impl TrainingRun for QuadraticRun {
    fn step(&mut self) -> Result<f64, HarnessError> {
        self.theta = Quadratic::step(self.theta, self.h);
        self.steps += 1;
        Ok(Quadratic::value(self.theta))
    }
    fn steps(&self) -> u64 {
        self.steps
    }
    fn save(&self) -> Vec<u8> {
        let mut out = QUAD_MAGIC.to_vec();
        out.extend_from_slice(&self.steps.to_le_bytes());
        for v in self.theta {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

impl Trainable for Quadratic {
    fn name(&self) -> String {
        "pbt_quadratic".to_owned()
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        trial.suggest_float("h0", 0.0, 1.0)?;
        trial.suggest_float("h1", 0.0, 1.0)?;
        Ok(())
    }
    fn max_steps(&self) -> u64 {
        Self::STEPS
    }
    fn cost(&self, _params: &Params, _step: u64) -> f64 {
        1.0 / Self::STEPS as f64
    }
    fn open<'a>(
        &'a self,
        params: &Params,
        _seed: u64,
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Box<dyn TrainingRun + 'a>, HarnessError> {
        let h = Self::hyperparameters(params)
            .ok_or_else(|| bad(&self.name(), "the parameters lack h0 or h1"))?;
        let (steps, theta) = match checkpoint {
            None => (0, Self::THETA0),
            Some((_, bytes)) => (bytes.len() == 32 && bytes.starts_with(QUAD_MAGIC))
                .then(|| Some((u64_at(bytes, 8)?, [f64_at(bytes, 16)?, f64_at(bytes, 24)?])))
                .flatten()
                .ok_or_else(|| {
                    bad(
                        &self.name(),
                        format!("a {}-byte checkpoint is not a θ checkpoint", bytes.len()),
                    )
                })?,
        };
        Ok(Box::new(QuadraticRun { h, theta, steps }))
    }
    fn population(&self) -> Option<Population> {
        Some(Self::POPULATION)
    }
}

/// Which hyperparameters of the digits network a study tunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitsSpace {
    /// All six, as the main job and `digits_net` search them (architecture included).
    Full,
    /// A fixed architecture ([`DigitsMlp::FIXED`]: two hidden layers of 32, batches of 32)
    /// whose optimizer settings — learning rate, momentum, weight decay, over the main
    /// job's ranges — are all a resumed run may change, so PBT and PB2 tune their schedule.
    Optimizer,
}

/// The examples crate's network on digits with real checkpoints: the same split, value
/// (holdout error after each epoch) and cost ([`epoch_cost`]) as [`DigitsNet`], but each
/// trial trains its own [`MlpTrainer`], saved with [`MlpState::to_bytes`] when a scheduler
/// pauses it and restored with [`MlpTrainer::resume`], so a resumed run continues bitwise
/// where it stopped. A run resumed with other optimizer settings (a PBT child) continues
/// the saved weights and momentum with the new ones (see [`with_optimizer`]).
pub struct DigitsMlp {
    net: DigitsNet,
    space: DigitsSpace,
}

impl DigitsMlp {
    /// The fixed part of [`DigitsSpace::Optimizer`]'s networks (the optimizer fields are
    /// replaced by the trial's): the mid-size network of 3,466 parameters whose epoch costs
    /// 1 simulated second.
    pub const FIXED: MlpConfig = MlpConfig {
        learning_rate: 0.01,
        batch_size: 32,
        hidden_width: 32,
        hidden_layers: 2,
        weight_decay: 1e-4,
        momentum: 0.9,
    };

    /// PBT's population and interval for [`DigitsSpace::Optimizer`]: 8 members, an
    /// exploit/explore decision every 3 of the 27 epochs.
    pub const POPULATION: Population = Population {
        size: 8,
        interval: 3,
    };

    /// The network on the same split as [`DigitsNet`].
    ///
    /// # Errors
    /// As [`DigitsNet::new`].
    pub fn new(space: DigitsSpace) -> Result<DigitsMlp, FidelityFindError> {
        Ok(DigitsMlp {
            net: DigitsNet::new()?,
            space,
        })
    }

    /// The network `params` describe.
    fn config(&self, params: &Params) -> Option<MlpConfig> {
        match self.space {
            DigitsSpace::Full => mlp_config_from_params(params),
            DigitsSpace::Optimizer => {
                let f = |k: &str| params.get(k)?.as_f64();
                Some(MlpConfig {
                    learning_rate: f(mlp_params::LEARNING_RATE)?,
                    momentum: f(mlp_params::MOMENTUM)?,
                    weight_decay: f(mlp_params::WEIGHT_DECAY)?,
                    ..Self::FIXED
                })
            }
        }
    }
}

struct DigitsRun<'a> {
    trainer: MlpTrainer,
    valid: &'a Dataset,
}

impl TrainingRun for DigitsRun<'_> {
    fn step(&mut self) -> Result<f64, HarnessError> {
        self.trainer.train_epoch();
        self.trainer
            .error_on(self.valid)
            .map_err(|e| HarnessError::Schedule(format!("digits: {e}")))
    }
    fn steps(&self) -> u64 {
        self.trainer.epoch()
    }
    fn save(&self) -> Vec<u8> {
        self.trainer.state().to_bytes()
    }
}

/// The checkpoint `bytes` of an [`MlpState`] read back with its optimizer settings replaced
/// by `config`'s learning rate, weight decay and momentum (weights, momentum buffer and epoch
/// unchanged): a PBT child continues its parent's network with explored settings.
///
/// # Errors
/// [`HarnessError::Schedule`] when `bytes` is not a valid checkpoint, its architecture
/// differs from `config`'s, or a setting is out of range.
pub fn with_optimizer(bytes: &[u8], config: &MlpConfig) -> Result<MlpState, HarnessError> {
    let fail = |reason: String| HarnessError::Schedule(format!("digits checkpoint: {reason}"));
    let saved = MlpState::from_bytes(bytes).map_err(|e| fail(e.to_string()))?;
    let arch = |c: &MlpConfig| (c.batch_size, c.hidden_width, c.hidden_layers);
    if arch(saved.config()) != arch(config) {
        return Err(fail(format!(
            "it holds a network of {:?} (batch, width, layers), the trial asks for {:?}",
            arch(saved.config()),
            arch(config)
        )));
    }
    saved
        .with_optimizer(config.learning_rate, config.weight_decay, config.momentum)
        .map_err(|e| fail(e.to_string()))
}

impl Trainable for DigitsMlp {
    fn name(&self) -> String {
        match self.space {
            DigitsSpace::Full => self.net.name(),
            DigitsSpace::Optimizer => "digits_pbt".to_owned(),
        }
    }
    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        match self.space {
            DigitsSpace::Full => self.net.suggest(trial),
            DigitsSpace::Optimizer => {
                let (lo, hi) = LEARNING_RATE_RANGE;
                trial.suggest_float_log(mlp_params::LEARNING_RATE, lo, hi)?;
                let (lo, hi) = MOMENTUM_RANGE;
                trial.suggest_float(mlp_params::MOMENTUM, lo, hi)?;
                let (lo, hi) = WEIGHT_DECAY_RANGE;
                trial.suggest_float_log(mlp_params::WEIGHT_DECAY, lo, hi)?;
                Ok(())
            }
        }
    }
    fn max_steps(&self) -> u64 {
        MLP_MAX_EPOCHS
    }
    fn cost(&self, params: &Params, _step: u64) -> f64 {
        self.config(params)
            .filter(|c| c.validate().is_ok())
            .map_or(1.0, |c| epoch_cost(&c, self.net.split().train.n_samples()))
    }
    fn open<'a>(
        &'a self,
        params: &Params,
        seed: u64,
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Box<dyn TrainingRun + 'a>, HarnessError> {
        let name = self.name();
        let config = self
            .config(params)
            .ok_or_else(|| bad(&name, "the parameters do not describe a network"))?;
        let train = &self.net.split().train;
        let trainer = match checkpoint {
            None => MlpTrainer::new(config, train, seed),
            Some((_, bytes)) => MlpTrainer::resume(train, with_optimizer(bytes, &config)?),
        }
        .map_err(|e| bad(&name, e))?;
        Ok(Box::new(DigitsRun {
            trainer,
            valid: &self.net.split().test,
        }))
    }
    fn population(&self) -> Option<Population> {
        (self.space == DigitsSpace::Optimizer).then_some(Self::POPULATION)
    }
}

/// The problems with training state that only this module defines, beside every
/// [`FidelityProblem`] name.
pub const TRAINABLE_PROBLEMS: [&str; 2] = ["pbt_quadratic", "digits_pbt"];

/// The problems named in `names`: [`TRAINABLE_PROBLEMS`], `digits_net` (the digits network
/// with real checkpoints), and every other name [`find_fidelity_problems`] knows, wrapped in
/// [`Stateless`].
///
/// # Errors
/// As [`find_fidelity_problems`] for an unknown name (the known names listed include
/// [`TRAINABLE_PROBLEMS`]), and for a name given twice.
pub fn find_trainables(
    names: &[String],
    data: Option<&Path>,
) -> Result<Vec<Box<dyn Trainable>>, FidelityFindError> {
    let mut out: Vec<Box<dyn Trainable>> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let name = name.trim();
        let unknown = |mut e: UnknownProblem| {
            e.known
                .extend(TRAINABLE_PROBLEMS.iter().map(|n| (*n).to_owned()));
            FidelityFindError::Unknown(e)
        };
        if !seen.insert(name) {
            return Err(unknown(UnknownProblem {
                name: name.to_owned(),
                known: Vec::new(),
            }));
        }
        out.push(match name {
            "pbt_quadratic" => Box::new(Quadratic),
            "digits_pbt" => Box::new(DigitsMlp::new(DigitsSpace::Optimizer)?),
            "digits_net" => Box::new(DigitsMlp::new(DigitsSpace::Full)?),
            other => match find_fidelity_problems(&[other.to_owned()], data) {
                Ok(mut found) => match found.pop() {
                    Some(p) => Box::new(Stateless(p)),
                    None => continue,
                },
                Err(FidelityFindError::Unknown(e)) => return Err(unknown(e)),
                Err(e) => return Err(e),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{FloatDistribution, Param, ParamValue};

    fn params(values: &[(&str, f64)]) -> Params {
        values
            .iter()
            .map(|&(name, v)| {
                let dist = FloatDistribution::uniform(0.0, 10.0).expect("valid");
                Param::new(name, dist.into(), ParamValue::Float(v))
            })
            .collect()
    }

    #[test]
    fn quadratic_resumes_bitwise_and_h_one_is_best() {
        let p = params(&[("h0", 0.7), ("h1", 0.3)]);
        let mut straight = Quadratic.open(&p, 0, None).unwrap();
        let values: Vec<f64> = (0..10).map(|_| straight.step().unwrap()).collect();
        let mut first = Quadratic.open(&p, 0, None).unwrap();
        for _ in 0..4 {
            first.step().unwrap();
        }
        let bytes = first.save();
        let mut resumed = Quadratic.open(&p, 0, Some((4, &bytes))).unwrap();
        assert_eq!(resumed.steps(), 4);
        for v in &values[4..] {
            assert_eq!(resumed.step().unwrap().to_bits(), v.to_bits());
        }
        assert!(Quadratic.open(&p, 0, Some((4, &bytes[..20]))).is_err());
        // h = (1, 1) shrinks θ fastest: −Q after 100 steps is 2·0.81·0.98²⁰⁰ − 1.2.
        let best = Quadratic::value(Quadratic::train_fixed([1.0, 1.0], 100));
        assert!((best - (1.62 * 0.98f64.powi(200) - 1.2)).abs() < 1e-12);
        assert!(best < Quadratic::value(Quadratic::train_fixed([0.9, 1.0], 100)));
    }

    #[test]
    fn stateless_checkpoints_hold_the_step() {
        let problems = find_trainables(&["lc_hartmann6".to_owned()], None).unwrap();
        let lc = &problems[0];
        let p = params(
            &(0..6)
                .map(|i| (["x0", "x1", "x2", "x3", "x4", "x5"][i], 0.3))
                .collect::<Vec<_>>(),
        );
        let mut run = lc.open(&p, 9, None).unwrap();
        let a: Vec<f64> = (0..5).map(|_| run.step().unwrap()).collect();
        let bytes = run.save();
        let mut again = lc.open(&p, 123, Some((5, &bytes))).unwrap();
        assert_eq!(again.steps(), 5);
        let mut straight = lc.open(&p, 9, None).unwrap();
        for _ in 0..5 {
            straight.step().unwrap();
        }
        assert_eq!(
            again.step().unwrap().to_bits(),
            straight.step().unwrap().to_bits()
        );
        assert!(a.iter().all(|v| v.is_finite()));
        assert!(lc.open(&p, 0, Some((5, b"nonsense"))).is_err());
    }

    #[test]
    fn names_are_found_once_and_unknown_ones_list_every_problem() {
        let names = ["pbt_quadratic".to_owned(), "mfh6_good".to_owned()];
        let found = find_trainables(&names, None).unwrap();
        assert_eq!(found[0].name(), "pbt_quadratic");
        assert_eq!(found[1].name(), "mfh6_good");
        assert!(found[0].population().is_some() && found[1].population().is_none());
        let err = find_trainables(&["nope".to_owned()], None).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("digits_pbt") && text.contains("lc_hartmann6"),
            "{text}"
        );
        let twice = ["pbt_quadratic".to_owned(), "pbt_quadratic".to_owned()];
        assert!(find_trainables(&twice, None).is_err());
    }

    #[test]
    fn digits_checkpoints_take_new_optimizer_settings() {
        let mlp = DigitsMlp::new(DigitsSpace::Optimizer).unwrap();
        let p = params(&[
            (mlp_params::LEARNING_RATE, 0.05),
            (mlp_params::MOMENTUM, 0.9),
            (mlp_params::WEIGHT_DECAY, 1e-4),
        ]);
        let mut run = mlp.open(&p, 3, None).unwrap();
        run.step().unwrap();
        let bytes = run.save();
        // Same settings: continues bitwise.
        let mut straight = mlp.open(&p, 3, None).unwrap();
        straight.step().unwrap();
        let mut same = mlp.open(&p, 0, Some((1, &bytes))).unwrap();
        assert_eq!(
            same.step().unwrap().to_bits(),
            straight.step().unwrap().to_bits()
        );
        // New settings: the state reads back with them, weights unchanged.
        let new = MlpConfig {
            learning_rate: 0.2,
            momentum: 0.5,
            weight_decay: 1e-3,
            ..DigitsMlp::FIXED
        };
        let state = with_optimizer(&bytes, &new).unwrap();
        let before = MlpState::from_bytes(&bytes).unwrap();
        assert_eq!(state.config(), &new);
        assert_eq!(state.params(), before.params());
        assert_eq!(state.velocity(), before.velocity());
        assert_eq!(state.epoch(), 1);
        // Another architecture is refused.
        let wide = MlpConfig {
            hidden_width: 64,
            ..new
        };
        assert!(with_optimizer(&bytes, &wide).is_err());
        assert!(with_optimizer(&bytes[..100], &new).is_err());
    }
}
