//! Summaries of harness results as a markdown report:
//!
//! - per problem and sampler, the median and interquartile range of the simple regret (best
//!   value so far minus the known optimum; the best value itself where no optimum is known)
//!   at fixed budgets, and the time ferrotune spent per trial;
//! - each sampler's average rank across problems;
//! - "ferrotune vs peers": for every ferrotune sampler `X` that ran beside `optuna-X` or
//!   `rustuna-X`, one-sided Mann–Whitney U tests per problem, Holm-corrected across problems,
//!   counted as wins, ties and losses (see [`crate::stats`]);
//! - with an ask-time file, the median time per ask of each sampler by history size, and how
//!   many times faster ferrotune is than each peer measured in the same run;
//!
//! and, separately, one SVG plot per problem of the regret curves ([`write_svgs`]).

use crate::harness::{AskTimeRecord, Record};
use crate::problem::Problem;
use crate::stats::{self, median, quartiles, Alternative};
use crate::svg;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The budgets at which best-so-far values are compared.
pub const CHECKPOINTS: [u64; 4] = [25, 50, 100, 200];

/// The budgets at which ferrotune is tested against its peers (those a run reached).
pub const COMPARED_AT: [u64; 2] = [100, 200];

/// The family-wise significance level of the peer comparison: within one (pairing, budget),
/// the chance of calling any problem a win or a loss by luck is at most this.
pub const ALPHA: f64 = 0.05;

/// Fewer runs than this on either side and a problem is not tested ("n/a").
pub const MIN_RUNS: usize = 2;

/// Label prefixes of peers' samplers: `optuna-tpe` is Optuna's counterpart of `tpe`.
pub const PEER_PREFIXES: [&str; 2] = ["optuna-", "rustuna-"];

/// Known optima by problem name; problems absent or mapped to `None` are reported by their
/// best value instead of their regret.
pub type Optima = BTreeMap<String, Option<f64>>;

/// The optima of `problems` (typically [`crate::suite`]), for [`markdown_with`] and
/// [`write_svgs`].
pub fn optima(problems: &[Box<dyn Problem>]) -> Optima {
    problems.iter().map(|p| (p.name(), p.optimum())).collect()
}

/// The runs of one (problem, sampler): seed → trial → best so far, and the overhead.
#[derive(Default)]
struct Group {
    seeds: BTreeMap<u64, BTreeMap<u64, Option<f64>>>,
    overhead_sum: f64,
    overhead_n: usize,
}

impl Group {
    /// The per-seed value after `budget` trials, minus `offset` (the optimum, or 0), for the
    /// seeds that reached it with at least one complete trial.
    fn at(&self, budget: u64, offset: f64) -> Vec<f64> {
        let Some(last) = budget.checked_sub(1) else {
            return Vec::new();
        };
        self.seeds
            .values()
            .filter_map(|trials| trials.get(&last).copied().flatten())
            .map(|best| best - offset)
            .collect()
    }
}

/// Problem → sampler → runs.
type Runs = BTreeMap<String, BTreeMap<String, Group>>;

/// Every sampler label that ran on some problem.
fn labels(runs: &Runs) -> BTreeSet<&str> {
    runs.values()
        .flat_map(|s| s.keys().map(String::as_str))
        .collect()
}

fn group(records: &[Record]) -> Runs {
    let mut runs = Runs::new();
    for r in records {
        let g = runs
            .entry(r.problem.clone())
            .or_default()
            .entry(r.sampler.clone())
            .or_default();
        // A run repeated with the same seed (e.g. resumed with more trials) is deterministic:
        // the later record of a trial replaces the earlier one.
        g.seeds
            .entry(r.seed)
            .or_default()
            .insert(r.trial, r.incumbent_expected.or(r.best_so_far));
        g.overhead_sum += r.overhead_ms;
        g.overhead_n += 1;
    }
    runs
}

/// The problem's finite optimum, if `optima` knows one.
fn optimum(optima: &Optima, problem: &str) -> Option<f64> {
    optima
        .get(problem)
        .copied()
        .flatten()
        .filter(|v| v.is_finite())
}

/// What the numbers of a problem are: "simple regret" or "best value".
fn quantity(optima: &Optima, problem: &str) -> &'static str {
    if optimum(optima, problem).is_some() {
        "simple regret"
    } else {
        "best value"
    }
}

/// One (problem, sampler) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Runs (seeds) found.
    pub runs: usize,
    /// Per checkpoint reached by every run: (budget, median, lower quartile, upper quartile)
    /// of the simple regret after that many trials (of the best value when the problem has
    /// no known optimum).
    pub at: Vec<(u64, f64, f64, f64)>,
    /// Mean milliseconds ferrotune spent per trial.
    pub overhead_ms: f64,
}

