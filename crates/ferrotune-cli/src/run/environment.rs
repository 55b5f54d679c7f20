//! The environment a trial's program starts with.
//!
//! | variable | value |
//! |---|---|
//! | `FERROTUNE_PARAM_<NAME>` | each active parameter (name upper-cased, other characters `_`); inactive ones are unset |
//! | `FERROTUNE_PARAMS` | path of `params.json`: every parameter, `null` when inactive |
//! | `FERROTUNE_TRIAL_NUMBER` | the trial's number in the study |
//! | `FERROTUNE_STUDY` | the study's name |
//! | `FERROTUNE_TRIAL_DIR` | the trial's own directory (logs, `params.json`; a place for checkpoints) |
//! | `FERROTUNE_SLOT` | the slot running the trial, 0 to jobs − 1 |
//! | `CUDA_VISIBLE_DEVICES` | the slot's GPUs, with `--gpus` |
//! | `OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `NUMEXPR_NUM_THREADS` | the slot's core count, with `--cpus-per-trial` |
//! | `PYTHONUNBUFFERED` | `1` unless already set, so Python's reports arrive as they are printed |
//!
//! With a scheduler (pause and resume):
//!
//! | variable | value |
//! |---|---|
//! | `FERROTUNE_CHECKPOINT_DIR` | an empty directory at each start: write the state there before each report line |
//! | `FERROTUNE_MAX_STEP` | the step at which the scheduler completes a trial |
//! | `FERROTUNE_RESUME_DIR` | when resuming: the checkpoint to load (read it, do not change it) |
//! | `FERROTUNE_RESUME_STEP` | when resuming: the checkpoint's step; train on from the next one |
//! | `FERROTUNE_ACK_FILE` | a file where the runner writes the last step whose report line it has handled (scheduler asked, state copied): a program that waits for it before changing its saved state can never have a later state copied (the Python helper's `report()` does) |
//!
//! `FERROTUNE_PARAM_*` variables inherited from the runner's own environment are removed, so a
//! value from elsewhere never passes for a parameter; so are the five above when they do not
//! apply (a fresh trial never sees a resume directory).

use super::slots::Slot;
use super::template::value_text;
use ferrotune::ParamValue;
use std::collections::BTreeMap;
use std::path::Path;

/// The prefix of parameter variables.
const PARAM_PREFIX: &str = "FERROTUNE_PARAM_";
/// The scratch directory the program writes its state into.
pub const CHECKPOINT_DIR_VAR: &str = "FERROTUNE_CHECKPOINT_DIR";
/// The checkpoint a resumed trial loads.
pub const RESUME_DIR_VAR: &str = "FERROTUNE_RESUME_DIR";
/// The step of that checkpoint.
pub const RESUME_STEP_VAR: &str = "FERROTUNE_RESUME_STEP";
/// The scheduler's last step.
pub const MAX_STEP_VAR: &str = "FERROTUNE_MAX_STEP";
/// The file the runner writes the last handled step into.
pub const ACK_FILE_VAR: &str = "FERROTUNE_ACK_FILE";
/// The pause-and-resume variables, removed when inherited.
const SCHEDULE_VARS: [&str; 5] = [
    CHECKPOINT_DIR_VAR,
    RESUME_DIR_VAR,
    RESUME_STEP_VAR,
    MAX_STEP_VAR,
    ACK_FILE_VAR,
];
/// Thread-count variables set from `--cpus-per-trial`.
pub const THREAD_VARS: [&str; 4] = [
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];

/// What identifies the trial to its program.
pub struct TrialIdentity<'a> {
    /// The study's name.
    pub study: &'a str,
    /// The trial's number.
    pub number: u64,
    /// The trial's directory.
    pub dir: &'a Path,
    /// The parameters file.
    pub params_file: &'a Path,
    /// The slot.
    pub slot: &'a Slot,
    /// The pause-and-resume side, in a scheduled study.
    pub schedule: Option<ScheduleEnv<'a>>,
}

/// A scheduled trial's checkpoint directories.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleEnv<'a> {
    /// The empty scratch directory the program saves its state into.
    pub checkpoint_dir: &'a Path,
    /// Where the runner acknowledges the step lines it has handled.
    pub ack_file: &'a Path,
    /// The step at which the scheduler completes a trial.
    pub max_step: Option<u64>,
    /// The checkpoint to resume from and its step.
    pub resume: Option<(&'a Path, u64)>,
}

