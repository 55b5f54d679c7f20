//! The main job's real machine-learning task as a benchmark problem: choose a classifier
//! (random forest, SVM or k-nearest neighbours) and its hyperparameters, and score it by
//! 3-fold stratified cross-validation on the digits dataset bundled with smartcore.
//!
//! The search space and the evaluation are the examples crate's (`ferrotune_examples::jobs`,
//! after Yang & Shami 2020, "On hyperparameter optimization of machine learning algorithms:
//! Theory and practice", Neurocomputing), joined into one conditional space: a categorical
//! `model` (`rf`, `svm`, `knn`) and then that model's parameters.
//!
//! An evaluation costs up to seconds (an RBF SVM at small `C`), so results are cached by
//! configuration: in memory, and optionally in a JSON Lines file shared by runs, samplers and
//! seeds. The objective is deterministic (the folds are fixed by [`FOLD_SEED`]), so the cache
//! key is the configuration alone: the canonical JSON of its parameters (keys sorted, numbers
//! as serde_json writes them). Each line of the file is
//! `{"problem":"digits","folds":3,"fold_seed":0,"params":{…},"error":0.0128}`; lines of
//! another problem or split are kept but ignored.

use crate::problem::Problem;
use ferrotune::{Params, Trial};
use ferrotune_examples::digits::{
    cv_accuracy, load_digits, Criterion, Dataset, Kernel, ModelConfig, ModelKind,
};
use ferrotune_examples::jobs::{suggest_config, FOLDS, JOBS};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// The problem's name (and the `problem` field of its cache lines).
pub const DIGITS_NAME: &str = "digits";

/// The seed of the cross-validation split: fixed, so every evaluation of a configuration
/// scores it on the same folds and the objective is deterministic.
pub const FOLD_SEED: u64 = 0;

/// Why the digits problem could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// The cache file could not be read, repaired or opened for appending.
    #[error("digits cache {}: {source}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A complete line of the cache file is not a cache entry.
    #[error("digits cache {} line {line}: {reason}", path.display())]
    CacheLine {
        /// The cache file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// One line of the cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    problem: String,
    folds: usize,
    fold_seed: u64,
    params: serde_json::Value,
    error: f64,
}

#[derive(Default)]
struct Cache {
    values: HashMap<String, f64>,
    /// The file new entries are appended to, while writing to it works.
    file: Option<(PathBuf, File)>,
}

/// Model selection and hyperparameter tuning on digits (see the [module documentation](self)):
/// the loss is the cross-validated error `1 − accuracy`; there is no known optimum.
pub struct DigitsProblem {
    data: Dataset,
    cache: Mutex<Cache>,
    computed: AtomicUsize,
}

impl std::fmt::Debug for DigitsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigitsProblem")
            .field("cached", &self.cached())
            .field("computed", &self.computed())
            .finish_non_exhaustive()
    }
}

impl DigitsProblem {
    /// The problem on the full digits dataset, with results cached in memory and, when
    /// `cache` is given, in that JSON Lines file (read now, appended to after each new
    /// evaluation). A last line cut short by an interrupted write is dropped.
    pub fn new(cache: Option<&Path>) -> Result<DigitsProblem, MlError> {
        let mut state = Cache::default();
        if let Some(path) = cache {
            let (values, file) = open_cache(path)?;
            state.values = values;
            state.file = Some((path.to_owned(), file));
        }
        Ok(DigitsProblem {
            data: load_digits(),
            cache: Mutex::new(state),
            computed: AtomicUsize::new(0),
        })
    }

    /// The configurations whose error is known (loaded from the cache file or computed).
    pub fn cached(&self) -> usize {
        self.lock().values.len()
    }

