//! Summaries of harness results: per problem and sampler, the median and interquartile range
//! of the best value at fixed budgets, the time ferrotune spent per trial, and each sampler's
//! average rank across problems, as a markdown table.

use crate::harness::Record;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The budgets at which best-so-far values are compared.
pub const CHECKPOINTS: [u64; 4] = [25, 50, 100, 200];

/// The `q`-quantile (0–1) of sorted values, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// One (problem, sampler) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Runs (seeds) found.
    pub runs: usize,
    /// Per checkpoint reached: (budget, median, lower quartile, upper quartile) of the best
    /// value after that many trials.
    pub at: Vec<(u64, f64, f64, f64)>,
    /// Mean milliseconds ferrotune spent per trial.
    pub overhead_ms: f64,
}

/// Groups records by problem, then sampler.
pub fn summarize(records: &[Record]) -> BTreeMap<String, BTreeMap<String, Cell>> {
    let mut runs: BTreeMap<(String, String), BTreeMap<u64, Vec<&Record>>> = BTreeMap::new();
    for r in records {
        runs.entry((r.problem.clone(), r.sampler.clone()))
            .or_default()
            .entry(r.seed)
            .or_default()
            .push(r);
    }
    let mut out: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for ((problem, sampler), by_seed) in runs {
        let mut at = Vec::new();
        for budget in CHECKPOINTS {
            let mut bests: Vec<f64> = by_seed
                .values()
                .filter_map(|trials| {
                    trials
                        .iter()
                        .find(|r| r.trial + 1 == budget)
                        .and_then(|r| r.best_so_far)
                })
                .collect();
            if bests.len() == by_seed.len() && !bests.is_empty() {
                bests.sort_by(f64::total_cmp);
                at.push((
                    budget,
                    quantile(&bests, 0.5),
                    quantile(&bests, 0.25),
                    quantile(&bests, 0.75),
                ));
            }
        }
        let all: Vec<f64> = by_seed.values().flatten().map(|r| r.overhead_ms).collect();
        let overhead_ms = all.iter().sum::<f64>() / all.len().max(1) as f64;
        out.entry(problem).or_default().insert(
            sampler,
            Cell {
                runs: by_seed.len(),
                at,
                overhead_ms,
            },
        );
    }
    out
}

/// The markdown report: a table per problem, then the average rank of each sampler by its
/// median best value at the largest common checkpoint (1 = best).
pub fn markdown(records: &[Record]) -> String {
    let summary = summarize(records);
    let mut md = String::new();
    let mut ranks: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (problem, cells) in &summary {
        let _ = writeln!(md, "### {problem}\n");
        let _ = writeln!(
            md,
            "| sampler | runs | best after N trials: median [IQR] | ms/trial |"
        );
        let _ = writeln!(md, "|---|---|---|---|");
        for (sampler, cell) in cells {
            let at: Vec<String> = cell
                .at
                .iter()
                .map(|(n, med, lo, hi)| format!("{n}: {med:.4} [{lo:.4}, {hi:.4}]"))
                .collect();
            let _ = writeln!(
                md,
                "| {sampler} | {} | {} | {:.3} |",
                cell.runs,
                at.join("; "),
                cell.overhead_ms
            );
        }
        md.push('\n');
        let common = cells.values().map(|c| c.at.len()).min().unwrap_or(0);
        if common == 0 {
            continue;
        }
        let mut finals: Vec<(&String, f64)> =
            cells.iter().map(|(s, c)| (s, c.at[common - 1].1)).collect();
        finals.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (rank, (sampler, _)) in finals.iter().enumerate() {
            ranks
                .entry((*sampler).clone())
                .or_default()
                .push(rank as f64 + 1.0);
        }
    }
    let _ = writeln!(md, "### average rank (1 = best median)\n");
    let _ = writeln!(md, "| sampler | average rank | problems |");
    let _ = writeln!(md, "|---|---|---|");
    for (sampler, r) in &ranks {
        let _ = writeln!(
            md,
            "| {sampler} | {:.2} | {} |",
            r.iter().sum::<f64>() / r.len() as f64,
            r.len()
        );
    }
    md
}
