//! The YAHPO Gym LCBench surrogate as multi-fidelity problems (feature `lcbench`): learning
//! curves of funnel-shaped MLPs (Auto-PyTorch's search space) on OpenML tasks, predicted from
//! seven hyperparameters by a neural network that YAHPO Gym fitted to LCBench, one problem per
//! task (`lcbench_<taskid>`), the epoch as the fidelity.
//!
//! Sources: YAHPO Gym — Pfisterer, Schneider, Moosbauer, Binder & Bischl 2022, "YAHPO Gym — An
//! efficient multi-objective multi-fidelity benchmark for hyperparameter optimization" (AutoML
//! Conference; Apache-2.0), which ships the surrogate as `lcbench/model.onnx`; LCBench — Zimmer,
//! Lindauer & Hutter 2021, "Auto-PyTorch Tabular: Multi-fidelity metalearning for efficient and
//! robust AutoDL" (IEEE TPAMI 43(9)), whose learning curves the surrogate was trained on. The
//! model runs in tract (pure Rust), so no onnxruntime is needed.
//!
//! # Data layout
//!
//! The data folder (`--data DIR` or the environment variable [`DATA_ENV`]; never part of the
//! repository) holds `yahpo/lcbench/` with YAHPO Gym's `model.onnx`, `config_space.json` (the
//! search space, read at load time) and `encoding.json` (each task's index for the model).
//!
//! # The problems
//!
//! - **Space**: the seven hyperparameters with the bounds and log flags of
//!   `config_space.json`, suggested by name: `batch_size` (int, log, 16–512),
//!   `learning_rate` (float, log, 1e-4–0.1), `momentum` (float, 0.1–0.99), `weight_decay`
//!   (float, 1e-5–0.1), `num_layers` (int, 1–5), `max_units` (int, log, 64–1024) and
//!   `max_dropout` (float, 0–1). The task is fixed per problem and `epoch` is the fidelity,
//!   so neither is a search dimension.
//! - **Value** (minimized): the validation error in percent, `100 − val_accuracy`, after
//!   `step` epochs (`1..=52`). No optimum is known ([`FidelityProblem::optimum`] is `None`).
//! - **Cost**: the surrogate's `time` is cumulative (seconds since training started, epoch 1
//!   included its setup), so a step costs the increase over the previous epoch. The surrogate
//!   is not exactly monotone: over 200 random configurations per task, the time falls from
//!   one epoch to the next in 0–1 % of the steps on five tasks and 6.8 % on 146212. So the
//!   increase is taken over the running maximum and clamped below at [`MIN_STEP_COST`]:
//!   steps stay positive and the steps up to `e` add up to the largest time predicted until
//!   `e` (plus the clamps), never more than the surrogate says a run took.
//! - **Noise**: the surrogate is deterministic (YAHPO Gym's `noisy` variant is another model,
//!   not shipped here), so the `noise_seed` of [`FidelityProblem::evaluate_at`] is ignored.
//! - **Speed**: the first time a point is seen, its whole curve (all 52 epochs) is predicted
//!   in one batched forward pass; values and costs are cached per problem (the last
//!   [`CACHE_CAPACITY`] points), because the simulator asks for `(params, 1)`, `(params, 2)`,
//!   … and for each step's cost in turn. One loaded and optimized model is shared by all the
//!   problems of [`lcbench_problems`].
//!
//! # Checked against YAHPO Gym 1.0.2
//!
//! Checked once against the reference package `yahpo_gym` 1.0.2 (ConfigSpace 0.6.1,
//! onnxruntime 1.32.0, numpy 1.26; the graph read with `onnx` 1.23) on the same files:
//!
//! - **Inputs**: `BenchmarkSet._config_to_xs` passes the raw values, as `float32`, in the
//!   order of its `cont_names` — `epoch, batch_size, learning_rate, momentum, weight_decay,
//!   num_layers, max_units, max_dropout` — as `x_cont` (f32\[n, 8\]), and the task's value in
//!   `encoding.json` as `x_cat` (i32\[n, 1\]; task 3945 → 34, not its position 0 in
//!   `config_space.json`). It applies no transformation in Python: the scaling lives inside
//!   the ONNX graph (`log(x + 1e-12)` then min–max for epoch, learning rate and weight decay;
//!   min–max for the others; the outputs un-scaled, with `exp` for the accuracies). So the
//!   raw values go in here too.
//! - **Outputs** (`y_names` of its `lcbench` config): `time, val_accuracy,
//!   val_cross_entropy, val_balanced_accuracy, test_cross_entropy, test_balanced_accuracy`.
//!   Column 0 is the cumulative time in seconds, column 1 the accuracy in percent.
//! - **Values** (yahpo_gym / onnxruntime, then tract here, which agreed to within 0.01; the
//!   tests check them): task 3945, `batch_size` 64, `learning_rate` 0.01, `momentum` 0.9,
//!   `weight_decay` 1e-4, `num_layers` 3, `max_units` 256, `max_dropout` 0.1:
//!
//! | epoch | 1 | 2 | 4 | 8 | 16 | 32 | 52 |
//! |-|-|-|-|-|-|-|-|
//! | val_accuracy | 50.0627 | 84.6890 | 89.8187 | 90.6341 | 90.7704 | 91.1333 | 91.7521 |
//! | time (s, cumulative) | 16.950 | 15.654 | 22.050 | 34.699 | 57.348 | 111.809 | 145.332 |
//!
//! and one point on each of the other five tasks, (val_accuracy, time) at epochs 1, 26, 52:
//!
//! | task (index) | batch, lr, momentum, wd, layers, units, dropout | epoch 1 | epoch 26 | epoch 52 |
//! |-|-|-|-|-|
//! | 7593 (35) | 16, 2e-4, 0.1, 1e-5, 1, 64, 0.0 | 28.4691, 11.191 | 64.9124, 407.462 | 66.5018, 615.652 |
//! | 34539 (33) | 512, 0.09, 0.99, 0.1, 5, 1024, 1.0 | 39.8795, 7.438 | 82.5000, 248.781 | 84.8219, 616.802 |
//! | 126025 (1) | 128, 1e-3, 0.5, 0.01, 2, 512, 0.5 | 48.9711, 4.674 | 78.1771, 62.585 | 78.3489, 115.832 |
//! | 146212 (4) | 32, 0.03, 0.8, 1e-3, 4, 128, 0.3 | 0.3386, 36.563 | 79.2487, 188.234 | 92.4742, 136.172 |
//! | 167104 (6) | 256, 5e-3, 0.7, 0.05, 3, 700, 0.7 | 51.7957, 3.995 | 86.2602, 92.401 | 87.1400, 177.619 |
//!
//! (146212's time falling from 188 s to 136 s is the surrogate's, not a transcription error:
//! the cost model above charges [`MIN_STEP_COST`] for such steps.)

