//! The harness: runs samplers on problems for N trials × R seeds and appends one JSON Lines
//! record per trial, in a versioned format the multi-fidelity work will extend. Runs already
//! in the output file are skipped, so an interrupted comparison resumes where it stopped,
//! and a time budget stops it between runs.

use crate::problem::Problem;
use ferrotune::{PrunerSpec, SamplerSpec, Study, TrialState};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The record format's version; bump it when a field changes meaning.
pub const RECORD_VERSION: u32 = 1;

/// One trial of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`RECORD_VERSION`] of the writer.
    pub version: u32,
    /// The problem's name.
    pub problem: String,
    /// The sampler's label (a short name; see [`sampler_label`]).
    pub sampler: String,
    /// The run's seed.
    pub seed: u64,
    /// The trial number.
    pub trial: u64,
    /// The trial's final state.
    pub state: TrialState,
    /// Its objective value, when Complete.
    pub value: Option<f64>,
    /// The best value so far in the run (after this trial).
    pub best_so_far: Option<f64>,
    /// Milliseconds spent in ferrotune for this trial (ask, sampling, tell), objective
    /// excluded.
    pub overhead_ms: f64,
}

/// The time one sampler takes to ask for (and sample) a new trial once the study holds
/// `n_trials` finished trials. Written one per line to its own JSON Lines file, by the
/// Rust harness for ferrotune and by `bench/peers/optuna_driver.py` for the peers, so the
/// report compares them measured in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AskTimeRecord {
    /// [`RECORD_VERSION`] of the writer.
    pub version: u32,
    /// Always `"ask_time"`, so the record's kind is visible in the file.
    pub kind: String,
    /// The sampler's label (`tpe`, `tpe-univariate`, `optuna-tpe`, `rustuna-tpe`, …).
    pub sampler: String,
    /// Finished trials in the study when the asks were timed.
    pub n_trials: u64,
    /// Float parameters per trial (the problem is a `dim`-dimensional sphere).
    pub dim: usize,
    /// Milliseconds of each timed ask (ask + every suggestion of the trial).
    pub ms: Vec<f64>,
    /// How the history was built: `add_trial` (seeded directly) or `optimize` (asked and
    /// told up to `n_trials`, for peers without a way to add finished trials).
    pub history: String,
}

/// A short label for a sampler spec (`random`, `qmc`, `tpe`, …).
pub fn sampler_label(spec: &SamplerSpec) -> String {
    spec.name().to_owned()
}

/// The runs (problem, sampler, seed) already complete in a results file.
pub fn completed_runs(
    path: &Path,
    n_trials: u64,
) -> std::io::Result<HashSet<(String, String, u64)>> {
    let mut trials_per_run = std::collections::HashMap::new();
    if !path.exists() {
        return Ok(HashSet::new());
    }
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        let line = line?;
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            *trials_per_run
                .entry((r.problem, r.sampler, r.seed))
                .or_insert(0u64) += 1;
        }
    }
    Ok(trials_per_run
        .into_iter()
        .filter(|(_, n)| *n >= n_trials)
        .map(|(k, _)| k)
        .collect())
}

/// Runs `spec` on `problem` for `n_trials` with `seed`; returns one record per trial.
pub fn run_one(
    problem: &dyn Problem,
    spec: &SamplerSpec,
    seed: u64,
    n_trials: u64,
) -> ferrotune::Result<Vec<Record>> {
    let study = Study::builder()
        .sampler(spec.clone())
        .pruner(PrunerSpec::Nop)
        .seed(seed)
        .build()?;
    let mut records = Vec::with_capacity(n_trials as usize);
    let mut best: Option<f64> = None;
    for _ in 0..n_trials {
        let start = Instant::now();
        let mut trial = study.ask()?;
        problem.suggest(&mut trial)?;
        let sampled = start.elapsed();
        let noise_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ trial.number();
        let value = problem.evaluate(&trial.frozen().params, noise_seed);
        let tell_start = Instant::now();
        let done = study.tell(trial, value)?;
        let overhead = sampled + tell_start.elapsed();
        if done.state == TrialState::Complete {
            best = Some(best.map_or(value, |b: f64| b.min(value)));
        }
        records.push(Record {
            version: RECORD_VERSION,
            problem: problem.name(),
            sampler: sampler_label(spec),
            seed,
            trial: done.number,
            state: done.state,
            value: done.value(),
            best_so_far: best,
            overhead_ms: overhead.as_secs_f64() * 1e3,
        });
    }
    Ok(records)
}

