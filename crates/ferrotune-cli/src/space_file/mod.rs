//! Search-space files: the parameters a command-line study tunes, written once in TOML, YAML or
//! JSON, with conditional parameters.
//!
//! # The schema (the same in all three formats)
//! ```toml
//! [params.lr]
//! type = "float"          # float | int | categorical
//! low = 1e-5
//! high = 1e-1
//! log = true              # optional; `step = 0.1` optional for float and int
//!
//! [params.optimizer]
//! type = "categorical"
//! choices = ["adam", "sgd"]
//!
//! [params.momentum]
//! type = "float"
//! low = 0.0
//! high = 0.99
//! when = { optimizer = ["sgd"] }   # active only for these values of another parameter
//! ```
//! `when` holds one or more conditions, all of which must hold; each names a categorical or int
//! parameter and the values (one, or a list) for which this parameter is active. The parameter
//! named may itself be conditional (a chain); a parameter whose condition names an inactive
//! parameter is inactive too. Cycles are errors.
//!
//! Distributions are built with the library's constructors, so a bad range is reported in the
//! library's words. Unknown keys are errors that name the key; TOML, YAML and JSON syntax and
//! type errors keep the format's line and column. Every error names the file and, where there
//! is one, the parameter.
//!
//! # Order
//! Parameters are suggested in file order (TOML tables are read order-preserving), except that
//! a parameter always comes after the parameters its `when` names: the order is the stable
//! topological order of the file order.
//!
//! # Crates
//! TOML is read with `toml` (order-preserving tables, no writer). YAML is read with
//! `yaml_serde`, the YAML organization's maintained continuation of the deprecated
//! `serde_yaml`: the same serde API and error locations (line and column, and the key path),
//! actively released. Built cold as this workspace builds dependencies (opt-level 3), it costs
//! about 5 s of CPU with `libyaml-rs`, against about 20 s for `serde-saphyr`'s deserializer
//! (whose dependencies include `encoding_rs` and `annotate-snippets`); `serde_yaml_ng` and
//! `serde_norway` cost the same as `yaml_serde` but have had no release since 2024. The TOML
//! stack costs about 4 s.
//!
//! # Storage
//! A study created from a file stores the space as a system attribute ([`SPACE_ATTR`]) in the
//! JSON form of [`SearchSpaceFile::to_json`], so workers on other machines read exactly the
//! same space without the file.

mod parse;
#[cfg(test)]
mod tests;

use ferrotune::{Distribution, ParamValue, Trial};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The study system attribute holding the search space of a study created from a file.
pub const SPACE_ATTR: &str = "ferrotune:space";

/// The version of the stored JSON form; a newer one is refused with a clear message.
const STORED_VERSION: u64 = 1;

/// A search-space file's format, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` or `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format a path's extension names (case-insensitive). An unknown or missing extension
    /// is an error listing the supported ones.
    pub fn from_path(path: &Path) -> Result<Format, SpaceError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("toml") => Ok(Format::Toml),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("json") => Ok(Format::Json),
            other => Err(SpaceError::UnknownFormat {
                origin: path.display().to_string(),
                found: other.map_or_else(
                    || "a file without an extension".to_owned(),
                    |e| format!("extension `.{e}`"),
                ),
            }),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        })
    }
}

/// Everything that can be wrong with a search space. Each message starts with where the space
/// came from (the file's path) and, for a parameter's problem, names the parameter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceError {
    /// The file could not be read.
    #[error("cannot read search-space file {path}")]
    Read {
        /// The path, as given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The extension names no supported format.
    #[error(
        "{origin}: unsupported search-space format ({found}); use .toml, .yaml, .yml or .json"
    )]
    UnknownFormat {
        /// The path.
        origin: String,
        /// What was found instead.
        found: String,
    },
    /// The text is not valid in its format, or does not fit the schema (unknown key, wrong
    /// type); the message is the format's own, with its line and column.
    #[error("{origin}: {}invalid {format}: {message}", param_prefix(param))]
    Syntax {
        /// Where the space came from.
        origin: String,
        /// The format.
        format: Format,
        /// The parameter being read when the error happened, if any.
        param: Option<String>,
        /// The format's message.
        message: String,
    },
    /// One parameter is wrong: its range, its choices, or its `when` condition.
    #[error("{origin}: parameter \"{name}\": {problem}")]
    Param {
        /// Where the space came from.
        origin: String,
        /// The parameter.
        name: String,
        /// What is wrong, and the fix where there is one.
        problem: String,
    },
    /// The space as a whole is wrong: empty, or its conditions form a cycle.
    #[error("{origin}: {problem}")]
    Space {
        /// Where the space came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },
}

