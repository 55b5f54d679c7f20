//! `ferrotune-bench`: run samplers on the benchmark problems and report the results.
//!
//! ```text
//! ferrotune-bench run --problems branin,hartmann6 --samplers random,qmc --seeds 10 \
//!     --trials 100 --out bench/results.jsonl --budget 20m
//! ferrotune-bench report bench/results.jsonl
//! ```

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferrotune::SamplerSpec;
use ferrotune_bench::harness::{run_all, Record};
use ferrotune_bench::{report, suite, Problem};
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
        /// Problems (comma list); all synthetic ones by default.
        #[arg(long, value_delimiter = ',')]
        problems: Vec<String>,
        /// Samplers: random, qmc, halton, or JSON specs (comma list outside JSON).
        #[arg(long, value_delimiter = ';', default_value = "random")]
        samplers: Vec<String>,
        /// Seeds 0..N.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Trials per run.
        #[arg(long, default_value_t = 100)]
        trials: u64,
        /// The results file.
        #[arg(long)]
        out: PathBuf,
        /// Stop starting runs after this long (e.g. 90s, 20m, 2h).
        #[arg(long, value_parser = parse_duration)]
        budget: Option<Duration>,
    },
    /// Print the markdown report of a results file.
    Report {
        /// The results file.
        file: PathBuf,
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

fn sampler(name: &str) -> anyhow::Result<SamplerSpec> {
    let json = match name.trim() {
        j if j.starts_with('{') => j.to_owned(),
        "random" => r#"{"type":"random"}"#.to_owned(),
        "qmc" | "sobol" => r#"{"type":"qmc","kind":"sobol"}"#.to_owned(),
        "halton" => r#"{"type":"qmc","kind":"halton"}"#.to_owned(),
        other => format!(r#"{{"type":"{other}"}}"#),
    };
    serde_json::from_str(&json).with_context(|| format!("unknown sampler `{name}`"))
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            problems,
            samplers,
            seeds,
            trials,
            out,
            budget,
        } => {
            let chosen: Vec<Box<dyn Problem>> = if problems.is_empty() {
                suite()
            } else {
                problems
                    .iter()
                    .map(|p| {
                        suite()
                            .into_iter()
                            .find(|s| s.name() == *p)
                            .with_context(|| {
                                let names: Vec<String> = suite().iter().map(|s| s.name()).collect();
                                format!(
                                    "unknown problem `{p}`; the problems are {}",
                                    names.join(", ")
                                )
                            })
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let specs = samplers
                .iter()
                .flat_map(|s| {
                    if s.trim_start().starts_with('{') {
                        vec![s.as_str()]
                    } else {
                        s.split(',').collect()
                    }
                })
                .map(sampler)
                .collect::<anyhow::Result<Vec<_>>>()?;
            if specs.is_empty() {
                bail!("give at least one sampler");
            }
            let seeds: Vec<u64> = (0..seeds).collect();
            let progress = run_all(&chosen, &specs, &seeds, trials, &out, budget)?;
            eprintln!(
                "{} run(s) done, {} already in {}, {} left for a later call",
                progress.ran,
                progress.skipped,
                out.display(),
                progress.left
            );
        }
        Command::Report { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let records: Vec<Record> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .with_context(|| format!("{} holds a line that is not a record", file.display()))?;
            print!("{}", report::markdown(&records));
        }
    }
    Ok(())
}