use crate::fidelity::FidelityProblem;
use crate::tabular::DATA_ENV;
use ferrotune::{Params, Trial};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor,
    TypedRunnableModel,
};

/// The OpenML tasks offered as problems (`lcbench_<taskid>`): six of the 34 tasks the
/// surrogate knows.
pub const LCBENCH_TASKS: [u32; 6] = [3945, 7593, 34539, 126025, 146212, 167104];

/// The smallest cost of a step in simulated seconds: the surrogate's cumulative time is not
/// exactly monotone, and a step must cost something.
pub const MIN_STEP_COST: f64 = 1e-3;

/// How many points' curves each problem keeps (first in, first out). A curve is 52 values
/// and 52 costs; the simulator revisits only the points of its live trials.
pub const CACHE_CAPACITY: usize = 1024;

/// The folder under the data folder that holds YAHPO Gym's LCBench files.
const SUBDIR: &str = "yahpo/lcbench";

/// The hyperparameters in the order of the model's `x_cont` columns after the epoch (column 0),
/// as yahpo_gym's `cont_names` lists them.
const HYPERPARAMETERS: [&str; 7] = [
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "num_layers",
    "max_units",
    "max_dropout",
];

/// The number of `x_cont` columns: the epoch, then [`HYPERPARAMETERS`].
const CONT_COLUMNS: usize = 1 + HYPERPARAMETERS.len();

/// The number of model outputs: time, val_accuracy, val_cross_entropy,
/// val_balanced_accuracy, test_cross_entropy, test_balanced_accuracy.
const OUTPUT_COLUMNS: usize = 6;
/// The output column of the cumulative time in seconds.
const TIME_COLUMN: usize = 0;
/// The output column of the validation accuracy in percent.
const ACCURACY_COLUMN: usize = 1;

