//! The main job: tune a random forest, an SVM and a k-nearest-neighbours classifier on the
//! digits dataset with TPE (or random search, `--sampler random`), in the setup of Yang &
//! Shami 2020 (their search spaces, 3-fold cross-validated accuracy, 50 trials for RF and SVM,
//! 10 for KNN), and compare each model's best configuration with smartcore's default
//! hyperparameters.

use anyhow::Context;
use clap::Parser;
use ferrotune::{
    Direction, FrozenTrial, InMemoryStorage, Optimize, PrunerSpec, SamplerSpec, Storage, Study,
    TrialState,
};
use ferrotune_examples::digits::{cv_accuracy, load_digits, ModelConfig};
use ferrotune_examples::jobs::{accuracy, Job, FOLDS, JOBS};
use ferrotune_sqlite::SqliteStorage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tune RF, SVM and KNN classifiers on the digits dataset.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Study seed (sampling) and cross-validation split seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials evaluated in parallel.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only these models (rf, svm, knn); all by default.
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
}

struct Summary {
    job: Job,
    default_accuracy: f64,
    default_time: Duration,
    best: Arc<FrozenTrial>,
    trials: usize,
    search_time: Duration,
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
    let sampler = match args.sampler.as_str() {
        "random" => SamplerSpec::Random,
        _ => SamplerSpec::default(),
    };
    let jobs: Vec<Job> = JOBS
        .into_iter()
        .filter(|j| args.models.is_empty() || args.models.iter().any(|m| m == j.name))
        .collect();
    anyhow::ensure!(
        !jobs.is_empty(),
        "no model matches --models {:?}; use rf, svm, knn",
        args.models
    );

    let mut summaries = Vec::new();
    for job in jobs {
        let budget = (job.trials / args.budget_divisor.max(1)).max(1);
        let started = Instant::now();
        let default_accuracy =
            cv_accuracy(&data, &ModelConfig::default_for(job.kind), FOLDS, args.seed)
                .with_context(|| format!("{} with default hyperparameters", job.name))?;
        let default_time = started.elapsed();
        println!(
            "\n[{}] smartcore defaults: accuracy {:.4} ({:.1} s); searching {budget} trials on {} thread(s)",
            job.name,
            default_accuracy,
            default_time.as_secs_f64(),
            args.jobs
        );
        let study = Study::builder()
            .name(format!("digits-{}-{}", job.name, args.sampler))
            .storage(storage.clone())
            .load_if_exists(true)
            .max_trials(budget)
            .direction(Direction::Maximize)
            .sampler(sampler.clone())
            .pruner(PrunerSpec::Nop)
            .seed(args.seed)
            .build()?;
        let already = study.trials()?.len() as u64;
        if already > 0 {
            println!(
                "[{}] resuming study `{}`: {already} of {budget} trials already in {}",
                job.name,
                study.name(),
                args.storage
            );
        }
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
            accuracy(&data, job.kind, args.seed),
            Optimize::unbounded().jobs(args.jobs).callback(progress),
        )?;
        summaries.push(Summary {
            job,
            default_accuracy,
            default_time,
            best: study.best_trial()?,
            trials: study.trials()?.len(),
            search_time: search.elapsed(),
        });
    }

    println!("\nmodel  default acc  best acc   gain    trials  search time  best configuration");
    for s in &summaries {
        let best = s.best.value().unwrap_or(f64::NAN);
        println!(
            "{:<6} {:>11.4}  {:>8.4}  {:>+6.4}  {:>6}  {:>9.1} s  {}",
            s.job.name,
            s.default_accuracy,
            best,
            best - s.default_accuracy,
            s.trials,
            s.search_time.as_secs_f64(),
            serde_json::to_string(&s.best.params)?
        );
    }
    let total: f64 = summaries.iter().map(|s| s.search_time.as_secs_f64()).sum();
    let defaults: f64 = summaries.iter().map(|s| s.default_time.as_secs_f64()).sum();
    println!(
        "\n\"default\" means smartcore's defaults (RF: 100 trees, unlimited depth, m = sqrt(64); \
         SVM: C = 1 with an RBF kernel, since smartcore has none by default; KNN: k = 3).\n\
         search took {total:.1} s in all ({defaults:.1} s for the default fits)"
    );
    Ok(())
}