fn param_prefix(param: &Option<String>) -> String {
    param
        .as_ref()
        .map(|p| format!("parameter \"{p}\": "))
        .unwrap_or_default()
}

/// Renders a value as it is written in JSON (`"sgd"`, `3`, `0.5`, `true`), so that `1` and
/// `1.0` stay distinguishable in messages.
fn render(value: &ParamValue) -> String {
    match value {
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(x) if x.is_finite() => format!("{x:?}"),
        ParamValue::Float(x) => x.to_string(),
        ParamValue::Str(s) => serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}")),
    }
}

fn render_list(values: &[ParamValue]) -> String {
    values.iter().map(render).collect::<Vec<_>>().join(", ")
}

/// One condition of a `when`: the parameter it tests and the values for which it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    param: String,
    values: Vec<ParamValue>,
}

impl Condition {
    /// A condition that holds when `param` takes one of `values`. It is checked against the
    /// space when the space is built ([`SearchSpaceFile::new`]).
    pub fn new(param: impl Into<String>, values: Vec<ParamValue>) -> Self {
        Condition {
            param: param.into(),
            values,
        }
    }
    /// The parameter tested.
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn param(&self) -> &str {
        &self.param
    }
    /// The values for which the condition holds, in the tested parameter's order (choice
    /// order, or increasing integers) once the space is built.
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn values(&self) -> &[ParamValue] {
        &self.values
    }
    /// Whether the condition holds for these parameter values (`None`: inactive, for which no
    /// condition holds).
    pub fn holds(&self, assigned: &BTreeMap<String, Option<ParamValue>>) -> bool {
        matches!(assigned.get(&self.param), Some(Some(v)) if self.values.contains(v))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.values.as_slice() {
            [one] => write!(f, "{} = {}", self.param, render(one)),
            many => write!(f, "{} in [{}]", self.param, render_list(many)),
        }
    }
}

/// One parameter: its name, its distribution, and the conditions under which it is active
/// (all must hold; none means always active).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    name: String,
    distribution: Distribution,
    when: Vec<Condition>,
}

impl ParamSpec {
    /// A parameter; its conditions are checked when the space is built.
    pub fn new(name: impl Into<String>, distribution: Distribution, when: Vec<Condition>) -> Self {
        ParamSpec {
            name: name.into(),
            distribution,
            when,
        }
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The distribution values are drawn from.
    pub fn distribution(&self) -> &Distribution {
        &self.distribution
    }
    /// The conditions, sorted by the parameter they test; empty for an unconditional one.
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn conditions(&self) -> &[Condition] {
        &self.when
    }
    /// Whether the parameter is active given the values of the parameters before it
    /// (`None` for an inactive one).
    pub fn is_active(&self, assigned: &BTreeMap<String, Option<ParamValue>>) -> bool {
        self.when.iter().all(|c| c.holds(assigned))
    }
    /// The conditions as text (`optimizer = "sgd" and layers in [2, 3]`), or `None`.
    pub fn conditions_text(&self) -> Option<String> {
        (!self.when.is_empty()).then(|| {
            self.when
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        })
    }
}

impl fmt::Display for ParamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.distribution)?;
        if let Some(when) = self.conditions_text() {
            write!(f, " when {when}")?;
        }
        Ok(())
    }
}

/// A validated search space: parameters in suggestion order (every parameter after those its
/// conditions name), ready to suggest from a trial.
///
/// Built from a file ([`load`](Self::load)), from text ([`from_str`](Self::from_str)), from
/// parameters ([`new`](Self::new)) or from the JSON stored with a study
/// ([`from_json`](Self::from_json)); every path runs the same checks.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpaceFile {
    params: Vec<ParamSpec>,
}