/// Why the LCBench surrogate could not be loaded. Every message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LcbenchError {
    /// The data folder holds no `yahpo/lcbench/` folder.
    #[error(
        "no LCBench surrogate at {}: {reason}; pass `--data DIR` or set {DATA_ENV} to the \
         benchmark data folder, the one holding `yahpo/lcbench/` (YAHPO Gym's model.onnx, \
         config_space.json and encoding.json; see the data README)",
        dir.display()
    )]
    MissingData {
        /// The folder that was tried.
        dir: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A file could not be read.
    #[error(
        "cannot read {}: {source}; the folder must hold YAHPO Gym's LCBench files \
         (model.onnx, config_space.json, encoding.json)",
        path.display()
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `config_space.json` or `encoding.json` is not what YAHPO Gym's LCBench ships.
    #[error("{}: {reason}; replace it with YAHPO Gym's LCBench file", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tract could not load, type or optimize `model.onnx`, or the model's inputs and
    /// outputs are not those of YAHPO Gym's LCBench surrogate.
    #[error(
        "cannot load the LCBench surrogate {}: {reason}; replace it with YAHPO Gym's \
         lcbench/model.onnx",
        path.display()
    )]
    Model {
        /// The model file.
        path: PathBuf,
        /// tract's error, or what is wrong with the model.
        reason: String,
    },
    /// The task is not one the surrogate knows.
    #[error(
        "unknown LCBench task {task_id}; the surrogate knows the OpenML tasks {} (the \
         problems use {})",
        list(known),
        list(&LCBENCH_TASKS)
    )]
    UnknownTask {
        /// The task asked for.
        task_id: u32,
        /// The tasks in `config_space.json` that `encoding.json` gives an index.
        known: Vec<u32>,
    },
}

/// Task ids joined by commas, for messages.
fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a hyperparameter is suggested, as `config_space.json` gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Range {
    /// `uniform_int`: `suggest_int` or, with `log`, `suggest_int_log`.
    Int { low: i64, high: i64, log: bool },
    /// `uniform_float`: `suggest_float` or, with `log`, `suggest_float_log`.
    Float { low: f64, high: f64, log: bool },
}

/// One hyperparameter of the search space.
#[derive(Clone, Debug)]
struct Dimension {
    name: &'static str,
    range: Range,
}

/// The files' content and the runnable model, shared by the problems of all tasks.
struct Surrogate {
    /// The model, typed and optimized for a batch of `epochs` rows.
    plan: Arc<TypedRunnableModel>,
    /// The model's input index of `x_cat` (`x_cont` is the other of the two).
    cat_input: usize,
    /// The highest epoch (the fidelity's range is `1..=epochs`): the batch size.
    epochs: usize,
    /// The search space, in [`HYPERPARAMETERS`] order.
    space: Vec<Dimension>,
    /// Each known task's `x_cat` value (its index in `encoding.json`).
    tasks: Vec<(u32, i32)>,
}

/// One predicted learning curve: per epoch `1..=epochs` (index `epoch − 1`).
#[derive(Clone, Debug)]
struct Curve {
    /// The validation error in percent, `100 − val_accuracy`.
    errors: Vec<f64>,
    /// The cost of each step (see the module doc).
    costs: Vec<f64>,
}

impl Curve {
    /// The curve from the model's output rows (one per epoch).
    fn from_rows(rows: &[[f32; OUTPUT_COLUMNS]]) -> Curve {
        let errors = rows
            .iter()
            .map(|r| 100.0 - f64::from(r[ACCURACY_COLUMN]))
            .collect();
        let times: Vec<f64> = rows.iter().map(|r| f64::from(r[TIME_COLUMN])).collect();
        Curve {
            errors,
            costs: step_costs(&times),
        }
    }
}

/// The cache key: the bits of the hyperparameters' values in [`HYPERPARAMETERS`] order.
type Key = [u64; HYPERPARAMETERS.len()];

/// A bounded first-in-first-out map from points to their curves.
#[derive(Default)]
struct CurveCache {
    curves: HashMap<Key, Arc<Curve>>,
    order: VecDeque<Key>,
}

impl CurveCache {
    fn get(&self, key: &Key) -> Option<Arc<Curve>> {
        self.curves.get(key).cloned()
    }

    fn insert(&mut self, key: Key, curve: Arc<Curve>) {
        if self.curves.insert(key, curve).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.curves.remove(&old);
            }
        }
    }
}

/// `config_space.json` as far as it is read here (ConfigSpace's JSON format).
#[derive(Deserialize)]
struct SpaceFile {
    hyperparameters: Vec<HyperparameterEntry>,
}

#[derive(Deserialize)]
struct HyperparameterEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    log: bool,
    lower: Option<f64>,
    upper: Option<f64>,
    #[serde(default)]
    choices: Vec<serde_json::Value>,
}

/// `encoding.json`: `{"OpenML_task_id": {"<task>": index, "#na#": 0, …}}`.
#[derive(Deserialize)]
struct EncodingFile {
    #[serde(rename = "OpenML_task_id")]
    task_ids: HashMap<String, i64>,
}

fn read_text(path: &Path) -> Result<String, LcbenchError> {
    std::fs::read_to_string(path).map_err(|source| LcbenchError::Io {
        path: path.to_owned(),
        source,
    })
}