/// Groups records by problem, then sampler, and summarizes each group at the
/// [`CHECKPOINTS`]; `optima` turns best values into regrets.
pub fn summarize(records: &[Record], optima: &Optima) -> BTreeMap<String, BTreeMap<String, Cell>> {
    let mut out: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for (problem, samplers) in group(records) {
        let offset = optimum(optima, &problem).unwrap_or(0.0);
        for (sampler, g) in samplers {
            let mut at = Vec::new();
            for budget in CHECKPOINTS {
                let values = g.at(budget, offset);
                if values.len() == g.seeds.len() && !values.is_empty() {
                    let (med, lo, hi) = quartiles(values);
                    at.push((budget, med, lo, hi));
                }
            }
            out.entry(problem.clone()).or_default().insert(
                sampler,
                Cell {
                    runs: g.seeds.len(),
                    at,
                    overhead_ms: g.overhead_sum / g.overhead_n.max(1) as f64,
                },
            );
        }
    }
    out
}

/// Each sampler's average rank across problems, per checkpoint: sampler → budget →
/// (mean rank, problems ranked). On each problem the samplers that reached the budget (at
/// least two) are ranked by median (1 = lowest), ties sharing their mean rank
/// ([`stats::ranks`]).
pub fn average_ranks(
    summary: &BTreeMap<String, BTreeMap<String, Cell>>,
) -> BTreeMap<String, BTreeMap<u64, (f64, usize)>> {
    let mut sums: BTreeMap<String, BTreeMap<u64, (f64, usize)>> = BTreeMap::new();
    for cells in summary.values() {
        for budget in CHECKPOINTS {
            let medians: Vec<(&String, f64)> = cells
                .iter()
                .filter_map(|(s, c)| {
                    c.at.iter()
                        .find(|(n, ..)| *n == budget)
                        .map(|&(_, med, ..)| (s, med))
                })
                .collect();
            if medians.len() < 2 {
                continue;
            }
            let values: Vec<f64> = medians.iter().map(|m| m.1).collect();
            for ((sampler, _), rank) in medians.iter().zip(stats::ranks(&values)) {
                let e = sums
                    .entry((*sampler).clone())
                    .or_default()
                    .entry(budget)
                    .or_insert((0.0, 0));
                e.0 += rank;
                e.1 += 1;
            }
        }
    }
    for budgets in sums.values_mut() {
        for (sum, n) in budgets.values_mut() {
            *sum /= *n as f64;
        }
    }
    sums
}

/// The (ferrotune label, peer label) pairs among `samplers`: `X` with `optuna-X` and with
/// `rustuna-X` (see [`PEER_PREFIXES`]), in label order.
pub fn pairings<'a>(samplers: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let all: BTreeSet<&str> = samplers.into_iter().collect();
    let mut out = Vec::new();
    for &ours in &all {
        if PEER_PREFIXES.iter().any(|p| ours.starts_with(p)) {
            continue;
        }
        for prefix in PEER_PREFIXES {
            let peer = format!("{prefix}{ours}");
            if all.contains(peer.as_str()) {
                out.push((ours.to_owned(), peer));
            }
        }
    }
    out
}

/// The verdict on one problem of a peer comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// ferrotune's regret is significantly lower (Holm-adjusted p ≤ [`ALPHA`]).
    Win,
    /// Neither direction is significant.
    Tie,
    /// ferrotune's regret is significantly higher.
    Loss,
    /// Not tested: fewer than [`MIN_RUNS`] runs on a side reached the budget.
    NotAvailable,
}

impl Outcome {
    fn as_markdown(self) -> &'static str {
        match self {
            Outcome::Win => "**win**",
            Outcome::Tie => "tie",
            Outcome::Loss => "**loss**",
            Outcome::NotAvailable => "n/a",
        }
    }
}

/// One problem of a peer comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonRow {
    /// The problem.
    pub problem: String,
    /// Runs that reached the budget: (ferrotune's, the peer's).
    pub runs: (usize, usize),
    /// Median regret (best value without a known optimum) after the budget, per side;
    /// NaN without runs.
    pub medians: (f64, f64),
    /// Holm-adjusted p-value of H1 "ferrotune's regret is stochastically greater (worse)";
    /// `None` when not tested.
    pub p_worse: Option<f64>,
    /// Holm-adjusted p-value of H1 "ferrotune's regret is stochastically less (better)".
    pub p_better: Option<f64>,
    /// The verdict at [`ALPHA`].
    pub outcome: Outcome,
}

/// One family of tests: a ferrotune sampler against one peer after one budget, across the
/// problems both ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// ferrotune's sampler label (`tpe`).
    pub ferrotune: String,
    /// The peer's label (`optuna-tpe`).
    pub peer: String,
    /// Trials after which the regrets are compared.
    pub budget: u64,
    /// One row per problem, in name order.
    pub rows: Vec<ComparisonRow>,
}

impl Comparison {
    /// (wins, ties, losses, not tested).
    pub fn tally(&self) -> (usize, usize, usize, usize) {
        let count = |o: Outcome| self.rows.iter().filter(|r| r.outcome == o).count();
        (
            count(Outcome::Win),
            count(Outcome::Tie),
            count(Outcome::Loss),
            count(Outcome::NotAvailable),
        )
    }
}