/// The variables to set and the inherited ones to remove.
#[derive(Debug, Default, PartialEq)]
pub struct TrialEnv {
    /// Set, in this order.
    pub set: Vec<(String, String)>,
    /// Removed from the inherited environment first.
    pub remove: Vec<String>,
}

/// Builds a trial's environment. `var_names` maps each parameter to its variable (from
/// `SearchSpaceFile::env_var_names`, which rejects collisions); `inherited` is the runner's
/// own environment (names only matter).
pub fn trial_env<'a>(
    who: &TrialIdentity<'_>,
    params: &BTreeMap<String, Option<ParamValue>>,
    var_names: &[(String, String)],
    inherited: impl IntoIterator<Item = &'a str>,
) -> TrialEnv {
    let mut env = TrialEnv::default();
    let mut python_unbuffered = false;
    for name in inherited {
        if name.starts_with(PARAM_PREFIX) || SCHEDULE_VARS.contains(&name) {
            env.remove.push(name.to_owned());
        }
        python_unbuffered |= name == "PYTHONUNBUFFERED";
    }
    let mut set = |k: &str, v: String| env.set.push((k.to_owned(), v));
    for (param, var) in var_names {
        if let Some(Some(value)) = params.get(param) {
            set(var, value_text(value));
        }
    }
    set("FERROTUNE_PARAMS", who.params_file.display().to_string());
    set("FERROTUNE_TRIAL_NUMBER", who.number.to_string());
    set("FERROTUNE_STUDY", who.study.to_owned());
    set("FERROTUNE_TRIAL_DIR", who.dir.display().to_string());
    set("FERROTUNE_SLOT", who.slot.index.to_string());
    if let Some(s) = &who.schedule {
        set(CHECKPOINT_DIR_VAR, s.checkpoint_dir.display().to_string());
        set(ACK_FILE_VAR, s.ack_file.display().to_string());
        if let Some(max) = s.max_step {
            set(MAX_STEP_VAR, max.to_string());
        }
        if let Some((dir, step)) = s.resume {
            set(RESUME_DIR_VAR, dir.display().to_string());
            set(RESUME_STEP_VAR, step.to_string());
        }
    }
    if !who.slot.gpus.is_empty() {
        set("CUDA_VISIBLE_DEVICES", who.slot.gpus.join(","));
    }
    if !who.slot.cpus.is_empty() {
        for var in THREAD_VARS {
            set(var, who.slot.cpus.len().to_string());
        }
    }
    if !python_unbuffered {
        set("PYTHONUNBUFFERED", "1".to_owned());
    }
    env
}