/// What [`run_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Runs executed now.
    pub ran: usize,
    /// Runs found complete in the file and skipped.
    pub skipped: usize,
    /// Runs left because the time budget ran out.
    pub left: usize,
}

/// Runs every (problem, sampler, seed) not yet in `out`, appending each run's records when
/// it finishes (so a killed harness never leaves half a run), until `budget` is spent.
pub fn run_all(
    problems: &[Box<dyn Problem>],
    samplers: &[SamplerSpec],
    seeds: &[u64],
    n_trials: u64,
    out: &Path,
    budget: Option<Duration>,
) -> Result<Progress, HarnessError> {
    let done = completed_runs(out, n_trials)?;
    let start = Instant::now();
    let mut progress = Progress::default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    for problem in problems {
        for spec in samplers {
            for &seed in seeds {
                let key = (problem.name(), sampler_label(spec), seed);
                if done.contains(&key) {
                    progress.skipped += 1;
                    continue;
                }
                if budget.is_some_and(|b| start.elapsed() >= b) {
                    progress.left += 1;
                    continue;
                }
                let records = run_one(problem.as_ref(), spec, seed, n_trials)?;
                let mut text = String::new();
                for r in &records {
                    text.push_str(&serde_json::to_string(r)?);
                    text.push('\n');
                }
                file.write_all(text.as_bytes())?;
                file.flush()?;
                progress.ran += 1;
            }
        }
    }
    Ok(progress)
}

/// Errors of the harness: I/O, JSON, or ferrotune itself.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Reading or writing the results file failed.
    #[error("results file: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be encoded.
    #[error("record: {0}")]
    Json(#[from] serde_json::Error),
    /// ferrotune failed.
    #[error(transparent)]
    Ferrotune(#[from] ferrotune::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SYNTHETIC;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("results.jsonl")
    }

    fn two_problems() -> Vec<Box<dyn Problem>> {
        vec![Box::new(SYNTHETIC[0]), Box::new(SYNTHETIC[1])]
    }

    #[test]
    fn runs_are_recorded_resumed_and_reported() {
        let out = temp("resume");
        let problems = two_problems();
        let samplers = [SamplerSpec::Random];
        let p = run_all(&problems, &samplers, &[0, 1], 30, &out, None).unwrap();
        assert_eq!(
            p,
            Progress {
                ran: 4,
                skipped: 0,
                left: 0
            }
        );
        let again = run_all(&problems, &samplers, &[0, 1, 2], 30, &out, None).unwrap();
        assert_eq!(
            again,
            Progress {
                ran: 2,
                skipped: 4,
                left: 0
            },
            "only the new seed runs"
        );
        let records: Vec<Record> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2 * 3 * 30);
        for run in records.chunks(30) {
            let mut best = f64::INFINITY;
            for (i, r) in run.iter().enumerate() {
                assert_eq!(r.trial, i as u64);
                best = best.min(r.value.unwrap());
                assert_eq!(r.best_so_far, Some(best));
                assert_eq!(r.version, RECORD_VERSION);
            }
        }
        // The same seed gives the same run.
        let rerun = run_one(problems[0].as_ref(), &samplers[0], 0, 30).unwrap();
        let first: Vec<_> = records
            .iter()
            .filter(|r| r.problem == problems[0].name() && r.seed == 0)
            .collect();
        assert_eq!(first.len(), 30);
        for (a, b) in rerun.iter().zip(first) {
            assert_eq!(a.value.map(f64::to_bits), b.value.map(f64::to_bits));
        }
        let md = crate::report::markdown(&records);
        assert!(
            md.contains("### branin") && md.contains("| random | 3 | 25: "),
            "{md}"
        );
    }

    #[test]
    fn a_spent_budget_leaves_runs_for_later() {
        let out = temp("budget");
        let one: Vec<Box<dyn Problem>> = vec![Box::new(SYNTHETIC[0])];
        let p = run_all(
            &one,
            &[SamplerSpec::Random],
            &[0, 1, 2],
            10,
            &out,
            Some(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(
            p,
            Progress {
                ran: 0,
                skipped: 0,
                left: 3
            }
        );
    }
}