/// Tests every ferrotune sampler against its peers ([`pairings`]) at each budget of
/// [`COMPARED_AT`] that both reached on some problem.
///
/// Per problem, the samples are the final regrets of all runs (seeds need not match) and two
/// one-sided Mann–Whitney U tests are made: H1 "ferrotune's regret is stochastically greater"
/// and H1 "… stochastically less". Each direction's p-values are Holm-corrected across the
/// tested problems of the family (one pairing, one budget), and a problem is a loss or a win
/// when the adjusted p-value of that direction is ≤ [`ALPHA`] (both cannot happen: the two
/// one-sided p-values sum to at least 1). Regret and best value differ by a constant per
/// problem, so the tests do not depend on the optima.
pub fn compare_peers(records: &[Record], optima: &Optima) -> Vec<Comparison> {
    let runs = group(records);
    let mut out = Vec::new();
    for (ours, peer) in pairings(labels(&runs)) {
        for budget in COMPARED_AT {
            let mut samples = Vec::new();
            for (problem, samplers) in &runs {
                let (Some(a), Some(b)) = (samplers.get(&ours), samplers.get(&peer)) else {
                    continue;
                };
                let offset = optimum(optima, problem).unwrap_or(0.0);
                samples.push((problem.clone(), a.at(budget, offset), b.at(budget, offset)));
            }
            if !samples
                .iter()
                .any(|(_, x, y)| !x.is_empty() && !y.is_empty())
            {
                continue;
            }
            out.push(Comparison {
                ferrotune: ours.clone(),
                peer: peer.clone(),
                budget,
                rows: test_family(samples),
            });
        }
    }
    out
}

/// One family of tests (see [`compare_peers`]): per problem, ferrotune's final values `x`
/// and the peer's `y` (smaller is better; `+∞` allowed), two one-sided Mann–Whitney U tests,
/// each direction Holm-corrected across the family's problems, and the verdict at
/// [`ALPHA`]. Problems with fewer than [`MIN_RUNS`] runs on a side are not tested.
pub fn test_family(samples: Vec<(String, Vec<f64>, Vec<f64>)>) -> Vec<ComparisonRow> {
    let mut rows = Vec::with_capacity(samples.len());
    let mut raw: Vec<(f64, f64)> = Vec::new(); // (p worse, p better); NaN = untested
    for (problem, x, y) in samples {
        let tested = if x.len() >= MIN_RUNS && y.len() >= MIN_RUNS {
            stats::mann_whitney_u(&x, &y, Alternative::Greater)
                .zip(stats::mann_whitney_u(&x, &y, Alternative::Less))
                .map(|(worse, better)| (worse.p, better.p))
        } else {
            None
        };
        raw.push(tested.unwrap_or((f64::NAN, f64::NAN)));
        rows.push(ComparisonRow {
            problem,
            runs: (x.len(), y.len()),
            medians: (median(&x), median(&y)),
            p_worse: None,
            p_better: None,
            outcome: Outcome::NotAvailable,
        });
    }
    let worse = stats::holm(&raw.iter().map(|p| p.0).collect::<Vec<_>>());
    let better = stats::holm(&raw.iter().map(|p| p.1).collect::<Vec<_>>());
    for ((row, w), b) in rows.iter_mut().zip(worse).zip(better) {
        if w.is_nan() || b.is_nan() {
            continue;
        }
        row.p_worse = Some(w);
        row.p_better = Some(b);
        row.outcome = if w <= ALPHA {
            Outcome::Loss
        } else if b <= ALPHA {
            Outcome::Win
        } else {
            Outcome::Tie
        };
    }
    rows
}

/// A number with about four significant digits, in scientific notation when very small or
/// large.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "–".to_owned()
        } else {
            x.to_string()
        };
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let a = x.abs();
    if (1e-3..1e5).contains(&a) {
        let decimals = (3.0 - a.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

/// Milliseconds per trial: four decimals (ferrotune's overhead is often well below 0.01 ms),
/// four significant digits from 10 ms on.
fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.4}")
    } else {
        num(ms)
    }
}

/// A p-value for a table.
fn pval(p: Option<f64>) -> String {
    match p {
        None => "–".to_owned(),
        Some(p) if p < 1e-4 => "<0.0001".to_owned(),
        Some(p) => format!("{p:.4}"),
    }
}

/// The markdown report without known optima or ask times: best values rather than regrets.
/// See [`markdown_with`].
pub fn markdown(records: &[Record]) -> String {
    markdown_with(records, &Optima::new(), &[])
}

