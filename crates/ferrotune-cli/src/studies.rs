//! Study management commands: list, show trials, best trial, create, delete, rename, copy.

use crate::storage_url::{open, redact, Access};
use anyhow::Context;
use clap::ValueEnum;
use ferrotune::export::{rfc3339, write_csv, write_jsonl};
use ferrotune::storage::{copy_study, delete_study, rename_study, study_summaries};
use ferrotune::{Direction, PrunerSpec, SamplerSpec, Study, TrialState};
use std::io::Write;

/// How `trials` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with parameters flattened into columns.
    Csv,
    /// JSON Lines, one object per trial.
    Json,
}

/// Prints a table: a header row and aligned columns.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn directions(d: &[Direction]) -> String {
    d.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v}"))
}

/// `ferrotune studies`.
pub fn list(url: &str) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    let summaries = study_summaries(&*storage)?;
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                directions(&s.directions),
                s.n_trials.to_string(),
                s.n_complete.to_string(),
                number(s.best_value),
                s.config
                    .as_ref()
                    .map_or_else(String::new, |c| c.sampler.name().to_owned()),
                rfc3339(s.created),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "no studies in {}", redact(url))?;
        return Ok(());
    }
    print_table(
        &mut out,
        &[
            "study",
            "directions",
            "trials",
            "complete",
            "best",
            "sampler",
            "created",
        ],
        &rows,
    )
}

/// `ferrotune trials`.
pub fn trials(url: &str, name: &str, format: Format) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    let study = storage.study_by_name(name)?;
    let trials = storage.trials(study.id, None)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Csv => write_csv(
            trials.iter().map(|t| t.as_ref()),
            study.directions.len(),
            &mut out,
        )?,
        Format::Json => write_jsonl(trials.iter().map(|t| t.as_ref()), &mut out)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = trials
                .iter()
                .map(|t| {
                    vec![
                        t.number.to_string(),
                        t.state.to_string(),
                        t.values
                            .as_ref()
                            .map(|v| {
                                v.iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                        t.duration()
                            .map_or_else(String::new, |d| format!("{:.3}s", d.as_secs_f64())),
                        serde_json::to_string(&t.params).unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &mut out,
                &["number", "state", "value", "duration", "params"],
                &rows,
            )?;
        }
    }
    Ok(())
}

/// `ferrotune best`.
pub fn best(url: &str, name: &str) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    let study = Study::load(storage, name)?;
    let mut out = std::io::stdout().lock();
    if study.directions().len() == 1 {
        let t = study.best_trial()?;
        writeln!(out, "trial {}  value {}", t.number, number(t.value()))?;
        writeln!(out, "params {}", serde_json::to_string(&t.params)?)?;
    } else {
        let front = study.best_trials()?;
        writeln!(out, "{} trial(s) on the Pareto front", front.len())?;
        for t in front {
            writeln!(
                out,
                "trial {}  values {:?}  params {}",
                t.number,
                t.values.as_deref().unwrap_or(&[]),
                serde_json::to_string(&t.params)?
            )?;
        }
    }
    Ok(())
}

/// `ferrotune lineage`: the chain of PBT parents behind a trial, oldest first, as a table of
/// the steps each link trained and its parameters — the schedule to replay.
pub fn lineage(url: &str, name: &str, trial: Option<u64>) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    let study = Study::load(storage, name)?;
    let last = match trial {
        Some(n) => n,
        None => {
            study
                .best_trial()
                .context("no trial given (--trial N) and no best trial to start from")?
                .number
        }
    };
    let chain = study.lineage(last)?;
    // Oldest first; each link trains from the step it resumed from to where the next one
    // took over (or to its own last step).
    let links: Vec<_> = chain.iter().rev().collect();
    let mut rows = Vec::with_capacity(links.len());
    for (k, (t, from)) in links.iter().enumerate() {
        let start = from.map_or(1, |s| s + 1);
        let end = match links.get(k + 1) {
            Some((_, Some(next_from))) => *next_from,
            _ => t.last_step().unwrap_or(0),
        };
        rows.push(vec![
            t.number.to_string(),
            format!("{start}–{end}"),
            t.state.to_string(),
            number(t.intermediate(end).or(t.value())),
            serde_json::to_string(&t.params)?,
        ]);
    }
    let mut out = std::io::stdout().lock();
    if links.len() == 1 {
        writeln!(
            out,
            "trial {last} has no parent: it trained on its own parameters throughout"
        )?;
    }
    print_table(
        &mut out,
        &["trial", "steps", "state", "value at end", "params"],
        &rows,
    )?;
    Ok(())
}