/// An integer bound of `config_space.json`, which must be a whole number.
fn whole(value: f64, path: &Path, name: &str) -> Result<i64, LcbenchError> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 2f64.powi(53) {
        Ok(value as i64)
    } else {
        Err(LcbenchError::Format {
            path: path.to_owned(),
            reason: format!("`{name}` is an integer parameter but has the bound {value}"),
        })
    }
}

/// Reads the space (the seven hyperparameters and the epoch range) and the task choices.
fn read_space(path: &Path) -> Result<(Vec<Dimension>, usize, Vec<u32>), LcbenchError> {
    let format = |reason: String| LcbenchError::Format {
        path: path.to_owned(),
        reason,
    };
    let file: SpaceFile = serde_json::from_str(&read_text(path)?)
        .map_err(|e| format(format!("not a ConfigSpace JSON file: {e}")))?;
    let entry = |name: &str| {
        file.hyperparameters
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| format(format!("no hyperparameter `{name}`")))
    };
    let bounds = |h: &HyperparameterEntry| match (h.lower, h.upper) {
        (Some(low), Some(high)) if low.is_finite() && high.is_finite() && low < high => {
            Ok((low, high))
        }
        _ => Err(format(format!(
            "`{}` needs finite bounds `lower` < `upper`",
            h.name
        ))),
    };
    let mut space = Vec::with_capacity(HYPERPARAMETERS.len());
    for name in HYPERPARAMETERS {
        let h = entry(name)?;
        let (low, high) = bounds(h)?;
        let range = match h.kind.as_str() {
            "uniform_int" => Range::Int {
                low: whole(low, path, name)?,
                high: whole(high, path, name)?,
                log: h.log,
            },
            "uniform_float" => Range::Float {
                low,
                high,
                log: h.log,
            },
            other => {
                return Err(format(format!(
                    "`{name}` has type `{other}`, expected uniform_int or uniform_float"
                )))
            }
        };
        if h.log && low <= 0.0 {
            return Err(format(format!(
                "`{name}` is log-scaled but its lower bound is {low}"
            )));
        }
        space.push(Dimension { name, range });
    }
    let epoch = entry("epoch")?;
    let (low, high) = bounds(epoch)?;
    if epoch.kind != "uniform_int" || whole(low, path, "epoch")? != 1 {
        return Err(format(
            "`epoch` must be an integer parameter starting at 1".to_owned(),
        ));
    }
    let epochs = usize::try_from(whole(high, path, "epoch")?)
        .map_err(|_| format(format!("`epoch` has the upper bound {high}")))?;
    let tasks = entry("OpenML_task_id")?
        .choices
        .iter()
        .map(|c| {
            let text = match c {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.parse::<u32>()
                .map_err(|_| format(format!("`OpenML_task_id` has the choice {c}")))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    Ok((space, epochs, tasks))
}

/// Each task of `choices` that `encoding.json` encodes, with its index.
fn read_encoding(path: &Path, choices: &[u32]) -> Result<Vec<(u32, i32)>, LcbenchError> {
    let file: EncodingFile =
        serde_json::from_str(&read_text(path)?).map_err(|e| LcbenchError::Format {
            path: path.to_owned(),
            reason: format!("expected {{\"OpenML_task_id\": {{task: index}}}}: {e}"),
        })?;
    let mut tasks = Vec::with_capacity(choices.len());
    for &task in choices {
        if let Some(&index) = file.task_ids.get(&task.to_string()) {
            let index = i32::try_from(index).map_err(|_| LcbenchError::Format {
                path: path.to_owned(),
                reason: format!("task {task} has the index {index}"),
            })?;
            tasks.push((task, index));
        }
    }
    Ok(tasks)
}

/// Loads `model.onnx`, fixes its inputs to a batch of `epochs` rows, and optimizes it.
/// Returns the plan and the input index of `x_cat`.
fn load_model(
    path: &Path,
    epochs: usize,
) -> Result<(Arc<TypedRunnableModel>, usize), LcbenchError> {
    let model_error = |reason: String| LcbenchError::Model {
        path: path.to_owned(),
        reason,
    };
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| model_error(format!("{e:#}")))?;
    let names: Vec<String> = model
        .input_outlets()
        .map_err(|e| model_error(format!("{e:#}")))?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let position = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            model_error(format!(
                "expected the inputs x_cat and x_cont, found {}",
                names.join(", ")
            ))
        })
    };
    let (cat_input, cont_input) = (position("x_cat")?, position("x_cont")?);
    if names.len() != 2 {
        return Err(model_error(format!(
            "expected two inputs, found {}",
            names.join(", ")
        )));
    }
    model
        .set_input_fact(
            cat_input,
            InferenceFact::dt_shape(DatumType::I32, tvec![epochs, 1]),
        )
        .and_then(|()| {
            model.set_input_fact(
                cont_input,
                InferenceFact::dt_shape(DatumType::F32, tvec![epochs, CONT_COLUMNS]),
            )
        })
        .map_err(|e| model_error(format!("{e:#}")))?;
    let typed = model
        .into_optimized()
        .map_err(|e| model_error(format!("{e:#}")))?;
    let output = typed
        .output_fact(0)
        .map_err(|e| model_error(format!("{e:#}")))?;
    let expected = [epochs, OUTPUT_COLUMNS];
    if output.datum_type != DatumType::F32
        || output.shape.as_concrete() != Some(&expected[..])
        || typed.output_outlets().map(<[_]>::len).unwrap_or(0) != 1
    {
        return Err(model_error(format!(
            "expected one output f32{expected:?}, found {output:?}"
        )));
    }
    let plan = typed
        .into_runnable()
        .map_err(|e| model_error(format!("{e:#}")))?;
    Ok((plan, cat_input))
}

