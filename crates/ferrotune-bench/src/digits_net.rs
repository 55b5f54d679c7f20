//! A real multi-fidelity problem: the examples crate's small neural network
//! ([`ferrotune_examples::digits::MlpTrainer`]) trained on digits epoch by epoch, where step
//! `z` is the validation error after `z` epochs.
//!
//! - Search space: the main job's MLP space ([`suggest_mlp_config`]: learning rate, batch
//!   size, width, depth, weight decay, momentum).
//! - Steps: `1..=`[`MLP_MAX_EPOCHS`] (27 = 3³, so successive halving and Hyperband with
//!   η = 3 get rungs at exactly 1, 3, 9 and 27 epochs).
//! - Value: the misclassification rate on a fixed stratified holdout: a third of digits
//!   (599 rows, fold 0 of the 3-fold split with [`SPLIT_SEED`]), the network trained on the
//!   other two thirds (1,198 rows). A diverged network scores 0.9 (chance). The training
//!   seed is the trial's noise seed, so two trials of the same configuration are two
//!   different training runs, as they would be for real.
//! - Cost: [`epoch_cost`], the network's parameters × 1,198 samples, 1 simulated second
//!   for two hidden layers of 32 — deterministic, so simulated timelines repeat exactly.
//! - No known optimum.
//!
//! The simulator asks for step 1, 2, … of a trial in turn (interleaved with other trials), so
//! the problem keeps the networks being trained: a bounded cache of trainers keyed by the
//! configuration's bits and the noise seed continues from the last epoch instead of
//! starting over. A trainer leaves the cache when it reaches the last step, and the least
//! recently used one when more than [`CACHE_CAPACITY`] are held (a pruned trial's trainer
//! is never asked again; an evicted trainer that is asked again is retrained from scratch,
//! with the same result). Asking for an earlier step than the cached trainer's also retrains
//! from scratch. Training is deterministic, so every value is the same whichever path
//! computed it.

use crate::fidelity::FidelityProblem;
use ferrotune::{Params, Trial};
use ferrotune_examples::digits::{
    epoch_cost, load_digits, stratified_splits, EvalError, MlpConfig, MlpTrainer, Split,
};
use ferrotune_examples::jobs::{mlp_config_from_params, suggest_mlp_config, MLP_MAX_EPOCHS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The problem's name.
pub const DIGITS_NET_NAME: &str = "digits_net";

/// The seed of the train/validation split: fixed, so every evaluation uses the same holdout.
pub const SPLIT_SEED: u64 = 0;

/// The most trainers kept between steps: more than the simulated workers of any run we make
/// (a worker holds one running trial), so no running trial is retrained from scratch.
pub const CACHE_CAPACITY: usize = 64;

/// What a cached trainer is the training run of: the configuration's bits and the noise
/// seed.
type Key = [u64; 7];

fn key(config: &MlpConfig, noise_seed: u64) -> Key {
    [
        config.learning_rate.to_bits(),
        config.batch_size as u64,
        config.hidden_width as u64,
        config.hidden_layers as u64,
        config.weight_decay.to_bits(),
        config.momentum.to_bits(),
        noise_seed,
    ]
}

struct Entry {
    key: Key,
    trainer: MlpTrainer,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

/// The digits MLP as a multi-fidelity problem (see the [module documentation](self)).
pub struct DigitsNet {
    split: Split,
    cache: Mutex<Cache>,
    trained_epochs: AtomicU64,
}

impl std::fmt::Debug for DigitsNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigitsNet")
            .field("cached_trainers", &self.cached_trainers())
            .field("trained_epochs", &self.trained_epochs())
            .finish_non_exhaustive()
    }
}

impl DigitsNet {
    /// The problem on smartcore's bundled digits, split two thirds / one third.
    ///
    /// # Errors
    /// When the split cannot be built (it can for the bundled dataset: every class has far
    /// more than three samples).
    pub fn new() -> Result<DigitsNet, EvalError> {
        let mut splits = stratified_splits(&load_digits(), 3, SPLIT_SEED)?;
        Ok(DigitsNet {
            split: splits.swap_remove(0),
            cache: Mutex::new(Cache::default()),
            trained_epochs: AtomicU64::new(0),
        })
    }

    /// The training and validation sets.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Epochs actually trained so far, over all trainers (a measure of the cache's work:
    /// without it, a trial of `z` steps would cost `z(z + 1)/2` epochs instead of `z`).
    pub fn trained_epochs(&self) -> u64 {
        self.trained_epochs.load(Ordering::Relaxed)
    }

    /// Trainers held between steps now.
    pub fn cached_trainers(&self) -> usize {
        self.lock().entries.len()
    }

    /// The cache holds plain data, so one left by a panicking thread is still usable.
    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached trainer of `key` if it has not gone past `step` epochs, taken out of the
    /// cache (one of `key` that has is dropped).
    fn take(&self, key: &Key, step: u64) -> Option<MlpTrainer> {
        let mut cache = self.lock();
        let i = cache.entries.iter().position(|e| &e.key == key)?;
        let entry = cache.entries.swap_remove(i);
        (entry.trainer.epoch() <= step).then_some(entry.trainer)
    }

