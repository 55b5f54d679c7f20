//! `ferrotune-bench`: run samplers on the benchmark problems and report the results.
//!
//! ```text
//! ferrotune-bench run --problems branin,hartmann6 --samplers random,qmc --seeds 10 \
//!     --trials 100 --out bench/results.jsonl --budget 20m
//! ferrotune-bench report bench/results.jsonl
//! ferrotune-bench run --problems branin,mixed --samplers tpe,optuna-tpe,rustuna-tpe --seeds 3 \
//!     --trials 100 --out bench/results.jsonl
//! ferrotune-bench ask-time --samplers tpe,tpe-univariate,optuna-tpe,rustuna-tpe \
//!     --n 100,1000,5000 --dim 10 --repeats 20 --out bench/ask-time.jsonl
//! ferrotune-bench schedule --problems lc_hartmann6,pbt_quadratic \
//!     --schedules random,sync_sha,asha_promotion,pbt --workers 1,16 --seeds 10 \
//!     --budget-fe 30 --out target/bench/sched.jsonl --svg target/bench/svg-sched
//! ```
//!
//! Peers (`optuna-…`, `rustuna-…`) run through `bench/peers/optuna_driver.py` with the Python
//! of `target/peers-venv` (see `bench/peers/requirements.txt`), or `--python`.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferrotune_bench::fidelity::find_fidelity_problems;
use ferrotune_bench::harness::{ask_time_all, run_all, AskTimeRecord, Contender, Record};
use ferrotune_bench::peer::PeerConfig;
use ferrotune_bench::schedsim::{self, SchedConfig, SchedRun, Schedule};
use ferrotune_bench::simulate::{self, simulate_all, SimConfig, SimEngine};
use ferrotune_bench::trainable::find_trainables;
use ferrotune_bench::{find_problems, report};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version, about = "Benchmark ferrotune's samplers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run samplers × problems × seeds, appending to a JSON Lines file (resumable).
    Run {
        /// Problems (comma list); all synthetic ones by default. Also `digits` and the tabular
        /// benchmarks (`hpolib/naval_propulsion`, …) or their groups (`tabular`, `hpolib`,
        /// `hpobench`, `nasbench201`).
        #[arg(long, value_delimiter = ',')]
        problems: Vec<String>,
        /// The benchmark data folder (the one holding `tabular/`), for the tabular problems.
        #[arg(long, env = "FERROTUNE_BENCH_DATA")]
        data: Option<PathBuf>,
        /// A JSON Lines file caching the `digits` problem's evaluations across runs.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Samplers: random, qmc (sobol), halton, tpe, tpe-univariate, JSON specs, or peers
        /// (optuna-tpe, optuna-tpe-univariate, optuna-random, rustuna-tpe,
        /// rustuna-tpe-univariate, rustuna-random); a comma list outside JSON, `;` between.
        #[arg(long, value_delimiter = ';', default_value = "random")]
        samplers: Vec<String>,
        /// How many seeds: 0..N (fixed-seed mode, for regressions and resumable
        /// comparisons), or N fresh ones with --random-seeds.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Draw the seeds at random (clock and process id) instead of 0..N: an honest
        /// estimate that nothing tuned to fixed seeds can flatter. Each record keeps its
        /// seed, so any run replays with that seed; calling again adds new runs.
        #[arg(long)]
        random_seeds: bool,
        /// Trials per run.
        #[arg(long, default_value_t = 100)]
        trials: u64,
        /// The results file.
        #[arg(long)]
        out: PathBuf,
        /// Stop starting runs after this long (e.g. 90s, 20m, 2h).
        #[arg(long, value_parser = parse_duration)]
        budget: Option<Duration>,
        #[command(flatten)]
        peers: PeerArgs,
    },
    /// Time each sampler's ask (with every suggestion of a trial) once its study holds N
    /// finished trials on a sphere; appends one JSON line per (sampler, N) not yet measured,
    /// then prints the whole file's ask-time tables (those of `report --ask-time`).
    AskTime {
        /// Samplers, as for `run`.
        #[arg(long, value_delimiter = ';', default_value = "tpe")]
        samplers: Vec<String>,
        /// Finished trials in the study (comma list).
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        n: Vec<u64>,
        /// Float parameters per trial.
        #[arg(long, default_value_t = 10)]
        dim: usize,
        /// Timed asks per (sampler, N).
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        /// The ask-time file (JSON Lines).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        peers: PeerArgs,
    },
    /// Simulate W workers on a simulated clock running the multi-fidelity problems step by
    /// step through the real study, sampler and pruner; appends one JSON line per finished
    /// trial (labelled `sampler+pruner@workers`) for every run not yet in the file, then
    /// prints the whole file's simulated report.
    Simulate {
        /// Multi-fidelity problems (comma list): mfh3_good, mfh3_moderate, mfh3_bad,
        /// mfh3_terrible, the same for mfh6, branin_mf, lc_hartmann6, counting_ones_8,
        /// counting_ones_32 (all of these by default); digits_net (trains real networks);
        /// lcbench_<task> or lcbench for the six LCBench tasks (feature `lcbench`, --data).
        #[arg(long, value_delimiter = ',')]
        problems: Vec<String>,
        /// The benchmark data folder (the one holding `yahpo/`), for the LCBench problems.
        #[arg(long, env = "FERROTUNE_BENCH_DATA")]
        data: Option<PathBuf>,
        /// Samplers, as for `run`: ferrotune's, or peers (optuna-random, optuna-tpe, …) that
        /// run with their own package's pruners (optuna-tpe with `median` runs Optuna's
        /// MedianPruner, labelled `optuna-tpe+optuna-median@W`; `nop` is Optuna's NopPruner).
        #[arg(long, value_delimiter = ';', default_value = "random,tpe")]
        samplers: Vec<String>,
        /// Pruners (comma list outside JSON, `;` between): nop, median, successive_halving
        /// (sh, asha), hyperband, wilcoxon, or a JSON pruner spec (ferrotune's samplers only).
        #[arg(long, value_delimiter = ';', default_value = "nop,successive_halving")]
        pruners: Vec<String>,
        /// Simulated worker counts (comma list).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        workers: Vec<u32>,
        /// Seeds 0..N.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Draw N fresh seeds instead of 0..N (printed, and kept in the records), for
        /// estimates that do not depend on one fixed set of seeds.
        #[arg(long)]
        random_seeds: bool,
        /// Budget per run in full-fidelity equivalents (steps started / maximum steps).
        #[arg(long, default_value_t = 50.0)]
        budget_fe: f64,
        /// The results file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        peers: PeerArgs,
    },
    /// Simulate W workers running pause-and-resume schedulers (synchronous SHA, Hyperband,
    /// ASHA with promotion, BOHB, PBT, PB2) and their stopping-only or plain peers (random
    /// search, ASHA as a pruner) through the real study, with real checkpoint files, on a
    /// simulated clock; appends one JSON line per run not yet in the file, then prints the
    /// whole file's report (idle time, final values, BOHB's speed-up, PBT against random
    /// search with the same compute).
    Schedule {
        /// Problems (comma list): any multi-fidelity problem of `simulate` (lc_hartmann6,
        /// mfh6_good, counting_ones_8, …; digits_net trains real networks with real
        /// checkpoints), and the problems with training state for PBT and PB2:
        /// pbt_quadratic (Jaderberg et al.'s toy) and digits_pbt (the digits network, fixed
        /// architecture, tuned optimizer).
        #[arg(long, value_delimiter = ',', required = true)]
        problems: Vec<String>,
        /// The benchmark data folder (the one holding `yahpo/`), for the LCBench problems.
        #[arg(long, env = "FERROTUNE_BENCH_DATA")]
        data: Option<PathBuf>,
        /// Contenders (comma list): random, sync_sha, hyperband, asha_stopping,
        /// asha_promotion, bohb, pbt, pb2, hyperband_overlap, bohb_overlap (the last two with
        /// up to 4 brackets at once; PBT and PB2 only run on problems with training state;
        /// they run until their population completes, whatever --budget-fe says).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "random,sync_sha,hyperband,asha_stopping,asha_promotion,bohb"
        )]
        schedules: Vec<String>,
        /// Simulated worker counts (comma list).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        workers: Vec<u32>,
        /// Seeds 0..N.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Budget per run in full-fidelity equivalents (steps started / maximum steps);
        /// random search runs at most this many whole trials.
        #[arg(long, default_value_t = 30.0)]
        budget_fe: f64,
        /// The results file (one JSON line per run).
        #[arg(long)]
        out: PathBuf,
        /// Also write one SVG plot per problem and worker count into this directory.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Print the report of a `schedule` results file (several files are read as one), and
    /// optionally write its plots.
    ScheduleReport {
        /// The results files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The report's heading.
        #[arg(long, default_value = SCHEDULE_TITLE)]
        title: String,
        /// Also write one SVG plot per problem and worker count into this directory.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Print the markdown report of a results file: regret per problem, average ranks,
    /// ferrotune vs peers (Mann–Whitney U, Holm-corrected) and, optionally, ask times.
    Report {
        /// The results file.
        file: PathBuf,
        /// An ask-time file (from `ask-time`) to add the ask-time tables.
        #[arg(long)]
        ask_time: Option<PathBuf>,
        /// Also write one SVG plot per problem into this directory (`<problem>.svg`).
        #[arg(long)]
        svg: Option<PathBuf>,
        /// The benchmark data folder, for the tabular problems' optima (their regret);
        /// without it they are reported by their best value.
        #[arg(long, env = "FERROTUNE_BENCH_DATA")]
        data: Option<PathBuf>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 90s, 20m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in `{s}`; use s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// Where the peers' driver and its Python are.
#[derive(clap::Args, Debug)]
struct PeerArgs {
    /// The Python that runs the peers' driver [default: target/peers-venv/bin/python if it
    /// exists, else python3].
    #[arg(long)]
    python: Option<PathBuf>,
    /// The peers' driver script [default: bench/peers/optuna_driver.py].
    #[arg(long)]
    driver: Option<PathBuf>,
}

impl PeerArgs {
    fn config(self) -> PeerConfig {
        let default = PeerConfig::default();
        PeerConfig {
            python: self.python.unwrap_or(default.python),
            driver: self.driver.unwrap_or(default.driver),
        }
    }
}

/// The items of a `;`-separated list of groups, each a JSON spec or a comma list.
fn items(groups: &[String]) -> Vec<&str> {
    groups
        .iter()
        .flat_map(|s| {
            if s.trim_start().starts_with('{') {
                vec![s.as_str()]
            } else {
                s.split(',').filter(|t| !t.trim().is_empty()).collect()
            }
        })
        .collect()
}

/// The simulated runs' settings: every sampler × pruner × worker count; a peer sampler runs
/// with its package's pruner of the same name ([`simulate::peer_pruner`]).
fn sim_configs(
    samplers: &[String],
    pruners: &[String],
    workers: &[u32],
    budget_fe: f64,
) -> anyhow::Result<Vec<SimConfig>> {
    if !(budget_fe.is_finite() && budget_fe > 0.0) {
        bail!("--budget-fe must be a positive number, not {budget_fe}");
    }
    if workers.is_empty() || workers.contains(&0) {
        bail!("--workers needs counts of at least 1");
    }
    let pruners = items(pruners);
    let mut configs = Vec::new();
    for contender in contenders(samplers)? {
        for &pruner in &pruners {
            let (sampler_label, pruner_label, engine) = match &contender {
                Contender::Ferrotune { label, spec } => {
                    let (pruner_label, pruner) = simulate::parse_pruner(pruner)?;
                    let engine = SimEngine::Ferrotune {
                        sampler: spec.clone(),
                        pruner,
                    };
                    (label.clone(), pruner_label, engine)
                }
                Contender::Peer { label } => {
                    let pruner_label = simulate::peer_pruner(label, pruner)?;
                    (label.clone(), pruner_label, SimEngine::Peer)
                }
            };
            for &w in workers {
                configs.push(SimConfig {
                    sampler_label: sampler_label.clone(),
                    pruner_label: pruner_label.clone(),
                    engine: engine.clone(),
                    workers: w,
                    budget_fe,
                });
            }
        }
    }
    let mut labels: Vec<String> = configs.iter().map(SimConfig::label).collect();
    labels.sort();
    if let Some(pair) = labels.windows(2).find(|p| p[0] == p[1]) {
        bail!(
            "two runs are labelled `{}`; give each sampler and pruner once",
            pair[0]
        );
    }
    Ok(configs)
}

/// The samplers of `--samplers`: `;`-separated groups, each a JSON spec or a comma list.
fn contenders(samplers: &[String]) -> anyhow::Result<Vec<Contender>> {
    let contenders = items(samplers)
        .into_iter()
        .map(Contender::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if contenders.is_empty() {
        bail!("give at least one sampler");
    }
    Ok(contenders)
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The seeds of a command: 0..n, or `n` fresh ones (printed) with `--random-seeds`.
fn seeds_to_run(n: u64, random: bool) -> Vec<u64> {
    if random {
        let drawn = fresh_seeds(n);
        eprintln!("random seeds: {drawn:?}");
        drawn
    } else {
        (0..n).collect()
    }
}

/// `n` seeds from the clock and the process id, spread by SplitMix64 (Steele, Lea & Flood,
/// "Fast splittable pseudorandom number generators", OOPSLA 2014).
fn fresh_seeds(n: u64) -> Vec<u64> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut state = nanos ^ (u64::from(std::process::id()) << 32);
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// The default heading of the `schedule` report.
const SCHEDULE_TITLE: &str = "Schedulers on simulated workers";

/// Prints the report of the `schedule` results in `files` under `title` and writes their
/// plots into `svg`.
fn schedule_report(
    files: &[PathBuf],
    title: &str,
    svg: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut runs: Vec<SchedRun> = Vec::new();
    for file in files {
        runs.extend(report::read_jsonl::<SchedRun>(file)?);
    }
    print!("{}", schedsim::sched_markdown(&runs, title));
    if let Some(dir) = svg {
        let written = report::write_plots(schedsim::plots(&runs), dir)
            .with_context(|| format!("cannot write the plots into {}", dir.display()))?;
        eprintln!("{} plot(s) written to {}", written.len(), dir.display());
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            problems,
            data,
            cache,
            samplers,
            seeds,
            random_seeds,
            trials,
            out,
            budget,
            peers,
        } => {
            let chosen = find_problems(&problems, data.as_deref(), cache.as_deref())?;
            let contenders = contenders(&samplers)?;
            let seeds = seeds_to_run(seeds, random_seeds);
            let progress = run_all(
                &chosen,
                &contenders,
                &seeds,
                trials,
                &out,
                budget,
                &peers.config(),
            )?;
            eprintln!(
                "{} run(s) done, {} already in {}, {} left for a later call",
                progress.ran,
                progress.skipped,
                out.display(),
                progress.left
            );
        }
        Command::AskTime {
            samplers,
            n,
            dim,
            repeats,
            out,
            peers,
        } => {
            let contenders = contenders(&samplers)?;
            let progress = ask_time_all(&contenders, &n, dim, repeats, &out, &peers.config())?;
            eprintln!(
                "{} measurement(s) done, {} already in {}",
                progress.ran,
                progress.skipped,
                out.display()
            );
            let records: Vec<AskTimeRecord> = report::read_jsonl(&out)?;
            print!("{}", report::ask_time_markdown(&records));
        }
        Command::Simulate {
            problems,
            data,
            samplers,
            pruners,
            workers,
            seeds,
            random_seeds,
            budget_fe,
            out,
            peers,
        } => {
            let chosen = find_fidelity_problems(&problems, data.as_deref())?;
            let configs = sim_configs(&samplers, &pruners, &workers, budget_fe)?;
            let seeds = seeds_to_run(seeds, random_seeds);
            let progress = simulate_all(&chosen, &configs, &seeds, &out, &peers.config())?;
            eprintln!(
                "{} simulated run(s) done, {} already in {}",
                progress.ran,
                progress.skipped,
                out.display()
            );
            let records: Vec<Record> = report::read_jsonl(&out)?;
            print!("{}", simulate::simulate_markdown(&records));
        }
        Command::Schedule {
            problems,
            data,
            schedules,
            workers,
            seeds,
            budget_fe,
            out,
            svg,
        } => {
            if !(budget_fe.is_finite() && budget_fe > 0.0) {
                bail!("--budget-fe must be a positive number, not {budget_fe}");
            }
            if workers.is_empty() || workers.contains(&0) {
                bail!("--workers needs counts of at least 1");
            }
            let chosen = find_trainables(&problems, data.as_deref())?;
            let mut configs = Vec::new();
            for name in schedules.iter().filter(|s| !s.trim().is_empty()) {
                let schedule = Schedule::parse(name)?;
                for &w in &workers {
                    configs.push(SchedConfig {
                        schedule,
                        workers: w,
                        budget_fe: (!schedule.is_population()).then_some(budget_fe),
                    });
                }
            }
            let seeds: Vec<u64> = (0..seeds).collect();
            let progress = schedsim::run_all(&chosen, &configs, &seeds, &out)?;
            eprintln!(
                "{} scheduled run(s) done, {} already in {}{}",
                progress.ran,
                progress.skipped,
                out.display(),
                if progress.not_applicable > 0 {
                    " (PBT and PB2 skipped on problems without training state)"
                } else {
                    ""
                }
            );
            schedule_report(&[out], SCHEDULE_TITLE, svg.as_deref())?;
        }
        Command::ScheduleReport { files, title, svg } => {
            schedule_report(&files, &title, svg.as_deref())?;
        }
        Command::Report {
            file,
            ask_time,
            svg,
            data,
        } => {
            let all: Vec<Record> = report::read_jsonl(&file)?;
            let (simulated, records): (Vec<Record>, Vec<Record>) =
                all.into_iter().partition(Record::is_simulated);
            print!("{}", simulate::simulate_markdown(&simulated));
            let ask_times = match &ask_time {
                Some(path) => report::read_jsonl(path)?,
                None => Vec::new(),
            };
            let optima = ferrotune_bench::problem::known_optima(
                records.iter().map(|r| r.problem.as_str()),
                data.as_deref(),
            )?;
            if !records.is_empty() || simulated.is_empty() {
                print!("{}", report::markdown_with(&records, &optima, &ask_times));
            }
            if let Some(dir) = svg {
                let mut plots = report::plots(&records, &optima);
                plots.extend(simulate::plots(&simulated));
                let written = report::write_plots(plots, &dir)
                    .with_context(|| format!("cannot write the plots into {}", dir.display()))?;
                eprintln!("{} plot(s) written to {}", written.len(), dir.display());
            }
        }
    }
    Ok(())
}