impl Surrogate {
    /// Loads the files of `data/yahpo/lcbench/`.
    fn load(data: &Path) -> Result<Surrogate, LcbenchError> {
        let dir = data.join(SUBDIR);
        if !dir.is_dir() {
            let reason = if data.is_dir() {
                format!("{} holds no `{SUBDIR}/` folder", data.display())
            } else {
                format!("{} is not a folder", data.display())
            };
            return Err(LcbenchError::MissingData { dir, reason });
        }
        let (space, epochs, choices) = read_space(&dir.join("config_space.json"))?;
        let tasks = read_encoding(&dir.join("encoding.json"), &choices)?;
        let (plan, cat_input) = load_model(&dir.join("model.onnx"), epochs)?;
        Ok(Surrogate {
            plan,
            cat_input,
            epochs,
            space,
            tasks,
        })
    }

    /// The `x_cat` value of `task_id`.
    fn task_index(&self, task_id: u32) -> Result<i32, LcbenchError> {
        self.tasks
            .iter()
            .find(|(t, _)| *t == task_id)
            .map(|&(_, index)| index)
            .ok_or_else(|| {
                let mut known: Vec<u32> = self.tasks.iter().map(|&(t, _)| t).collect();
                known.sort_unstable();
                LcbenchError::UnknownTask { task_id, known }
            })
    }