    /// The evaluations this problem actually computed (not answered from the cache).
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the entries of this problem and split from `path` (creating it when missing), drops
/// a last line without its newline, and opens the file for appending.
fn open_cache(path: &Path) -> Result<(HashMap<String, f64>, File), MlError> {
    let io = |source| MlError::Cache {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    let mut values = HashMap::new();
    let mut complete_len = 0u64;
    let mut reader = std::io::BufReader::new(&mut file);
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        number += 1;
        complete_len += n as u64;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|e| MlError::CacheLine {
            path: path.to_owned(),
            line: number,
            reason: e.to_string(),
        })?;
        if entry.problem == DIGITS_NAME && entry.folds == FOLDS && entry.fold_seed == FOLD_SEED {
            values.insert(entry.params.to_string(), entry.error);
        }
    }
    drop(reader);
    if file.metadata().map_err(io)?.len() > complete_len {
        file.set_len(complete_len).map_err(io)?;
        file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    }
    Ok((values, file))
}

/// The model names of the `model` parameter, in the examples crate's job order.
fn model_names() -> [&'static str; 3] {
    JOBS.map(|j| j.name)
}

/// The configuration `params` holds, read by the names `suggest_config` uses; `None` when
/// it holds no valid one.
fn config_from_params(params: &Params) -> Option<ModelConfig> {
    let int = |k: &str| params.get(k)?.as_i64();
    let size = |k: &str| usize::try_from(int(k)?).ok();
    let text = |k: &str| params.get(k)?.as_str();
    let model = text("model")?;
    let job = JOBS.iter().find(|j| j.name == model)?;
    Some(match job.kind {
        ModelKind::RandomForest => ModelConfig::RandomForest {
            n_estimators: size("n_estimators")?,
            max_depth: u16::try_from(int("max_depth")?).ok()?,
            min_samples_split: size("min_samples_split")?,
            min_samples_leaf: size("min_samples_leaf")?,
            criterion: match text("criterion")? {
                "gini" => Criterion::Gini,
                "entropy" => Criterion::Entropy,
                _ => return None,
            },
            max_features: size("max_features")?,
        },
        ModelKind::Svm => ModelConfig::Svm {
            c: params.get("C")?.as_f64()?,
            kernel: match text("kernel")? {
                "linear" => Kernel::Linear,
                "poly" => Kernel::Poly,
                "rbf" => Kernel::Rbf,
                "sigmoid" => Kernel::Sigmoid,
                _ => return None,
            },
        },
        ModelKind::Knn => ModelConfig::Knn {
            n_neighbors: size("n_neighbors")?,
        },
    })
}

/// The cache key: the parameters as canonical JSON (a sorted map of name to value).
fn canonical(params: &Params) -> Option<(String, serde_json::Value)> {
    let value = serde_json::to_value(params).ok()?;
    Some((value.to_string(), value))
}

impl Problem for DigitsProblem {
    fn name(&self) -> String {
        DIGITS_NAME.to_owned()
    }

    fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
        let model = trial.suggest_categorical("model", &model_names())?;
        if let Some(job) = JOBS.iter().find(|j| j.name == model) {
            suggest_config(trial, job.kind)?;
        }
        Ok(())
    }

    /// The cross-validated error `1 − accuracy`, from the cache when the configuration was
    /// evaluated before; NaN when the parameters hold no valid configuration or the model
    /// fails (a failure is not cached). `noise_seed` is unused: the objective is
    /// deterministic.
    fn evaluate(&self, params: &Params, _noise_seed: u64) -> f64 {
        let Some((key, json)) = canonical(params) else {
            return f64::NAN;
        };
        if let Some(&error) = self.lock().values.get(&key) {
            return error;
        }
        let Some(config) = config_from_params(params) else {
            return f64::NAN;
        };
        // Computed outside the lock: evaluations of different configurations run in parallel.
        let Ok(accuracy) = cv_accuracy(&self.data, &config, FOLDS, FOLD_SEED) else {
            return f64::NAN;
        };
        self.computed.fetch_add(1, Ordering::Relaxed);
        let error = 1.0 - accuracy;
        let mut cache = self.lock();
        cache.values.insert(key, error);
        if let Some((path, file)) = &mut cache.file {
            let entry = Entry {
                problem: DIGITS_NAME.to_owned(),
                folds: FOLDS,
                fold_seed: FOLD_SEED,
                params: json,
                error,
            };
            let written = serde_json::to_string(&entry)
                .map_err(std::io::Error::other)
                .and_then(|mut line| {
                    line.push('\n');
                    file.write_all(line.as_bytes())?;
                    file.flush()
                });
            if let Err(e) = written {
                // The value is still right; only later runs lose it. Say so once.
                eprintln!(
                    "warning: cannot append to the digits cache {} ({e}); caching in memory only",
                    path.display()
                );
                cache.file = None;
            }
        }
        error
    }

    fn optimum(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::{
        CategoricalDistribution, IntDistribution, Optimize, Param, ParamValue, SamplerSpec, Study,
        TrialError,
    };

    fn temp_file(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-bench-ml-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("digits-cache.jsonl")
    }

    /// A KNN configuration with `k` neighbours, as `suggest` records it.
    fn knn(k: i64) -> Params {
        vec![
            Param::new(
                "model",
                CategoricalDistribution::new(model_names()).unwrap().into(),
                "knn".into(),
            ),
            Param::new(
                "n_neighbors",
                IntDistribution::range(1, 20).unwrap().into(),
                ParamValue::Int(k),
            ),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn evaluations_are_cached_in_memory_and_in_the_file() {
        let path = temp_file("roundtrip");
        let first = DigitsProblem::new(Some(&path)).unwrap();
        let (a, b) = (knn(1), knn(7));
        let ea = first.evaluate(&a, 0);
        let eb = first.evaluate(&b, 1);
        assert!(
            (0.0..0.1).contains(&ea) && (0.0..0.1).contains(&eb),
            "{ea} {eb}"
        );
        assert_eq!(first.computed(), 2);
        assert_eq!(first.evaluate(&a, 5).to_bits(), ea.to_bits(), "in memory");
        assert_eq!(first.computed(), 2);
        drop(first);

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with(r#"{"problem":"digits","folds":3,"fold_seed":0,"params":{"model":"knn","n_neighbors":1},"error":"#),
            "{text}"
        );

        // A cut-off last line (an interrupted write) is dropped; the rest is reused.
        std::fs::write(&path, format!("{text}{{\"problem\":\"dig")).unwrap();
        let second = DigitsProblem::new(Some(&path)).unwrap();
        assert_eq!(second.cached(), 2);
        assert_eq!(second.evaluate(&b, 9).to_bits(), eb.to_bits());
        assert_eq!(second.evaluate(&a, 9).to_bits(), ea.to_bits());
        assert_eq!(second.computed(), 0, "both came from the file");
        drop(second);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        // A broken complete line is an error that names the file and the line.
        std::fs::write(&path, format!("{text}not json\n")).unwrap();
        let msg = DigitsProblem::new(Some(&path)).unwrap_err().to_string();
        assert!(msg.contains("digits-cache.jsonl line 3"), "{msg}");
        let _ = std::fs::remove_file(&path);
    }

    /// `config_from_params` reads back exactly what the examples crate's space suggests, for
    /// every model (no evaluation: cheap).
    #[test]
    fn parameters_map_back_to_the_suggested_configuration() {
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(7)
            .build()
            .unwrap();
        let problem_models = model_names();
        study
            .optimize(
                |t: &mut Trial| -> Result<f64, TrialError> {
                    let model = t.suggest_categorical("model", &problem_models)?;
                    let job = JOBS.iter().find(|j| j.name == model).unwrap();
                    let config = suggest_config(t, job.kind)?;
                    assert_eq!(config_from_params(&t.frozen().params), Some(config));
                    Ok(0.0)
                },
                Optimize::trials(60),
            )
            .unwrap();
    }
}
