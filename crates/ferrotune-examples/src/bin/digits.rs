//! The main job: tune a random forest, an SVM and a k-nearest-neighbours classifier on the
//! digits dataset with TPE (or random search, `--sampler random`), in the setup of Yang &
//! Shami 2020 (their search spaces, 3-fold cross-validated accuracy, 50 trials for RF and SVM,
//! 10 for KNN), and compare each model's best configuration with smartcore's default
//! hyperparameters. A fourth model, a small neural network (`mlp`) trained epoch by epoch,
//! reports its cross-validated error after every epoch, and a pruner (`--pruner`, successive
//! halving by default) stops the unpromising trials early; the job prints how much training
//! that saved.

use anyhow::Context;
use clap::Parser;
use ferrotune::schedule::SchedulerSpec;
use ferrotune::{
    Direction, FrozenTrial, InMemoryStorage, Optimize, PrunerSpec, SamplerSpec, Storage, Study,
    TrialState,
};
use ferrotune_examples::digits::{
    cv_accuracy, load_digits, stratified_splits, Dataset, MlpConfig, MlpCrossValidation,
    ModelConfig, Split,
};
use ferrotune_examples::jobs::{
    accuracy, mlp_error, mlp_pruner, mlp_scheduler, Job, MlpJob, FOLDS, JOBS, MLP_JOB, MLP_PRUNERS,
    MLP_SCHEDULERS,
};
use ferrotune_sqlite::SqliteStorage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tune RF, SVM, KNN and a small neural network on the digits dataset.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Study seed (sampling) and cross-validation split seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials evaluated in parallel.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only these models (rf, svm, knn, mlp); all by default.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Divide every trial budget by this factor (a quick smoke run: --budget-divisor 10).
    #[arg(long, default_value_t = 1)]
    budget_divisor: u64,
    /// Where the studies are stored: a SQLite URL (running again resumes each study up to its
    /// budget), or `memory` to keep nothing.
    #[arg(long, default_value = "sqlite:///ferrotune.db")]
    storage: String,
    /// The sampler: tpe (Optuna 5.0's settings) or random. Each model's study is named after
    /// it (`digits-rf-tpe`), so runs with both samplers share one database.
    #[arg(long, default_value = "tpe", value_parser = ["tpe", "random"])]
    sampler: String,
    /// How the MLP's trials are stopped early (the other models train in one go): asha
    /// (successive halving, η = 3, rungs at 1, 3 and 9 epochs), hyperband (η = 3, 1 to 27
    /// epochs), median (Optuna's median pruner) or none. The MLP's study is named after the
    /// sampler and the pruner (`digits-mlp-tpe-asha`).
    #[arg(long, default_value = "asha", value_parser = MLP_PRUNERS)]
    pruner: String,
    /// Pause and resume the MLP's trials instead of stopping them: asha (ASHA with
    /// promotion: trials pause at 1, 3 and 9 epochs with their networks checkpointed, and
    /// free workers resume the best third), hyperband (synchronous), bohb, or none (the
    /// pruner decides). With a scheduler the pruner is not used and the study is named
    /// `digits-mlp-<sampler>-sched-<scheduler>`.
    #[arg(long, default_value = "none", value_parser = MLP_SCHEDULERS)]
    scheduler: String,
    /// Where paused trials' networks are saved (with --scheduler); stored with the study.
    #[arg(long, default_value = "ferrotune-checkpoints")]
    checkpoint_dir: std::path::PathBuf,
}

/// What the final table shows for one model.
struct Summary {
    name: &'static str,
    default_accuracy: f64,
    default_time: Duration,
    best_accuracy: f64,
    best_params: String,
    trials: usize,
    search_time: Duration,
}

/// The MLP study's pruning record, read back from storage (so a resumed study counts its
/// earlier sessions too).
struct PruningStats {
    /// `pruner asha` or `scheduler asha`.
    pruner: String,
    complete: usize,
    pruned: usize,
    /// Trials a scheduler left paused at a rung (never promoted).
    paused: usize,
    epochs_run: u64,
    epochs_without_pruning: u64,
}