    /// The model's outputs for every epoch `1..=epochs` (row `epoch − 1`) of a point (the
    /// hyperparameters in [`HYPERPARAMETERS`] order) on the task with `x_cat` value
    /// `task_index`: one forward pass over the batch of all epochs.
    fn predict(&self, task_index: i32, x: &[f64; 7]) -> Result<Vec<[f32; OUTPUT_COLUMNS]>, String> {
        let mut cont = Vec::with_capacity(self.epochs * CONT_COLUMNS);
        for epoch in 1..=self.epochs {
            cont.push(epoch as f32);
            cont.extend(x.iter().map(|&v| v as f32));
        }
        let cont = Tensor::from_shape(&[self.epochs, CONT_COLUMNS], &cont)
            .map_err(|e| format!("{e:#}"))?;
        let cat = Tensor::from_shape(&[self.epochs, 1], &vec![task_index; self.epochs])
            .map_err(|e| format!("{e:#}"))?;
        // The model has exactly the two inputs (checked at load): put each at its index.
        let mut inputs = tvec![cat.into(), cont.into()];
        if self.cat_input != 0 {
            inputs.swap(0, 1);
        }
        let outputs = self.plan.run(inputs).map_err(|e| format!("{e:#}"))?;
        let output = outputs
            .first()
            .ok_or_else(|| "the model returned no output".to_owned())?;
        let values: Vec<f32> = output
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .copied()
            .collect();
        if values.len() != self.epochs * OUTPUT_COLUMNS {
            return Err(format!(
                "the model returned {} values, expected {}",
                values.len(),
                self.epochs * OUTPUT_COLUMNS
            ));
        }
        let mut rows = Vec::with_capacity(self.epochs);
        for chunk in values.chunks_exact(OUTPUT_COLUMNS) {
            let mut row = [0.0; OUTPUT_COLUMNS];
            row.copy_from_slice(chunk);
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Per-step costs from cumulative times: the increase of the running maximum over the
/// previous step (nothing is spent before epoch 1), at least [`MIN_STEP_COST`].
fn step_costs(times: &[f64]) -> Vec<f64> {
    let mut reached = 0.0_f64;
    times
        .iter()
        .map(|&t| {
            let before = reached;
            if t > reached {
                reached = t;
            }
            let cost = reached - before;
            if cost >= MIN_STEP_COST {
                cost
            } else {
                MIN_STEP_COST
            }
        })
        .collect()
}

/// One LCBench task as a multi-fidelity problem (see the module doc).
struct LcbenchProblem {
    surrogate: Arc<Surrogate>,
    task_id: u32,
    task_index: i32,
    cache: Mutex<CurveCache>,
}

impl LcbenchProblem {
    fn new(surrogate: Arc<Surrogate>, task_id: u32) -> Result<LcbenchProblem, LcbenchError> {
        let task_index = surrogate.task_index(task_id)?;
        Ok(LcbenchProblem {
            surrogate,
            task_id,
            task_index,
            cache: Mutex::new(CurveCache::default()),
        })
    }

    /// The hyperparameters of `params` in [`HYPERPARAMETERS`] order, if all are numbers.
    fn point(params: &Params) -> Option<[f64; 7]> {
        let mut x = [0.0; HYPERPARAMETERS.len()];
        for (slot, name) in x.iter_mut().zip(HYPERPARAMETERS) {
            *slot = params.get(name)?.as_f64()?;
        }
        Some(x)
    }

    /// The curve at `params`, from the cache or predicted (and cached); `None` when a
    /// hyperparameter is missing or the model fails.
    fn curve(&self, params: &Params) -> Option<Arc<Curve>> {
        let x = LcbenchProblem::point(params)?;
        let key: Key = x.map(f64::to_bits);
        if let Some(curve) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(curve);
        }
        // Predicted without the lock: two threads may both predict a new point, which is
        // harmless (the model is deterministic).
        let rows = self.surrogate.predict(self.task_index, &x).ok()?;
        let curve = Arc::new(Curve::from_rows(&rows));
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::clone(&curve));
        Some(curve)
    }

    /// The index of `step` in a curve (steps outside `1..=epochs` are clamped).
    fn index(&self, step: u64) -> usize {
        let epochs = self.surrogate.epochs;
        usize::try_from(step).map_or(epochs, |s| s.clamp(1, epochs)) - 1
    }
}

impl FidelityProblem for LcbenchProblem {
    fn name(&self) -> String {
        format!("lcbench_{}", self.task_id)
    }

    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        for d in &self.surrogate.space {
            match d.range {
                Range::Int { low, high, log } => {
                    if log {
                        trial.suggest_int_log(d.name, low, high)?;
                    } else {
                        trial.suggest_int(d.name, low, high)?;
                    }
                }
                Range::Float { low, high, log } => {
                    if log {
                        trial.suggest_float_log(d.name, low, high)?;
                    } else {
                        trial.suggest_float(d.name, low, high)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn max_steps(&self) -> u64 {
        self.surrogate.epochs as u64
    }

    /// The validation error in percent after `step` epochs; NaN when a hyperparameter is
    /// missing (or the model fails, which the checks at load time rule out). `noise_seed`
    /// is ignored: the surrogate is deterministic.
    fn evaluate_at(&self, params: &Params, step: u64, _noise_seed: u64) -> f64 {
        self.curve(params)
            .map_or(f64::NAN, |c| c.errors[self.index(step)])
    }

    /// The surrogate's time of epoch `step` alone (see the module doc); [`MIN_STEP_COST`]
    /// when the value is NaN.
    fn cost(&self, params: &Params, step: u64) -> f64 {
        self.curve(params)
            .map_or(MIN_STEP_COST, |c| c.costs[self.index(step)])
    }

    fn optimum(&self) -> Option<f64> {
        None
    }
}

/// The problem `lcbench_<task_id>` from the data folder `data` (the one holding `yahpo/`).
/// `task_id` may be any of the 34 OpenML tasks the surrogate was trained on, not only
/// [`LCBENCH_TASKS`]. Loads its own copy of the model; [`lcbench_problems`] shares one.
pub fn lcbench_problem(
    data: &Path,
    task_id: u32,
) -> Result<Box<dyn FidelityProblem>, LcbenchError> {
    let surrogate = Arc::new(Surrogate::load(data)?);
    Ok(Box::new(LcbenchProblem::new(surrogate, task_id)?))
}

/// The problems of all [`LCBENCH_TASKS`] (`lcbench_3945`, …) from the data folder `data`
/// (the one holding `yahpo/`), sharing one loaded and optimized model.
pub fn lcbench_problems(data: &Path) -> Result<Vec<Box<dyn FidelityProblem>>, LcbenchError> {
    let surrogate = Arc::new(Surrogate::load(data)?);
    LCBENCH_TASKS
        .iter()
        .map(|&task| {
            LcbenchProblem::new(Arc::clone(&surrogate), task)
                .map(|p| Box::new(p) as Box<dyn FidelityProblem>)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{Distribution, FloatDistribution, Param, ParamValue, SamplerSpec, Study};

    fn real_data() -> Option<PathBuf> {
        crate::tabular::real_data_with(SUBDIR)
    }

    /// A point as `Params` (the distributions do not matter to evaluation).
    fn params(x: [f64; 7]) -> Params {
        HYPERPARAMETERS
            .iter()
            .zip(x)
            .map(|(name, v)| {
                let dist = FloatDistribution::uniform(-1e6, 1e6).expect("valid");
                Param::new(name, dist.into(), ParamValue::Float(v))
            })
            .collect()
    }

    /// The README's point: batch 64, lr 0.01, momentum 0.9, wd 1e-4, 3 layers, 256 units,
    /// dropout 0.1.
    const README_POINT: [f64; 7] = [64.0, 0.01, 0.9, 1e-4, 3.0, 256.0, 0.1];

    fn problem(problems: &[Box<dyn FidelityProblem>], task: u32) -> &dyn FidelityProblem {
        let name = format!("lcbench_{task}");
        problems
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.as_ref())
            .expect("every task has a problem")
    }

    #[test]
    fn lcbench_reproduces_the_reference_values() {
        let Some(data) = real_data() else { return };
        let problems = lcbench_problems(&data).expect("loads");
        let names: Vec<String> = problems.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            LCBENCH_TASKS.map(|t| format!("lcbench_{t}")).to_vec()
        );
        let p = problem(&problems, 3945);
        assert_eq!(p.max_steps(), 52);
        assert!(p.optimum().is_none());
        let x = params(README_POINT);
        let expected = [
            (1, 50.06),
            (2, 84.69),
            (4, 89.82),
            (8, 90.63),
            (16, 90.77),
            (32, 91.13),
            (52, 91.75),
        ];
        for (epoch, accuracy) in expected {
            let error = p.evaluate_at(&x, epoch, 0);
            assert!(
                (100.0 - error - accuracy).abs() < 0.01,
                "epoch {epoch}: val_accuracy {} vs {accuracy}",
                100.0 - error
            );
            // The noise seed is ignored.
            assert_eq!(error.to_bits(), p.evaluate_at(&x, epoch, 99).to_bits());
        }
    }

    /// yahpo_gym 1.0.2's (val_accuracy, cumulative time) at epochs 1, 26, 52 (module doc;
    /// task 3945 at epoch 26: 90.7780, 88.962 s).
    #[test]
    fn lcbench_matches_yahpo_gym_on_every_task() {
        let Some(data) = real_data() else { return };
        let surrogate = Arc::new(Surrogate::load(&data).expect("loads"));
        // (task, point, (val_accuracy, time) at epochs 1, 26 and 52).
        type Case = (u32, [f64; 7], [(f64, f64); 3]);
        let cases: [Case; 6] = [
            (
                3945,
                README_POINT,
                [(50.0627, 16.950), (90.7780, 88.962), (91.7521, 145.332)],
            ),
            (
                7593,
                [16.0, 2e-4, 0.1, 1e-5, 1.0, 64.0, 0.0],
                [(28.4691, 11.191), (64.9124, 407.462), (66.5018, 615.652)],
            ),
            (
                34539,
                [512.0, 0.09, 0.99, 0.1, 5.0, 1024.0, 1.0],
                [(39.8795, 7.438), (82.5, 248.781), (84.8219, 616.802)],
            ),
            (
                126025,
                [128.0, 1e-3, 0.5, 0.01, 2.0, 512.0, 0.5],
                [(48.9711, 4.674), (78.1771, 62.585), (78.3489, 115.832)],
            ),
            (
                146212,
                [32.0, 0.03, 0.8, 1e-3, 4.0, 128.0, 0.3],
                [(0.3386, 36.563), (79.2487, 188.234), (92.4742, 136.172)],
            ),
            (
                167104,
                [256.0, 5e-3, 0.7, 0.05, 3.0, 700.0, 0.7],
                [(51.7957, 3.995), (86.2602, 92.401), (87.14, 177.619)],
            ),
        ];
        for (task, x, expected) in cases {
            let index = surrogate.task_index(task).expect("known");
            let rows = surrogate.predict(index, &x).expect("runs");
            for (epoch, (accuracy, time)) in [1, 26, 52].into_iter().zip(expected) {
                let got = f64::from(rows[epoch - 1][ACCURACY_COLUMN]);
                assert!((got - accuracy).abs() < 0.01, "{task}@{epoch}: {got}");
                let got = f64::from(rows[epoch - 1][TIME_COLUMN]);
                assert!((got - time).abs() < 0.01, "{task}@{epoch}: {got} s");
            }
        }
    }

    #[test]
    fn lcbench_costs_are_positive_and_follow_the_cumulative_time() {
        let Some(data) = real_data() else { return };
        let problems = lcbench_problems(&data).expect("loads");
        let p = problem(&problems, 3945);
        let x = params(README_POINT);
        let costs: Vec<f64> = (1..=52).map(|z| p.cost(&x, z)).collect();
        assert!(costs.iter().all(|&c| c >= MIN_STEP_COST), "{costs:?}");
        // Epoch 1 costs the whole first time (16.95 s); epoch 2's time dips (15.65 s), so it
        // costs the minimum; then the steps climb back to the final time, 145.33 s.
        assert!((costs[0] - 16.950).abs() < 0.01);
        assert_eq!(costs[1].to_bits(), MIN_STEP_COST.to_bits());
        let total: f64 = costs.iter().sum();
        assert!((total - 145.332 - MIN_STEP_COST).abs() < 0.01, "{total}");
        // Repeated and out-of-range steps are consistent.
        assert_eq!(p.cost(&x, 7).to_bits(), costs[6].to_bits());
        assert_eq!(p.cost(&x, 0).to_bits(), costs[0].to_bits());
        assert_eq!(p.cost(&x, 500).to_bits(), costs[51].to_bits());
        assert_eq!(
            p.evaluate_at(&x, 500, 0).to_bits(),
            p.evaluate_at(&x, 52, 0).to_bits()
        );

        let mut missing = x.clone();
        missing.remove("momentum");
        assert!(p.evaluate_at(&missing, 3, 0).is_nan());
        assert!(p.cost(&missing, 3) > 0.0);
    }

    #[test]
    fn lcbench_step_costs_use_the_running_maximum() {
        let costs = step_costs(&[2.0, 1.0, 3.0, 3.0, 4.5, -1.0]);
        let expected = [2.0, MIN_STEP_COST, 1.0, MIN_STEP_COST, 1.5, MIN_STEP_COST];
        for (c, e) in costs.iter().zip(expected) {
            assert!((c - e).abs() < 1e-12, "{costs:?}");
        }
        assert_eq!(step_costs(&[-3.0])[0].to_bits(), MIN_STEP_COST.to_bits());
    }

    #[test]
    fn lcbench_suggests_the_space_of_config_space_json() {
        let Some(data) = real_data() else { return };
        let problems = lcbench_problems(&data).expect("loads");
        let p = problem(&problems, 167104);
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(3)
            .build()
            .expect("study");
        let started = std::time::Instant::now();
        let trials = 200;
        for _ in 0..trials {
            let mut t = study.ask().expect("ask");
            p.suggest(&mut t).expect("suggest");
            let frozen = t.frozen();
            let get = |name: &str| frozen.params.distribution(name).cloned();
            assert_eq!(
                get("batch_size"),
                Some(Distribution::from(
                    ferrotune::IntDistribution::log_range(16, 512).expect("valid")
                ))
            );
            assert!(matches!(get("learning_rate"), Some(Distribution::Float(d)) if d.log()));
            assert!(matches!(get("momentum"), Some(Distribution::Float(d)) if !d.log()));
            assert!(matches!(get("max_units"), Some(Distribution::Int(d)) if d.log()));
            assert!(frozen.params.get("epoch").is_none());
            assert!(frozen.params.get("OpenML_task_id").is_none());
            for step in 1..=p.max_steps() {
                let v = p.evaluate_at(&frozen.params, step, 0);
                assert!(v.is_finite() && (-1.0..=101.0).contains(&v), "{v}");
                assert!(p.cost(&frozen.params, step) >= MIN_STEP_COST);
            }
            let v = p.evaluate_at(&frozen.params, p.max_steps(), 0);
            study.tell(t, v).expect("tell");
        }
        eprintln!(
            "lcbench: {trials} points × 52 epochs (one forward pass each, then cached) in \
             {:.1} ms, {:.0} µs per point",
            started.elapsed().as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e6 / trials as f64
        );
    }

    #[test]
    fn lcbench_rejects_an_unknown_task() {
        let Some(data) = real_data() else { return };
        let err = lcbench_problem(&data, 42)
            .err()
            .expect("unknown task")
            .to_string();
        assert!(err.contains("unknown LCBench task 42"), "{err}");
        assert!(err.contains("3945") && err.contains("189909"), "{err}");
        // Any task the surrogate knows loads, not only the six.
        let p = lcbench_problem(&data, 189909).expect("known");
        assert_eq!(p.name(), "lcbench_189909");
    }

    #[test]
    fn lcbench_says_where_the_data_goes_when_it_is_missing() {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-lcbench-none-{}", std::process::id()));
        let err = lcbench_problems(&dir).err().expect("missing").to_string();
        assert!(err.contains("--data") && err.contains(DATA_ENV), "{err}");
        assert!(err.contains("yahpo/lcbench"), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }
}