/// The stored JSON form: a list, so the order survives storages whose JSON objects sort keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u64,
    params: Vec<StoredParam>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredParam {
    name: String,
    distribution: Distribution,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    when: Vec<Condition>,
}

impl SearchSpaceFile {
    /// Reads a file; the format comes from the extension (.toml, .yaml, .yml, .json).
    pub fn load(path: &Path) -> Result<Self, SpaceError> {
        let format = Format::from_path(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, format, &path.display().to_string())
    }

    /// Reads a space from text in `format`; messages name it `<TOML text>` (or YAML, JSON).
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn from_str(text: &str, format: Format) -> Result<Self, SpaceError> {
        Self::parse(text, format, &format!("<{format} text>"))
    }

    /// Reads a space from text in `format`; messages start with `origin` (a path, say).
    pub fn parse(text: &str, format: Format, origin: &str) -> Result<Self, SpaceError> {
        let raw = parse::parse(text, format).map_err(|f| SpaceError::Syntax {
            origin: origin.to_owned(),
            format,
            param: f.param,
            message: f.message,
        })?;
        let mut params = Vec::with_capacity(raw.len());
        for (name, raw) in raw {
            let problem = |problem: String| SpaceError::Param {
                origin: origin.to_owned(),
                name: name.clone(),
                problem,
            };
            let distribution = raw.distribution().map_err(problem)?;
            let when = match &raw.when {
                None => Vec::new(),
                Some(map) if map.0.is_empty() => {
                    return Err(problem(
                        "`when` is empty; name the parameter it depends on, or drop it".into(),
                    ))
                }
                Some(map) => map
                    .0
                    .iter()
                    .map(|(param, values)| Condition::new(param.clone(), values.0.clone()))
                    .collect(),
            };
            params.push(ParamSpec::new(name, distribution, when));
        }
        Self::build(origin, params)
    }

    /// A space from parameters in file order, with the same checks as a file.
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn new(params: Vec<ParamSpec>) -> Result<Self, SpaceError> {
        Self::build("search space", params)
    }

    /// Checks names and conditions, canonicalizes conditions (sorted by parameter, values in
    /// the tested parameter's order, duplicates dropped) and orders the parameters.
    fn build(origin: &str, mut params: Vec<ParamSpec>) -> Result<Self, SpaceError> {
        let param_error = |name: &str, problem: String| SpaceError::Param {
            origin: origin.to_owned(),
            name: name.to_owned(),
            problem,
        };
        if params.is_empty() {
            return Err(SpaceError::Space {
                origin: origin.to_owned(),
                problem: "the search space has no parameters".into(),
            });
        }
        for (i, p) in params.iter().enumerate() {
            if p.name.is_empty() {
                return Err(param_error("", "a parameter needs a non-empty name".into()));
            }
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(param_error(
                    &p.name,
                    "defined twice; give each parameter one entry".into(),
                ));
            }
            if let Distribution::Categorical(c) = &p.distribution {
                if let Some(bad) = c
                    .choices()
                    .iter()
                    .find(|v| matches!(v, ParamValue::Float(x) if !x.is_finite()))
                {
                    return Err(param_error(
                        &p.name,
                        format!("choice {bad} is not finite; stored spaces are JSON, which has no infinities"),
                    ));
                }
            }
        }
        let known = || {
            params
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut canonical: Vec<Vec<Condition>> = Vec::with_capacity(params.len());
        for p in &params {
            let mut conditions: Vec<Condition> = Vec::with_capacity(p.when.len());
            for c in &p.when {
                let fail = |problem: String| Err(param_error(&p.name, problem));
                if c.param == p.name {
                    return fail("`when` refers to the parameter itself".into());
                }
                if conditions.iter().any(|d| d.param == c.param) {
                    return fail(format!("`when` tests \"{}\" twice", c.param));
                }
                let Some(target) = params.iter().find(|q| q.name == c.param) else {
                    return fail(format!(
                        "`when` refers to \"{}\", which is not a parameter (known: {})",
                        c.param,
                        known()
                    ));
                };
                let dist = &target.distribution;
                if let Distribution::Float(_) = dist {
                    return fail(format!(
                        "`when` refers to \"{}\", a float parameter; conditions can only test \
                         categorical and int parameters",
                        c.param
                    ));
                }
                if c.values.is_empty() {
                    return fail(format!(
                        "`when.{}` lists no values; list the values for which \"{}\" is active",
                        c.param, p.name
                    ));
                }
                let mut values: Vec<(f64, ParamValue)> = Vec::with_capacity(c.values.len());
                for v in &c.values {
                    let internal = dist
                        .to_internal(v)
                        .and_then(|x| Ok((x, dist.to_external(x)?)));
                    match internal {
                        Ok(pair) => values.push(pair),
                        Err(_) => {
                            let among = match dist {
                                Distribution::Categorical(cat) => {
                                    format!("one of its choices ({})", render_list(cat.choices()))
                                }
                                other => format!("a value of {other}"),
                            };
                            return fail(format!(
                                "`when.{}`: {} is not {among}",
                                c.param,
                                render(v)
                            ));
                        }
                    }
                }
                values.sort_by(|a, b| a.0.total_cmp(&b.0));
                values.dedup_by(|a, b| a.0.total_cmp(&b.0).is_eq());
                conditions.push(Condition::new(
                    c.param.clone(),
                    values.into_iter().map(|(_, v)| v).collect(),
                ));
            }
            conditions.sort_by(|a, b| a.param.cmp(&b.param));
            canonical.push(conditions);
        }
        for (p, when) in params.iter_mut().zip(canonical) {
            p.when = when;
        }
        let order = topological_order(&params).map_err(|cycle| SpaceError::Space {
            origin: origin.to_owned(),
            problem: format!(
                "the `when` conditions form a cycle: {} (each is active only depending on the next)",
                cycle.join(" -> ")
            ),
        })?;
        let mut slots: Vec<Option<ParamSpec>> = params.into_iter().map(Some).collect();
        let params = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(SearchSpaceFile { params })
    }