/// The parameters file's contents: a JSON object with every parameter, `null` when inactive.
pub fn params_json(params: &BTreeMap<String, Option<ParamValue>>) -> String {
    // ParamValue and Option serialize infallibly (finite floats only reach here).
    serde_json::to_string_pretty(params).unwrap_or_else(|_| "{}".to_owned()) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space_file::{Format, SearchSpaceFile};
    use std::path::PathBuf;

    #[test]
    fn parameters_identity_and_slot_resources() {
        let space = SearchSpaceFile::from_str(
            r#"{"params": {"model.lr": {"type": "float", "low": 0.001, "high": 0.1},
                "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
                "momentum": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sgd"}}}}"#,
            Format::Json,
        )
        .unwrap();
        let names: Vec<(String, String)> = space
            .env_var_names()
            .unwrap()
            .into_iter()
            .map(|(p, v)| (p.to_owned(), v))
            .collect();
        let mut params = BTreeMap::new();
        params.insert("model.lr".to_owned(), Some(ParamValue::Float(0.01)));
        params.insert("opt".to_owned(), Some(ParamValue::Str("adam".into())));
        params.insert("momentum".to_owned(), None);
        let dir = PathBuf::from("/runs/s/trial-7");
        let file = dir.join("params.json");
        let slot = Slot {
            index: 1,
            gpus: vec!["2".into(), "3".into()],
            cpus: vec![4, 5, 6],
        };
        let who = TrialIdentity {
            study: "s",
            number: 7,
            dir: &dir,
            params_file: &file,
            slot: &slot,
            schedule: None,
        };
        let env = trial_env(
            &who,
            &params,
            &names,
            ["PATH", "FERROTUNE_PARAM_MOMENTUM", "HOME"],
        );
        let get = |k: &str| {
            env.set
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("FERROTUNE_PARAM_MODEL_LR"), Some("0.01"));
        assert_eq!(get("FERROTUNE_PARAM_OPT"), Some("adam"));
        assert_eq!(get("FERROTUNE_PARAM_MOMENTUM"), None, "inactive: unset");
        assert_eq!(
            env.remove,
            ["FERROTUNE_PARAM_MOMENTUM"],
            "and not inherited"
        );
        assert_eq!(get("FERROTUNE_PARAMS"), Some("/runs/s/trial-7/params.json"));
        assert_eq!(get("FERROTUNE_TRIAL_NUMBER"), Some("7"));
        assert_eq!(get("FERROTUNE_STUDY"), Some("s"));
        assert_eq!(get("FERROTUNE_TRIAL_DIR"), Some("/runs/s/trial-7"));
        assert_eq!(get("FERROTUNE_SLOT"), Some("1"));
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), Some("2,3"));
        for var in THREAD_VARS {
            assert_eq!(get(var), Some("3"), "{var}");
        }
        assert_eq!(get("PYTHONUNBUFFERED"), Some("1"));
        assert_eq!(get(CHECKPOINT_DIR_VAR), None, "not a scheduled study");

        // Without managed resources, the inherited ones are left alone.
        let plain = Slot {
            index: 0,
            gpus: Vec::new(),
            cpus: Vec::new(),
        };
        let who = TrialIdentity {
            slot: &plain,
            ..who
        };
        let env = trial_env(&who, &params, &names, ["PYTHONUNBUFFERED"]);
        let names: Vec<&str> = env.set.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"CUDA_VISIBLE_DEVICES"));
        assert!(!names.contains(&"OMP_NUM_THREADS"));
        assert!(
            !names.contains(&"PYTHONUNBUFFERED"),
            "the user's setting wins"
        );
    }

    #[test]
    fn scheduled_trials_get_their_checkpoint_directories() {
        let dir = PathBuf::from("/runs/s/trial-3");
        let file = dir.join("params.json");
        let scratch = dir.join("checkpoint");
        let ack = dir.join(".ferrotune-ack");
        let resume = PathBuf::from("/ckpt/s/trial-1/step-4");
        let slot = Slot {
            index: 0,
            gpus: Vec::new(),
            cpus: Vec::new(),
        };
        let mut who = TrialIdentity {
            study: "s",
            number: 3,
            dir: &dir,
            params_file: &file,
            slot: &slot,
            schedule: Some(ScheduleEnv {
                checkpoint_dir: &scratch,
                ack_file: &ack,
                max_step: Some(9),
                resume: Some((&resume, 4)),
            }),
        };
        let inherited = [RESUME_DIR_VAR, "PATH"];
        let env = trial_env(&who, &BTreeMap::new(), &[], inherited);
        let get =
            |env: &TrialEnv, k: &str| env.set.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get(&env, CHECKPOINT_DIR_VAR).as_deref(),
            Some("/runs/s/trial-3/checkpoint")
        );
        assert_eq!(get(&env, MAX_STEP_VAR).as_deref(), Some("9"));
        assert_eq!(
            get(&env, ACK_FILE_VAR).as_deref(),
            Some("/runs/s/trial-3/.ferrotune-ack")
        );
        assert_eq!(
            get(&env, RESUME_DIR_VAR).as_deref(),
            Some("/ckpt/s/trial-1/step-4")
        );
        assert_eq!(get(&env, RESUME_STEP_VAR).as_deref(), Some("4"));
        // A fresh trial: no resume variables, and an inherited one is removed.
        who.schedule = who.schedule.map(|s| ScheduleEnv { resume: None, ..s });
        let env = trial_env(&who, &BTreeMap::new(), &[], inherited);
        assert_eq!(get(&env, RESUME_DIR_VAR), None);
        assert_eq!(get(&env, RESUME_STEP_VAR), None);
        assert_eq!(env.remove, [RESUME_DIR_VAR]);
    }

    #[test]
    fn the_params_file_lists_inactive_parameters_as_null() {
        let mut params = BTreeMap::new();
        params.insert("lr".to_owned(), Some(ParamValue::Float(0.5)));
        params.insert("momentum".to_owned(), None);
        let v: serde_json::Value = serde_json::from_str(&params_json(&params)).unwrap();
        assert_eq!(v, serde_json::json!({"lr": 0.5, "momentum": null}));
    }
}