/// A model of the main job: one of the paper's classifiers, or the MLP.
#[derive(Clone, Copy)]
enum Model {
    Classic(Job),
    Mlp(MlpJob),
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Classic(job) => job.name,
            Model::Mlp(job) => job.name,
        }
    }
    fn trials(self) -> u64 {
        match self {
            Model::Classic(job) => job.trials,
            Model::Mlp(job) => job.trials,
        }
    }
}

/// The settings every model's study shares.
struct Setup {
    storage: Arc<dyn Storage>,
    storage_name: String,
    sampler: SamplerSpec,
    seed: u64,
    jobs: usize,
}

impl Setup {
    /// Creates the study `name`, or reopens it (saying so) to continue up to `budget`
    /// trials; returns it with the number of trials it already has.
    fn study(
        &self,
        model: &str,
        name: String,
        budget: u64,
        direction: Direction,
        pruner: PrunerSpec,
        scheduler: Option<(SchedulerSpec, &std::path::Path)>,
    ) -> anyhow::Result<(Study, u64)> {
        let mut builder = Study::builder()
            .name(name)
            .storage(self.storage.clone())
            .load_if_exists(true)
            .max_trials(budget)
            .direction(direction)
            .sampler(self.sampler.clone())
            .seed(self.seed);
        builder = match scheduler {
            Some((spec, dir)) => builder.scheduler(spec).checkpoint_dir(dir),
            None => builder.pruner(pruner),
        };
        let study = builder.build()?;
        let already = study.trials()?.len() as u64;
        if already > 0 {
            println!(
                "[{model}] resuming study `{}`: {already} of {budget} trials already in {}",
                study.name(),
                self.storage_name
            );
        }
        Ok((study, already))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let storage: Arc<dyn Storage> = if args.storage == "memory" {
        Arc::new(InMemoryStorage::new())
    } else {
        Arc::new(
            SqliteStorage::open(&args.storage)
                .with_context(|| format!("cannot open storage {}", args.storage))?,
        )
    };
    let data = load_digits();
    println!(
        "digits: {} samples x {} features, {FOLDS}-fold cross-validated accuracy; {} sampler, seed {}",
        data.n_samples(),
        data.n_features(),
        args.sampler,
        args.seed
    );
    let setup = Setup {
        storage,
        storage_name: args.storage.clone(),
        sampler: match args.sampler.as_str() {
            "random" => SamplerSpec::Random,
            _ => SamplerSpec::default(),
        },
        seed: args.seed,
        jobs: args.jobs,
    };
    let models: Vec<Model> = JOBS
        .into_iter()
        .map(Model::Classic)
        .chain([Model::Mlp(MLP_JOB)])
        .filter(|m| args.models.is_empty() || args.models.iter().any(|n| n == m.name()))
        .collect();
    anyhow::ensure!(
        !models.is_empty(),
        "no model matches --models {:?}; use rf, svm, knn, mlp",
        args.models
    );

    let mut summaries = Vec::new();
    let mut pruning = None;
    for model in models {
        let budget = (model.trials() / args.budget_divisor.max(1)).max(1);
        summaries.push(match model {
            Model::Classic(job) => run_classic(&setup, &args, &data, job, budget)?,
            Model::Mlp(job) => {
                let (summary, stats) = run_mlp(&setup, &args, &data, job, budget)?;
                pruning = Some(stats);
                summary
            }
        });
    }

    println!("\nmodel  default acc  best acc   gain    trials  search time  best configuration");
    for s in &summaries {
        println!(
            "{:<6} {:>11.4}  {:>8.4}  {:>+6.4}  {:>6}  {:>9.1} s  {}",
            s.name,
            s.default_accuracy,
            s.best_accuracy,
            s.best_accuracy - s.default_accuracy,
            s.trials,
            s.search_time.as_secs_f64(),
            s.best_params
        );
    }
    if let Some(p) = pruning {
        let saved = if p.epochs_without_pruning > 0 {
            100.0 * (1.0 - p.epochs_run as f64 / p.epochs_without_pruning as f64)
        } else {
            0.0
        };
        println!(
            "\nmlp with {}: {} trials complete, {} pruned{}; {} epochs run of {} if every \
             trial had run to the end ({FOLDS} folds each): budget saved: {saved:.1}%",
            p.pruner,
            p.complete,
            p.pruned,
            if p.paused > 0 {
                format!(", {} paused at a rung", p.paused)
            } else {
                String::new()
            },
            p.epochs_run,
            p.epochs_without_pruning
        );
    }
    let total: f64 = summaries.iter().map(|s| s.search_time.as_secs_f64()).sum();
    let defaults: f64 = summaries.iter().map(|s| s.default_time.as_secs_f64()).sum();
    let d = MlpConfig::default();
    println!(
        "\n\"default\" means smartcore's defaults (RF: 100 trees, unlimited depth, m = sqrt(64); \
         SVM: C = 1 with an RBF kernel, since smartcore has none by default; KNN: k = 3) and, \
         for the MLP, a textbook start (learning rate {}, batch {}, {} hidden layer of {}, \
         weight decay {}, momentum {}, {} epochs); the MLP's accuracy is after its last epoch.\n\
         search took {total:.1} s in all ({defaults:.1} s for the default fits)",
        d.learning_rate,
        d.batch_size,
        d.hidden_layers,
        d.hidden_width,
        d.weight_decay,
        d.momentum,
        MLP_JOB.max_epochs
    );
    Ok(())
}

/// Tunes one of the paper's classifiers: `budget` trials maximizing cross-validated accuracy.
fn run_classic(
    setup: &Setup,
    args: &Args,
    data: &Dataset,
    job: Job,
    budget: u64,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let default_accuracy = cv_accuracy(data, &ModelConfig::default_for(job.kind), FOLDS, args.seed)
        .with_context(|| format!("{} with default hyperparameters", job.name))?;
    let default_time = started.elapsed();
    println!(
        "\n[{}] smartcore defaults: accuracy {:.4} ({:.1} s); searching {budget} trials on {} thread(s)",
        job.name,
        default_accuracy,
        default_time.as_secs_f64(),
        setup.jobs
    );
    let (study, already) = setup.study(
        job.name,
        format!("digits-{}-{}", job.name, args.sampler),
        budget,
        Direction::Maximize,
        PrunerSpec::Nop,
        None,
    )?;
    let done = Arc::new(AtomicU64::new(already));
    let search = Instant::now();
    let progress = {
        let done = done.clone();
        let name = job.name;
        move |study: &Study, t: &FrozenTrial| {
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            let best = study.best_value().map_or(f64::NAN, |v| v);
            let took = t.duration().unwrap_or_default().as_secs_f64();
            let params = serde_json::to_string(&t.params).unwrap_or_default();
            match t.state {
                TrialState::Complete => println!(
                    "[{name}] trial {n:>2}/{budget}  accuracy {:.4}  best {best:.4}  {took:>5.1} s  {params}",
                    t.value().unwrap_or(f64::NAN)
                ),
                _ => println!(
                    "[{name}] trial {n:>2}/{budget}  {}: {}  {params}",
                    t.state,
                    t.fail_reason.as_deref().unwrap_or("")
                ),
            }
        }
    };
    study.optimize(
        accuracy(data, job.kind, args.seed),
        Optimize::unbounded().jobs(setup.jobs).callback(progress),
    )?;
    let best = study.best_trial()?;
    Ok(Summary {
        name: job.name,
        default_accuracy,
        default_time,
        best_accuracy: best.value().unwrap_or(f64::NAN),
        best_params: serde_json::to_string(&best.params)?,
        trials: study.trials()?.len(),
        search_time: search.elapsed(),
    })
}

/// The cross-validated error of `config` after `epochs` epochs, the folds seeded as the
/// search seeds them.
fn mlp_cv_error(
    splits: &[Split],
    config: MlpConfig,
    seed: u64,
    epochs: u64,
) -> anyhow::Result<f64> {
    let mut cv = MlpCrossValidation::new(splits, config, seed)?;
    let mut error = f64::NAN;
    for _ in 0..epochs {
        error = cv.train_epoch()?;
    }
    Ok(error)
}

/// Tunes the MLP: `budget` trials minimizing the cross-validated error, reported after every
/// epoch and pruned by `--pruner`.
fn run_mlp(
    setup: &Setup,
    args: &Args,
    data: &Dataset,
    job: MlpJob,
    budget: u64,
) -> anyhow::Result<(Summary, PruningStats)> {
    let name = job.name;
    let pruner =
        mlp_pruner(&args.pruner).with_context(|| format!("unknown pruner {}", args.pruner))?;
    let splits = stratified_splits(data, FOLDS, args.seed)?;
    let stopper = if args.scheduler == "none" {
        format!("pruner {}", args.pruner)
    } else {
        format!("scheduler {}", args.scheduler)
    };
    let started = Instant::now();
    let default_error = mlp_cv_error(&splits, MlpConfig::default(), args.seed, job.max_epochs)
        .context("mlp with default hyperparameters")?;
    let default_time = started.elapsed();
    println!(
        "\n[{name}] textbook default: accuracy {:.4} ({:.1} s); searching {budget} trials of at \
         most {} epochs on {} thread(s), {}",
        1.0 - default_error,
        default_time.as_secs_f64(),
        job.max_epochs,
        setup.jobs,
        stopper
    );
    let scheduler = mlp_scheduler(&args.scheduler)
        .with_context(|| format!("unknown scheduler {}", args.scheduler))?;
    let (study_name, scheduler) = if scheduler.is_none() {
        (
            format!("digits-{name}-{}-{}", args.sampler, args.pruner),
            None,
        )
    } else {
        (
            format!("digits-{name}-{}-sched-{}", args.sampler, args.scheduler),
            Some((scheduler, args.checkpoint_dir.as_path())),
        )
    };
    let (study, already) = setup.study(
        name,
        study_name,
        budget,
        Direction::Minimize,
        pruner,
        scheduler,
    )?;
    let done = Arc::new(AtomicU64::new(already));
    let search = Instant::now();
    let progress = {
        let done = done.clone();
        move |study: &Study, t: &FrozenTrial| {
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            let best = study.best_value().map_or(f64::NAN, |v| 1.0 - v);
            let took = t.duration().unwrap_or_default().as_secs_f64();
            let params = serde_json::to_string(&t.params).unwrap_or_default();
            let epochs = t.last_step().unwrap_or(0);
            let last = t
                .intermediate_values
                .values()
                .next_back()
                .map_or(f64::NAN, |v| 1.0 - v[0]);
            match t.state {
                TrialState::Complete => println!(
                    "[{name}] trial {n:>3}/{budget}  accuracy {last:.4}  best {best:.4}  {epochs:>2} epochs  {took:>4.1} s  {params}"
                ),
                TrialState::Pruned => println!(
                    "[{name}] trial {n:>3}/{budget}  pruned after epoch {epochs} (accuracy {last:.4})  {took:>4.1} s  {params}"
                ),
                _ => println!(
                    "[{name}] trial {n:>3}/{budget}  {}: {}  {params}",
                    t.state,
                    t.fail_reason.as_deref().unwrap_or("")
                ),
            }
        }
    };
    study.optimize(
        mlp_error(&splits, args.seed, job.max_epochs),
        Optimize::unbounded().jobs(setup.jobs).callback(progress),
    )?;
    let best = study.best_trial()?;
    let trials = study.trials()?;
    let finished: Vec<&Arc<FrozenTrial>> = trials
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                TrialState::Complete | TrialState::Pruned | TrialState::Paused
            )
        })
        .collect();
    let stats = PruningStats {
        pruner: stopper,
        paused: finished
            .iter()
            .filter(|t| t.state == TrialState::Paused)
            .count(),
        complete: finished
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count(),
        pruned: finished
            .iter()
            .filter(|t| t.state == TrialState::Pruned)
            .count(),
        epochs_run: finished.iter().map(|t| t.last_step().unwrap_or(0)).sum(),
        epochs_without_pruning: finished.len() as u64 * job.max_epochs,
    };
    let summary = Summary {
        name,
        default_accuracy: 1.0 - default_error,
        default_time,
        best_accuracy: 1.0 - best.value().unwrap_or(f64::NAN),
        best_params: serde_json::to_string(&best.params)?,
        trials: trials.len(),
        search_time: search.elapsed(),
    };
    Ok((summary, stats))
}