/// Parses `--sampler`: a name (`random`, `qmc`, `halton`, `tpe`, `bohb`) or a JSON spec.
pub fn parse_sampler(s: &str) -> anyhow::Result<SamplerSpec> {
    if s.trim_start().starts_with('{') {
        return serde_json::from_str(s).with_context(|| format!("invalid sampler spec {s}"));
    }
    let json = match s {
        "random" => r#"{"type":"random"}"#,
        "qmc" | "sobol" => r#"{"type":"qmc","kind":"sobol"}"#,
        "halton" => r#"{"type":"qmc","kind":"halton"}"#,
        "tpe" => r#"{"type":"tpe"}"#,
        "bohb" => r#"{"type":"bohb"}"#,
        other => anyhow::bail!(
            "unknown sampler `{other}`; use random, qmc, halton, tpe, bohb, or a JSON spec (see `ferrotune samplers`)"
        ),
    };
    Ok(serde_json::from_str(json)?)
}

/// Parses `--pruner`: `median`, `none` (or `nop`), or a JSON spec (see `ferrotune pruners`).
pub fn parse_pruner(s: &str) -> anyhow::Result<PrunerSpec> {
    if s.trim_start().starts_with('{') {
        return serde_json::from_str(s).with_context(|| format!("invalid pruner spec {s}"));
    }
    match s {
        "median" => Ok(PrunerSpec::median()),
        "none" | "nop" => Ok(PrunerSpec::Nop),
        "successive_halving" | "asha" => Ok(PrunerSpec::successive_halving()),
        "hyperband" => Ok(PrunerSpec::hyperband()),
        "wilcoxon" => Ok(PrunerSpec::wilcoxon()),
        other => anyhow::bail!(
            "unknown pruner `{other}`; use median, successive_halving (asha), hyperband, \
             wilcoxon, none, or a JSON spec (see `ferrotune pruners`)"
        ),
    }
}

/// `ferrotune create`.
pub fn create(
    url: &str,
    name: &str,
    dirs: &[Direction],
    sampler: Option<&str>,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadWrite)?;
    let mut builder = Study::builder().storage(storage).name(name);
    if !dirs.is_empty() {
        builder = builder.directions(dirs.to_vec());
    }
    if let Some(s) = sampler {
        builder = builder.sampler(parse_sampler(s)?);
    }
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    let study = builder.build()?;
    println!(
        "created study `{}` ({}; seed {}) in {}",
        study.name(),
        directions(study.directions()),
        study.seed(),
        redact(url)
    );
    Ok(())
}

/// `ferrotune delete`.
pub fn delete(url: &str, name: &str) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    let n = storage.n_trials(storage.study_by_name(name)?.id, None)?;
    delete_study(&*storage, name)?;
    println!("deleted study `{name}` and its {n} trial(s)");
    Ok(())
}

/// `ferrotune rename`.
pub fn rename(url: &str, from: &str, to: &str) -> anyhow::Result<()> {
    let storage = open(url, Access::ReadOnly)?;
    rename_study(&*storage, from, to)?;
    println!("renamed study `{from}` to `{to}`");
    Ok(())
}

/// `ferrotune copy`.
pub fn copy(url: &str, name: &str, to_url: &str, to_name: Option<&str>) -> anyhow::Result<()> {
    let from = open(url, Access::ReadOnly)?;
    let to = open(to_url, Access::ReadWrite)?;
    let new_name = to_name.unwrap_or(name);
    copy_study(&*from, name, &*to, new_name)?;
    let study = to.study_by_name(new_name)?;
    let n = to.n_trials(study.id, None)?;
    let complete = to.n_trials(study.id, Some(&[TrialState::Complete]))?;
    println!(
        "copied study `{name}` to `{new_name}` in {} ({n} trials, {complete} complete)",
        redact(to_url)
    );
    Ok(())
}