/// The markdown report: a table per problem (simple regret where `optima` knows the
/// optimum, best value otherwise), the average ranks, the peer comparison
/// ([`compare_peers`]) and, when `ask_times` is not empty, the ask-time tables
/// ([`ask_time_markdown`]).
pub fn markdown_with(records: &[Record], optima: &Optima, ask_times: &[AskTimeRecord]) -> String {
    let summary = summarize(records, optima);
    let mut md = String::new();
    let _ = writeln!(md, "## Search quality\n");
    let _ = writeln!(
        md,
        "Simple regret is the best value found so far minus the problem's known optimum \
         (lower is better); on noisy problems (the tabular benchmarks' seeds, the noisy \
         synthetic ones) it is the noise-free value of the incumbent, the trial with the best \
         observed value, so lucky draws do not count. Problems without a known optimum show \
         the best value itself.\n"
    );
    for (problem, cells) in &summary {
        let _ = writeln!(md, "### {problem}\n");
        let _ = writeln!(
            md,
            "| sampler | runs | {} after N trials: median [IQR] | ms/trial |",
            quantity(optima, problem)
        );
        let _ = writeln!(md, "|---|---|---|---|");
        for (sampler, cell) in cells {
            let at: Vec<String> = cell
                .at
                .iter()
                .map(|&(n, med, lo, hi)| format!("{n}: {} [{}, {}]", num(med), num(lo), num(hi)))
                .collect();
            let _ = writeln!(
                md,
                "| {sampler} | {} | {} | {} |",
                cell.runs,
                at.join("; "),
                format_ms(cell.overhead_ms)
            );
        }
        md.push('\n');
    }

    let ranks = average_ranks(&summary);
    let budgets: BTreeSet<u64> = ranks.values().flat_map(|b| b.keys().copied()).collect();
    if !budgets.is_empty() {
        let _ = writeln!(
            md,
            "### average rank (1 = best median; ties share their mean rank; problems ranked in parentheses)\n"
        );
        let header: Vec<String> = budgets.iter().map(|b| format!("after {b}")).collect();
        let _ = writeln!(md, "| sampler | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(budgets.len()));
        for (sampler, by_budget) in &ranks {
            let cells: Vec<String> = budgets
                .iter()
                .map(|b| match by_budget.get(b) {
                    Some((mean, n)) => format!("{mean:.2} ({n})"),
                    None => "–".to_owned(),
                })
                .collect();
            let _ = writeln!(md, "| {sampler} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }

    peers_markdown(
        &mut md,
        &compare_peers(records, optima),
        "trials",
        |problem| optimum(optima, problem).is_some(),
    );
    if !ask_times.is_empty() {
        md.push_str(&ask_time_markdown(ask_times));
    }
    md
}

/// The "ferrotune vs peers" section: `unit` names what a comparison's budget counts
/// (`trials`), `has_regret` tells whether a problem's medians are regrets (a known
/// optimum) rather than best values.
pub fn peers_markdown(
    md: &mut String,
    comparisons: &[Comparison],
    unit: &str,
    has_regret: impl Fn(&str) -> bool,
) {
    let _ = writeln!(md, "## ferrotune vs peers\n");
    if comparisons.is_empty() {
        let _ = writeln!(
            md,
            "No pairing to compare: it needs a sampler `X` and its peer `optuna-X` or \
             `rustuna-X` on the same problems.\n"
        );
        return;
    }
    let _ = writeln!(
        md,
        "Per problem, two one-sided Mann–Whitney U tests (Mann & Whitney 1947; exact for small \
         samples without ties, else the normal approximation with tie and continuity \
         corrections) of the final regrets (best values where no optimum is known) of all runs: H1 \"ferrotune is worse\" and H1 \
         \"ferrotune is better\". Each direction is Holm–Bonferroni corrected (Holm 1979) \
         across the problems of one pairing and budget, at α = {ALPHA}. A problem is a \
         **loss** or a **win** when that direction is significant, a tie otherwise, n/a with \
         fewer than {MIN_RUNS} runs on a side.\n"
    );
    let _ = writeln!(
        md,
        "| ferrotune | peer | {unit} | wins | ties | losses | n/a |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for c in comparisons {
        let (w, t, l, na) = c.tally();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {w} | {t} | {l} | {na} |",
            c.ferrotune, c.peer, c.budget
        );
    }
    md.push('\n');
    for c in comparisons {
        let _ = writeln!(
            md,
            "### {} vs {} after {} {unit}\n",
            c.ferrotune, c.peer, c.budget
        );
        let _ = writeln!(
            md,
            "| problem | runs | median {} | median {} | p worse (Holm) | p better (Holm) | outcome |",
            c.ferrotune, c.peer
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        let mut unmarked_best = false;
        for r in &c.rows {
            let mark = if has_regret(&r.problem) {
                ""
            } else {
                unmarked_best = true;
                " \\*"
            };
            let _ = writeln!(
                md,
                "| {}{mark} | {} / {} | {} | {} | {} | {} | {} |",
                r.problem,
                r.runs.0,
                r.runs.1,
                num(r.medians.0),
                num(r.medians.1),
                pval(r.p_worse),
                pval(r.p_better),
                r.outcome.as_markdown()
            );
        }
        md.push('\n');
        if unmarked_best {
            let _ = writeln!(
                md,
                "\\* no known optimum: the medians are best values, not regrets.\n"
            );
        }
        let (w, t, l, na) = c.tally();
        let _ = writeln!(
            md,
            "{} vs {} after {} {unit}: {w} wins / {t} ties / {l} losses{}.\n",
            c.ferrotune,
            c.peer,
            c.budget,
            if na > 0 {
                format!(" ({na} n/a)")
            } else {
                String::new()
            }
        );
    }
}

/// The ask-time section: per dimension, a table of the median milliseconds per ask of each
/// sampler at each history size present, and a table of peer median ÷ ferrotune median for
/// every pairing ([`pairings`]), i.e. how many times faster ferrotune asked than the peer in
/// the same run (< 1: slower). All timed asks of a (sampler, size, dimension) are pooled.
pub fn ask_time_markdown(ask_times: &[AskTimeRecord]) -> String {
    type Cells = BTreeMap<String, BTreeMap<u64, Vec<f64>>>;
    let mut by_dim: BTreeMap<usize, (Cells, BTreeMap<String, BTreeSet<String>>)> = BTreeMap::new();
    for r in ask_times {
        let (cells, histories) = by_dim.entry(r.dim).or_default();
        cells
            .entry(r.sampler.clone())
            .or_default()
            .entry(r.n_trials)
            .or_default()
            .extend(r.ms.iter().copied().filter(|v| v.is_finite()));
        histories
            .entry(r.sampler.clone())
            .or_default()
            .insert(r.history.clone());
    }
    let mut md = String::new();
    for (dim, (cells, histories)) in &by_dim {
        let sizes: BTreeSet<u64> = cells.values().flat_map(|n| n.keys().copied()).collect();
        let medians: BTreeMap<&str, BTreeMap<u64, f64>> = cells
            .iter()
            .map(|(s, by_n)| {
                let m = by_n
                    .iter()
                    .filter(|(_, ms)| !ms.is_empty())
                    .map(|(n, ms)| (*n, median(ms)))
                    .collect();
                (s.as_str(), m)
            })
            .collect();
        let header: Vec<String> = sizes.iter().map(|n| format!("n = {n}")).collect();
        let _ = writeln!(
            md,
            "## Ask time ({dim} float parameters): median ms per ask with n finished trials\n"
        );
        let _ = writeln!(md, "| sampler | history | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(sizes.len()));
        for (sampler, by_n) in &medians {
            let row: Vec<String> = sizes
                .iter()
                .map(|n| by_n.get(n).map_or("–".to_owned(), |m| num(*m)))
                .collect();
            let history: Vec<&str> = histories
                .get(*sampler)
                .map(|h| h.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {sampler} | {} | {} |",
                history.join(", "),
                row.join(" | ")
            );
        }
        md.push('\n');
        let pairs = pairings(medians.keys().copied());
        if pairs.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "ferrotune vs peer: the peer's median ÷ ferrotune's median (how many times faster \
             ferrotune asks; below 1 it is slower).\n"
        );
        let _ = writeln!(md, "| ferrotune vs peer | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(sizes.len()));
        for (ours, peer) in pairs {
            let row: Vec<String> = sizes
                .iter()
                .map(|n| {
                    let a = medians.get(ours.as_str()).and_then(|m| m.get(n));
                    let b = medians.get(peer.as_str()).and_then(|m| m.get(n));
                    match (a, b) {
                        (Some(&a), Some(&b)) if a > 0.0 => format!("{}×", num(b / a)),
                        _ => "–".to_owned(),
                    }
                })
                .collect();
            let _ = writeln!(md, "| {ours} vs {peer} | {} |", row.join(" | "));
        }
        md.push('\n');
    }
    md
}

/// Per problem, the plot of each sampler's median regret (best value without a known
/// optimum) after each trial, with its interquartile range across seeds. A sampler keeps
/// its color in every plot (its index among all labels).
pub fn plots(records: &[Record], optima: &Optima) -> BTreeMap<String, svg::Plot> {
    let runs = group(records);
    let style: BTreeMap<&str, usize> = labels(&runs)
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, i))
        .collect();
    let mut out = BTreeMap::new();
    for (problem, samplers) in &runs {
        let offset = optimum(optima, problem).unwrap_or(0.0);
        let mut series = Vec::new();
        for (sampler, g) in samplers {
            let trials: BTreeSet<u64> = g.seeds.values().flat_map(|t| t.keys().copied()).collect();
            let points = trials
                .into_iter()
                .filter_map(|t| {
                    let values = g.at(t + 1, offset);
                    if values.is_empty() {
                        return None;
                    }
                    let (med, lo, hi) = quartiles(values);
                    Some(((t + 1) as f64, med, lo, hi))
                })
                .collect();
            series.push(svg::Series {
                label: sampler.clone(),
                style: style.get(sampler.as_str()).copied().unwrap_or(0),
                points,
            });
        }
        let what = quantity(optima, problem);
        out.insert(
            problem.clone(),
            svg::Plot {
                title: problem.clone(),
                subtitle: format!(
                    "{what}: median (line) and interquartile range (band) across seeds"
                ),
                x_label: "trials".to_owned(),
                y_label: if what == "simple regret" {
                    "simple regret (best − optimum)".to_owned()
                } else {
                    "best value".to_owned()
                },
                series,
            },
        );
    }
    out
}

/// A file name stem for a problem: ASCII letters, digits, `-`, `_` and `.` are kept, every
/// other character becomes `_` (`hpolib/naval` → `hpolib_naval`), and a leading `.` too, so
/// that no name escapes the directory or hides.
pub fn file_stem(problem: &str) -> String {
    let mut stem: String = problem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        stem.replace_range(0..0, "_");
    }
    stem
}

/// Writes `dir/<problem>.svg` for every problem ([`plots`], [`file_stem`]; two problems
/// whose stems collide get `-2`, `-3`, … appended), creating `dir` if needed. Returns the
/// files written.
pub fn write_svgs(
    records: &[Record],
    optima: &Optima,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    write_plots(plots(records, optima), dir)
}

/// Writes `dir/<name>.svg` for every plot (names through [`file_stem`], collisions
/// numbered as in [`write_svgs`]), creating `dir` if needed. Returns the files written.
pub fn write_plots(
    plots: BTreeMap<String, svg::Plot>,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut used = BTreeSet::new();
    let mut written = Vec::new();
    for (problem, plot) in plots {
        let base = file_stem(&problem);
        let mut stem = base.clone();
        let mut k = 2;
        while !used.insert(stem.clone()) {
            stem = format!("{base}-{k}");
            k += 1;
        }
        let path = dir.join(format!("{stem}.svg"));
        std::fs::write(&path, svg::render(&plot))?;
        written.push(path);
    }
    Ok(written)
}

/// A JSON Lines file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line is not the expected record.
    #[error("{}, line {line}, column {column}: not a record of the expected kind: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The 1-based line number in the file.
        line: usize,
        /// The 1-based column in that line.
        column: usize,
        /// What the JSON decoder said.
        message: String,
    },
}