    /// The parameters in suggestion order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The parameter with this name.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter names in suggestion order.
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().map(|p| p.name.as_str())
    }

    /// How many parameters the space has (active or not).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the space has no parameters (never true for a built space).
    #[allow(
        dead_code,
        reason = "API for the command-line runner; used by tests until then"
    )]
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Walks the parameters in order, asking `value_of` for each active one; inactive ones
    /// (a condition fails, or names an inactive parameter) map to `None`. The result holds
    /// every parameter of the space. [`suggest`](Self::suggest) is this with a trial; the
    /// runner can use it with fixed or enqueued values.
    pub fn resolve<E>(
        &self,
        mut value_of: impl FnMut(&ParamSpec) -> Result<ParamValue, E>,
    ) -> Result<BTreeMap<String, Option<ParamValue>>, E> {
        let mut assigned = BTreeMap::new();
        for p in &self.params {
            let value = if p.is_active(&assigned) {
                Some(value_of(p)?)
            } else {
                None
            };
            assigned.insert(p.name.clone(), value);
        }
        Ok(assigned)
    }

    /// Suggests every active parameter from the trial (in order, so conditions see the values
    /// they test) and returns all parameters, `None` for the inactive ones (which the trial
    /// never records).
    pub fn suggest(
        &self,
        trial: &mut Trial<'_>,
    ) -> ferrotune::Result<BTreeMap<String, Option<ParamValue>>> {
        self.resolve(|p| trial.suggest(&p.name, p.distribution.clone()))
    }

    /// The JSON form stored with a study: `{"version": 1, "params": [{"name", "distribution",
    /// "when"}…]}` in suggestion order (a list, since some storages sort object keys).
    pub fn to_json(&self) -> serde_json::Value {
        let stored = Stored {
            version: STORED_VERSION,
            params: self
                .params
                .iter()
                .map(|p| StoredParam {
                    name: p.name.clone(),
                    distribution: p.distribution.clone(),
                    when: p.when.clone(),
                })
                .collect(),
        };
        // Distributions and finite parameter values always serialize; `build` rejects the
        // only values JSON cannot hold (non-finite choices).
        serde_json::to_value(stored).expect("a validated search space serializes to JSON")
    }

    /// Reads the JSON form of [`to_json`](Self::to_json), with every check a file gets.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SpaceError> {
        let origin = "the stored search space";
        let stored: Stored =
            serde_json::from_value(value.clone()).map_err(|e| SpaceError::Syntax {
                origin: origin.into(),
                format: Format::Json,
                param: None,
                message: e.to_string(),
            })?;
        if stored.version != STORED_VERSION {
            return Err(SpaceError::Space {
                origin: origin.into(),
                problem: format!(
                    "it has version {}, but this ferrotune reads version {STORED_VERSION}; \
                     use the ferrotune that created the study",
                    stored.version
                ),
            });
        }
        let params = stored
            .params
            .into_iter()
            .map(|p| ParamSpec::new(p.name, p.distribution, p.when))
            .collect();
        Self::build(origin, params)
    }

    /// The first difference between two spaces, in words (`None` when they are the same
    /// space; order does not matter). `this` and `that` name the two in the message, e.g.
    /// `"the stored space"` and a file's path.
    pub fn difference(&self, this: &str, other: &SearchSpaceFile, that: &str) -> Option<String> {
        for p in &self.params {
            let Some(q) = other.get(&p.name) else {
                return Some(format!(
                    "parameter \"{}\" is in {this} but not in {that}",
                    p.name
                ));
            };
            if p.distribution != q.distribution {
                return Some(format!(
                    "parameter \"{}\" is {} in {this} but {} in {that}",
                    p.name, p.distribution, q.distribution
                ));
            }
            if p.when != q.when {
                let text = |s: &ParamSpec| {
                    s.conditions_text()
                        .map_or_else(|| "always active".to_owned(), |w| format!("when {w}"))
                };
                return Some(format!(
                    "parameter \"{}\" is active {} in {this} but {} in {that}",
                    p.name,
                    text(p),
                    text(q)
                ));
            }
        }
        other
            .params
            .iter()
            .find(|q| self.get(&q.name).is_none())
            .map(|q| format!("parameter \"{}\" is in {that} but not in {this}", q.name))
    }

    /// The environment variable of each parameter (see [`env_var_name`]), in suggestion
    /// order; an error names two parameters that map to the same variable.
    pub fn env_var_names(&self) -> Result<Vec<(&str, String)>, String> {
        let mut out: Vec<(&str, String)> = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let var = env_var_name(&p.name);
            if let Some((other, _)) = out.iter().find(|(_, v)| *v == var) {
                return Err(format!(
                    "parameters \"{other}\" and \"{}\" both map to the environment variable \
                     {var}; rename one",
                    p.name
                ));
            }
            out.push((&p.name, var));
        }
        Ok(out)
    }
}