    /// Puts a trainer back for its next step, evicting the least recently used one when the
    /// cache is full.
    fn put(&self, key: Key, trainer: MlpTrainer) {
        let mut cache = self.lock();
        cache.clock += 1;
        let last_used = cache.clock;
        cache.entries.retain(|e| e.key != key);
        cache.entries.push(Entry {
            key,
            trainer,
            last_used,
        });
        if cache.entries.len() > CACHE_CAPACITY {
            if let Some(oldest) = cache
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            {
                cache.entries.swap_remove(oldest);
            }
        }
    }
}

impl FidelityProblem for DigitsNet {
    fn name(&self) -> String {
        DIGITS_NET_NAME.to_owned()
    }

    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        suggest_mlp_config(trial).map(|_| ())
    }

    fn max_steps(&self) -> u64 {
        MLP_MAX_EPOCHS
    }

    /// The validation error after `step` epochs (clamped to `1..=max_steps`) of the training
    /// run seeded by `noise_seed`; NaN when `params` hold no valid configuration.
    fn evaluate_at(&self, params: &Params, step: u64, noise_seed: u64) -> f64 {
        let Some(config) = mlp_config_from_params(params) else {
            return f64::NAN;
        };
        let step = step.clamp(1, MLP_MAX_EPOCHS);
        let key = key(&config, noise_seed);
        // Trained outside the lock: trials of other workers proceed meanwhile.
        let mut trainer = match self.take(&key, step) {
            Some(trainer) => trainer,
            None => match MlpTrainer::new(config, &self.split.train, noise_seed) {
                Ok(trainer) => trainer,
                Err(_) => return f64::NAN,
            },
        };
        while trainer.epoch() < step {
            trainer.train_epoch();
            self.trained_epochs.fetch_add(1, Ordering::Relaxed);
        }
        let error = trainer.error_on(&self.split.test).unwrap_or(f64::NAN);
        if step < MLP_MAX_EPOCHS {
            self.put(key, trainer);
        }
        error
    }

    /// [`epoch_cost`] of the configuration on the 1,198 training rows, the same for every
    /// step; 1 simulated second when `params` hold no valid configuration.
    fn cost(&self, params: &Params, _step: u64) -> f64 {
        mlp_config_from_params(params)
            .filter(|c| c.validate().is_ok())
            .map_or(1.0, |c| epoch_cost(&c, self.split.train.n_samples()))
    }

    fn optimum(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{simulate_study, SimConfig, SimEngine};
    use ferrotune::{
        FloatDistribution, IntDistribution, Optimize, Param, ParamValue, PrunerSpec, SamplerSpec,
        Study, TrialError,
    };
    use ferrotune_examples::jobs::mlp_params;

    /// `config` as the parameters `suggest_mlp_config` records.
    fn params(config: &MlpConfig) -> Params {
        let float = |name: &str, v: f64| {
            let dist = FloatDistribution::log_uniform(1e-9, 10.0).expect("valid");
            Param::new(name, dist.into(), ParamValue::Float(v))
        };
        let int = |name: &str, v: usize| {
            let dist = IntDistribution::range(0, 1 << 20).expect("valid");
            Param::new(name, dist.into(), ParamValue::Int(v as i64))
        };
        vec![
            float(mlp_params::LEARNING_RATE, config.learning_rate),
            int(mlp_params::BATCH_SIZE, config.batch_size),
            int(mlp_params::HIDDEN_WIDTH, config.hidden_width),
            int(mlp_params::HIDDEN_LAYERS, config.hidden_layers),
            float(mlp_params::WEIGHT_DECAY, config.weight_decay),
            float(mlp_params::MOMENTUM, config.momentum.max(1e-9)),
        ]
        .into_iter()
        .collect()
    }

    /// A cheap network: one hidden layer of 8, full batches of 256.
    fn small() -> MlpConfig {
        MlpConfig {
            learning_rate: 0.1,
            batch_size: 256,
            hidden_width: 8,
            hidden_layers: 1,
            weight_decay: 1e-4,
            momentum: 0.9,
        }
    }

    #[test]
    fn digits_net_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DigitsNet>();
    }

    /// Steps asked in turn train one epoch each, and give bitwise the values of a fresh
    /// problem asked for the step directly; asking for an earlier step again retrains.
    #[test]
    fn digits_net_sequential_and_fresh_evaluations_agree() {
        let p = params(&MlpConfig {
            hidden_width: 16,
            batch_size: 64,
            ..small()
        });
        let sequential = DigitsNet::new().unwrap();
        let values: Vec<f64> = (1..=5).map(|z| sequential.evaluate_at(&p, z, 11)).collect();
        assert_eq!(sequential.trained_epochs(), 5, "each step trained once");
        assert_eq!(sequential.cached_trainers(), 1);
        assert!(values.iter().all(|v| (0.0..=0.9).contains(v)), "{values:?}");
        assert!(values[4] < values[0], "{values:?}");

        let fresh = DigitsNet::new().unwrap();
        assert_eq!(fresh.evaluate_at(&p, 5, 11).to_bits(), values[4].to_bits());
        assert_eq!(fresh.evaluate_at(&p, 3, 11).to_bits(), values[2].to_bits());
        assert_eq!(fresh.trained_epochs(), 5 + 3, "going back retrains");
        assert_eq!(fresh.cached_trainers(), 1, "one trainer per training run");

        // Another noise seed is another training run.
        let other = fresh.evaluate_at(&p, 5, 12);
        assert!((0.0..=0.9).contains(&other));
        assert_eq!(fresh.cached_trainers(), 2);
    }

    #[test]
    fn digits_net_cache_is_bounded_and_drops_finished_runs() {
        let problem = DigitsNet::new().unwrap();
        let p = params(&small());
        for seed in 0..CACHE_CAPACITY as u64 + 3 {
            problem.evaluate_at(&p, 1, seed);
        }
        assert_eq!(problem.cached_trainers(), CACHE_CAPACITY);
        // Seeds 0 to 2 were evicted (least recently used): asking again retrains from
        // scratch (and evicts seed 3).
        let before = problem.trained_epochs();
        problem.evaluate_at(&p, 2, 0);
        assert_eq!(problem.trained_epochs(), before + 2);
        // The last step finishes a run: its trainer leaves the cache.
        let recent = CACHE_CAPACITY as u64 + 2;
        let before = problem.trained_epochs();
        problem.evaluate_at(&p, MLP_MAX_EPOCHS, recent);
        assert_eq!(problem.trained_epochs(), before + MLP_MAX_EPOCHS - 1);
        assert_eq!(problem.cached_trainers(), CACHE_CAPACITY - 1);
    }

    #[test]
    fn digits_net_cost_is_the_epoch_cost_and_bad_params_are_nan() {
        let problem = DigitsNet::new().unwrap();
        let mid = MlpConfig {
            hidden_width: 32,
            hidden_layers: 2,
            ..small()
        };
        for step in [1, 9, MLP_MAX_EPOCHS] {
            assert!((problem.cost(&params(&mid), step) - 1.0).abs() < 1e-12);
        }
        let wide = MlpConfig {
            hidden_width: 128,
            hidden_layers: 3,
            ..mid
        };
        assert!(problem.cost(&params(&wide), 1) > 10.0);
        assert!(problem.cost(&params(&small()), 1) < 0.2);
        assert!(problem.evaluate_at(&Params::new(), 1, 0).is_nan());
        assert!((problem.cost(&Params::new(), 1) - 1.0).abs() < 1e-12);
        let broken = MlpConfig {
            hidden_layers: 9,
            ..small()
        };
        assert!(problem.evaluate_at(&params(&broken), 1, 0).is_nan());
        assert_eq!(problem.name(), "digits_net");
        assert_eq!(problem.max_steps(), 27);
        assert!(problem.optimum().is_none());
    }

    /// `suggest` records a configuration every evaluation can read back.
    #[test]
    fn digits_net_suggestions_map_back_to_configurations() {
        let problem = DigitsNet::new().unwrap();
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(3)
            .build()
            .unwrap();
        study
            .optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    problem.suggest(t)?;
                    let config = mlp_config_from_params(&t.frozen().params);
                    assert!(config.is_some_and(|c| c.validate().is_ok()));
                    Ok(0.0)
                },
                Optimize::trials(30),
            )
            .unwrap();
    }

    /// Through the real simulator with four interleaved workers and successive halving, the
    /// cache trains every evaluated step exactly once, and a second run repeats the first.
    #[test]
    fn digits_net_simulated_runs_train_each_step_once_and_repeat() {
        let config = SimConfig {
            sampler_label: "random".to_owned(),
            pruner_label: "successive_halving".to_owned(),
            engine: SimEngine::Ferrotune {
                sampler: SamplerSpec::Random,
                pruner: PrunerSpec::SuccessiveHalving {
                    min_resource: ferrotune::pruner::Resource::Steps(1),
                    reduction_factor: 3,
                    min_early_stopping_rate: 0,
                    bootstrap_count: 0,
                },
            },
            workers: 4,
            budget_fe: 2.0,
        };
        let run = || {
            let problem = DigitsNet::new().unwrap();
            let study = Study::builder()
                .sampler(SamplerSpec::Random)
                .pruner(match &config.engine {
                    SimEngine::Ferrotune { pruner, .. } => pruner.clone(),
                    SimEngine::Peer => PrunerSpec::Nop,
                })
                .seed(1)
                .build()
                .unwrap();
            let records = simulate_study(&study, &problem, &config, 1).unwrap();
            let steps: u64 = records.iter().filter_map(|r| r.step).sum();
            assert_eq!(problem.trained_epochs(), steps);
            records
                .iter()
                .map(|r| {
                    (
                        r.trial,
                        r.value.map(f64::to_bits),
                        r.sim_end.map(f64::to_bits),
                    )
                })
                .collect::<Vec<_>>()
        };
        let first = run();
        assert!(first.len() > 4, "{first:?}");
        assert_eq!(first, run());
    }
}