/// Reads a JSON Lines file of `T` (trial [`Record`]s or [`AskTimeRecord`]s), skipping blank
/// lines; the error names the first bad line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|error| ReadError::Io {
        path: path.to_owned(),
        error,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                // The decoder's position is within the line; the file's line is ours.
                let full = e.to_string();
                let position = format!(" at line {} column {}", e.line(), e.column());
                ReadError::Json {
                    path: path.to_owned(),
                    line: i + 1,
                    column: e.column(),
                    message: full.strip_suffix(&position).unwrap_or(&full).to_owned(),
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::TrialState;

    /// A run whose best-so-far after trial t is `start · decay^t` plus `optimum`.
    fn run(
        problem: &str,
        sampler: &str,
        seed: u64,
        n: u64,
        start: f64,
        optimum: f64,
    ) -> Vec<Record> {
        (0..n)
            .map(|t| {
                let best = optimum + start * 0.98f64.powi(t as i32);
                Record::plain(
                    problem,
                    sampler,
                    seed,
                    t,
                    TrialState::Complete,
                    Some(best),
                    Some(best),
                    None,
                    0.5,
                )
            })
            .collect()
    }

    /// `seeds` runs of `sampler` whose regrets are `level · (1 + seed/100)`.
    fn runs(problem: &str, sampler: &str, seeds: u64, n: u64, level: f64, opt: f64) -> Vec<Record> {
        (0..seeds)
            .flat_map(|s| {
                run(
                    problem,
                    sampler,
                    s,
                    n,
                    level * (1.0 + s as f64 / 100.0),
                    opt,
                )
            })
            .collect()
    }

    fn optima_of(list: &[(&str, Option<f64>)]) -> Optima {
        list.iter().map(|(p, o)| ((*p).to_owned(), *o)).collect()
    }

    #[test]
    fn regret_is_reported_where_the_optimum_is_known() {
        let mut records = runs("known", "random", 3, 30, 2.0, -5.0);
        records.extend(runs("unknown", "random", 3, 30, 2.0, -5.0));
        let optima = optima_of(&[("known", Some(-5.0)), ("unknown", None)]);
        let summary = summarize(&records, &optima);
        let known = &summary["known"]["random"];
        let unknown = &summary["unknown"]["random"];
        assert_eq!(known.runs, 3);
        // 25 trials: regret 2·1.01·0.98^24 for the median seed.
        let want = 2.0 * 1.01 * 0.98f64.powi(24);
        assert_eq!(known.at[0].0, 25);
        assert!((known.at[0].1 - want).abs() < 1e-12, "{known:?}");
        assert!(
            (unknown.at[0].1 - (want - 5.0)).abs() < 1e-12,
            "{unknown:?}"
        );
        // Budgets not reached are left out.
        assert_eq!(known.at.len(), 1);
        let md = markdown_with(&records, &optima, &[]);
        assert!(
            md.contains("### known\n\n| sampler | runs | simple regret after N trials"),
            "{md}"
        );
        assert!(
            md.contains("### unknown\n\n| sampler | runs | best value after N trials"),
            "{md}"
        );
        // Without optima everything is a best value.
        assert!(!markdown(&records).contains("| simple regret after"));
    }

    #[test]
    fn pairings_match_labels_by_prefix() {
        let p = pairings([
            "tpe",
            "optuna-tpe",
            "rustuna-tpe",
            "random",
            "optuna-qmc",
            "qmc-x",
        ]);
        assert_eq!(
            p,
            [
                ("tpe".to_owned(), "optuna-tpe".to_owned()),
                ("tpe".to_owned(), "rustuna-tpe".to_owned())
            ]
        );
        assert!(pairings(["optuna-tpe", "rustuna-tpe"]).is_empty());
    }

    #[test]
    fn clearly_different_samples_give_wins_and_losses_and_equal_ones_ties() {
        let mut records = Vec::new();
        // "better": tpe's regret is 100× lower than optuna-tpe's on every seed.
        records.extend(runs("better", "tpe", 8, 200, 0.01, 1.0));
        records.extend(runs("better", "optuna-tpe", 8, 200, 1.0, 1.0));
        // "worse": the other way round.
        records.extend(runs("worse", "tpe", 8, 200, 1.0, 0.0));
        records.extend(runs("worse", "optuna-tpe", 8, 200, 0.01, 0.0));
        // "same": identical distributions.
        records.extend(runs("same", "tpe", 8, 200, 0.3, 0.0));
        records.extend(runs("same", "optuna-tpe", 8, 200, 0.3, 0.0));
        // "few": a single peer run, so not tested.
        records.extend(runs("few", "tpe", 8, 200, 0.3, 0.0));
        records.extend(runs("few", "optuna-tpe", 1, 200, 0.3, 0.0));
        // A peer without counterpart and a sampler without peer are ignored.
        records.extend(runs("same", "rustuna-qmc", 3, 200, 0.3, 0.0));
        records.extend(runs("same", "random", 3, 200, 0.3, 0.0));
        let optima = optima_of(&[("better", Some(1.0))]);
        let cmp = compare_peers(&records, &optima);
        assert_eq!(cmp.len(), 2, "budgets 100 and 200 of tpe vs optuna-tpe");
        assert_eq!((cmp[0].budget, cmp[1].budget), (100, 200));
        for c in &cmp {
            assert_eq!(
                (c.ferrotune.as_str(), c.peer.as_str()),
                ("tpe", "optuna-tpe")
            );
            let outcome: BTreeMap<&str, Outcome> = c
                .rows
                .iter()
                .map(|r| (r.problem.as_str(), r.outcome))
                .collect();
            assert_eq!(outcome["better"], Outcome::Win);
            assert_eq!(outcome["worse"], Outcome::Loss);
            assert_eq!(outcome["same"], Outcome::Tie);
            assert_eq!(outcome["few"], Outcome::NotAvailable);
            assert_eq!(c.tally(), (1, 1, 1, 1));
            let better = &c.rows[0];
            assert_eq!(better.problem, "better");
            assert_eq!(better.runs, (8, 8));
            // 8 vs 8 fully separated: exact p = 1/C(16, 8) = 1/12870, times 3 tested
            // problems (Holm's first step).
            let p = better.p_better.unwrap();
            assert!((p - 3.0 / 12_870.0).abs() < 1e-12, "{p}");
            assert!(better.p_worse.unwrap() > 0.9);
            // Medians are regrets where the optimum is known, best values elsewhere.
            let ratio = better.medians.1 / better.medians.0;
            assert!((ratio - 100.0).abs() < 1e-6, "{:?}", better.medians);
        }
        let md = markdown_with(&records, &optima, &[]);
        assert!(
            md.contains("| tpe | optuna-tpe | 100 | 1 | 1 | 1 | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("tpe vs optuna-tpe after 200 trials: 1 wins / 1 ties / 1 losses (1 n/a).")
        );
        assert!(md.contains("| better | 8 / 8 |"), "{md}");
        assert!(md.contains("| worse \\* | 8 / 8 |"), "{md}");
        assert!(md.contains("| **win** |") && md.contains("| **loss** |"));
    }

    #[test]
    fn budgets_not_reached_are_not_compared() {
        let mut records = runs("p", "tpe", 4, 150, 1.0, 0.0);
        records.extend(runs("p", "rustuna-tpe", 4, 150, 1.0, 0.0));
        let cmp = compare_peers(&records, &Optima::new());
        assert_eq!(cmp.len(), 1);
        assert_eq!(cmp[0].budget, 100);
        assert_eq!(cmp[0].peer, "rustuna-tpe");
        assert_eq!(cmp[0].tally(), (0, 1, 0, 0));
        // Too short for any comparison: the section says so.
        let short = runs("p", "tpe", 4, 50, 1.0, 0.0);
        assert!(compare_peers(&short, &Optima::new()).is_empty());
        assert!(markdown(&short).contains("No pairing to compare"));
    }

    #[test]
    fn average_ranks_share_ties() {
        let mut records = Vec::new();
        // p1: a < b = c; p2: c < a < b.
        records.extend(runs("p1", "a", 2, 25, 0.1, 0.0));
        records.extend(runs("p1", "b", 2, 25, 0.5, 0.0));
        records.extend(runs("p1", "c", 2, 25, 0.5, 0.0));
        records.extend(runs("p2", "a", 2, 25, 0.5, 0.0));
        records.extend(runs("p2", "b", 2, 25, 0.9, 0.0));
        records.extend(runs("p2", "c", 2, 25, 0.1, 0.0));
        let ranks = average_ranks(&summarize(&records, &Optima::new()));
        let at = |s: &str| ranks[s][&25];
        assert_eq!(at("a").1, 2);
        assert!((at("a").0 - 1.5).abs() < 1e-12); // 1 and 2
        assert!((at("b").0 - 2.75).abs() < 1e-12); // 2.5 and 3
        assert!((at("c").0 - 1.75).abs() < 1e-12); // 2.5 and 1
        let md = markdown(&records);
        assert!(md.contains("| b | 2.75 (2) |"), "{md}");
    }

    fn ask(sampler: &str, n: u64, ms: &[f64]) -> AskTimeRecord {
        AskTimeRecord::new(sampler, n, 10, ms.to_vec(), "add_trial")
    }

    #[test]
    fn ask_times_are_tabulated_with_ratios() {
        let records = [
            ask("tpe", 100, &[1.0, 2.0, 3.0]),
            ask("tpe", 1000, &[4.0]),
            ask("tpe", 1000, &[5.0, 6.0]), // pooled with the line above: median 5
            ask("optuna-tpe", 100, &[20.0]),
            ask("optuna-tpe", 1000, &[60.0]),
            ask("rustuna-tpe", 100, &[1.0]),
        ];
        let md = ask_time_markdown(&records);
        assert!(
            md.contains("| sampler | history | n = 100 | n = 1000 |"),
            "{md}"
        );
        assert!(md.contains("| tpe | add_trial | 2.000 | 5.000 |"), "{md}");
        assert!(
            md.contains("| optuna-tpe | add_trial | 20.00 | 60.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| tpe vs optuna-tpe | 10.00× | 12.00× |"),
            "{md}"
        );
        assert!(md.contains("| tpe vs rustuna-tpe | 0.5000× | – |"), "{md}");
        let full = markdown_with(&[], &Optima::new(), &records);
        assert!(full.contains("## Ask time (10 float parameters)"));
    }

    #[test]
    fn svgs_are_written_per_problem_with_safe_names() {
        assert_eq!(file_stem("hpolib/naval"), "hpolib_naval");
        assert_eq!(file_stem("../etc"), "_.._etc");
        assert_eq!(file_stem(""), "_");
        assert_eq!(file_stem("a b<c>"), "a_b_c_");
        let mut records = runs("hpolib/naval", "tpe", 3, 40, 1.0, 0.0);
        records.extend(runs("hpolib/naval", "optuna-tpe", 3, 40, 2.0, 0.0));
        records.extend(runs("hpolib_naval", "tpe", 2, 40, 1.0, 0.0));
        let dir = std::env::temp_dir().join(format!("ferrotune-bench-svg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let optima = optima_of(&[("hpolib/naval", Some(0.0))]);
        let written = write_svgs(&records, &optima, &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["hpolib_naval.svg", "hpolib_naval-2.svg"]);
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.contains(">hpolib/naval<"));
        assert_eq!(svg.matches("<path ").count(), 2);
        assert!(
            svg.contains("simple regret (best − optimum), log scale"),
            "{svg}"
        );
        let other = std::fs::read_to_string(&written[1]).unwrap();
        assert!(other.contains("best value"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let dir = std::env::temp_dir().join(format!("ferrotune-bench-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.jsonl");
        let good = serde_json::to_string(&run("p", "tpe", 0, 1, 1.0, 0.0)[0]).unwrap();
        std::fs::write(&path, format!("{good}\n\n{good}\n")).unwrap();
        assert_eq!(read_jsonl::<Record>(&path).unwrap().len(), 2);
        std::fs::write(&path, format!("{good}\n{{\"oops\": 1}}\n")).unwrap();
        let err = read_jsonl::<Record>(&path).unwrap_err().to_string();
        assert!(err.contains("line 2, column 11"), "{err}");
        assert!(!err.contains("at line"), "{err}");
        assert!(read_jsonl::<Record>(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