/// The environment variable that carries a parameter: `FERROTUNE_PARAM_` and the name in upper
/// case, with every character other than an ASCII letter or digit replaced by `_`
/// (`model.lr` → `FERROTUNE_PARAM_MODEL_LR`).
pub fn env_var_name(param: &str) -> String {
    let mut var = String::from("FERROTUNE_PARAM_");
    var.extend(param.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}

/// The stable topological order of `params` (each after the parameters its conditions name,
/// otherwise in the given order), or a cycle as a list of names that starts and ends with the
/// same name.
fn topological_order(params: &[ParamSpec]) -> Result<Vec<usize>, Vec<String>> {
    let index = |name: &str| params.iter().position(|p| p.name == name);
    let deps: Vec<Vec<usize>> = params
        .iter()
        .map(|p| p.when.iter().filter_map(|c| index(&c.param)).collect())
        .collect();
    let mut placed = vec![false; params.len()];
    let mut order = Vec::with_capacity(params.len());
    while order.len() < params.len() {
        let ready = (0..params.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match ready {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                // Every unplaced parameter waits on another unplaced one: follow the first
                // unplaced dependency from any of them until a parameter repeats.
                let mut path: Vec<usize> = Vec::new();
                let mut at = (0..params.len()).find(|&i| !placed[i]).unwrap_or_default();
                while !path.contains(&at) {
                    path.push(at);
                    at = deps[at].iter().copied().find(|&d| !placed[d]).unwrap_or(at);
                }
                let start = path.iter().position(|&i| i == at).unwrap_or_default();
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|&i| params[i].name.clone())
                    .collect();
                cycle.push(params[at].name.clone());
                return Err(cycle);
            }
        }
    }
    Ok(order)
}
