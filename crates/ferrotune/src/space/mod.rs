//! Search spaces: the distributions a parameter is drawn from, validated at construction, and
//! the one internal representation every sampler and storage works with.
//!
//! # Internal representation
//! Every parameter value is stored as one `f64`, its *internal* value: floats and ints as
//! themselves, a categorical as the index of its choice. [`Distribution::to_internal`] and
//! [`Distribution::to_external`] convert between the two.
//!
//! Samplers that work on the unit cube (random, QMC) use [`Distribution::from_unit`], which
//! maps `u ∈ [0, 1)` onto the distribution: linearly, on a log scale for `log` distributions,
//! and onto the grid points for stepped and integer ones (each grid point gets an equal share of
//! the cube, so a uniform `u` gives a uniform grid point). [`Distribution::to_unit`] is its
//! inverse on the grid (it returns the centre of the grid point's cell).
//!
//! # JSON form
//! Distributions serialize internally tagged, with the same keys the CLI's search-space files
//! use, and deserializing validates exactly like the constructors:
//! ```json
//! {"type": "float", "low": 1e-5, "high": 0.1, "log": true}
//! {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}
//! {"type": "int", "low": 1, "high": 64, "log": false, "step": 1}
//! {"type": "categorical", "choices": ["adam", "sgd", 3, 0.5, true]}
//! ```
//!
//! # Steps that do not divide the range
//! When `high − low` is not a multiple of `step`, `high` is lowered to the largest grid point
//! `low + k·step` below it and a warning is logged (the rule Optuna follows), so every value a
//! distribution produces is on its grid and inside its bounds.

mod value;

pub use value::ParamValue;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Relative tolerance used to decide whether a float lies on a step grid.
const GRID_TOLERANCE: f64 = 1e-8;

/// A float parameter's range: uniform, log-uniform, or on a grid of `step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FloatFields", into = "FloatFields")]
pub struct FloatDistribution {
    low: f64,
    high: f64,
    log: bool,
    step: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FloatFields {
    low: f64,
    high: f64,
    #[serde(default)]
    log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<f64>,
}

impl TryFrom<FloatFields> for FloatDistribution {
    type Error = Error;
    fn try_from(f: FloatFields) -> Result<Self> {
        FloatDistribution::new(f.low, f.high, f.log, f.step)
    }
}

impl From<FloatDistribution> for FloatFields {
    fn from(d: FloatDistribution) -> Self {
        FloatFields {
            low: d.low,
            high: d.high,
            log: d.log,
            step: d.step,
        }
    }
}

impl FloatDistribution {
    /// A float range `[low, high]`, optionally log-scaled or on a grid of `step` starting at
    /// `low`. Errors name the value and the bound it breaks: non-finite bounds, `low > high`,
    /// `log` with `low <= 0`, `step <= 0`, and `log` together with `step`.
    pub fn new(low: f64, high: f64, log: bool, step: Option<f64>) -> Result<Self> {
        let bad = |msg: String| Err(Error::InvalidDistribution(msg));
        if !low.is_finite() || !high.is_finite() {
            return bad(format!(
                "float bounds must be finite, got low={low}, high={high}"
            ));
        }
        if low > high {
            return bad(format!(
                "float low={low} is greater than high={high}; swap them"
            ));
        }
        if log && low <= 0.0 {
            return bad(format!(
                "a log-scaled float needs low > 0, got low={low}; raise low or drop log"
            ));
        }
        let mut high = high;
        if let Some(step) = step {
            if log {
                return bad(format!(
                    "a float cannot be both log-scaled and stepped (step={step}); choose one"
                ));
            }
            if !(step.is_finite() && step > 0.0) {
                return bad(format!(
                    "float step must be > 0 and finite, got step={step}"
                ));
            }
            let points = grid_steps(low, high, step);
            let adjusted = low + points * step;
            if (adjusted - high).abs() > grid_slack(low, high, step, points) {
                tracing::warn!(
                    low,
                    high,
                    step,
                    adjusted,
                    "float range high - low is not a multiple of step; high lowered to the last grid point"
                );
                high = adjusted;
            }
        }
        Ok(FloatDistribution {
            low,
            high,
            log,
            step,
        })
    }

    /// A uniform float range `[low, high]`.
    pub fn uniform(low: f64, high: f64) -> Result<Self> {
        Self::new(low, high, false, None)
    }

    /// A log-uniform float range `[low, high]`, `low > 0`.
    pub fn log_uniform(low: f64, high: f64) -> Result<Self> {
        Self::new(low, high, true, None)
    }

    /// A float grid `low, low + step, …, high`.
    pub fn stepped(low: f64, high: f64, step: f64) -> Result<Self> {
        Self::new(low, high, false, Some(step))
    }

    /// The lower bound.
    pub fn low(&self) -> f64 {
        self.low
    }
    /// The upper bound (already lowered onto the grid for stepped ranges).
    pub fn high(&self) -> f64 {
        self.high
    }
    /// Whether the range is log-scaled.
    pub fn log(&self) -> bool {
        self.log
    }
    /// The grid step, if any.
    pub fn step(&self) -> Option<f64> {
        self.step
    }
}

/// The number of whole steps from `low` to `high`, forgiving floating-point noise just below a
/// whole number (0.3 / 0.1 is 2.9999999999999996).
fn grid_steps(low: f64, high: f64, step: f64) -> f64 {
    let ratio = (high - low) / step;
    let nearest = ratio.round();
    if ((ratio - nearest) * step).abs() <= grid_slack(low, high, step, nearest) {
        nearest
    } else {
        ratio.floor()
    }
}

/// How far `x` may sit from the grid point `low + k·step` and still count as on it:
/// [`GRID_TOLERANCE`] of the distance from `low` (at least one step), plus a few ulps of the
/// magnitudes involved, because `low + k·step` itself is rounded to the precision of `|low|`
/// (with `low = 1e6` and `step = 1e-3`, that rounding alone exceeds the relative tolerance).
fn grid_slack(low: f64, x: f64, step: f64, k: f64) -> f64 {
    GRID_TOLERANCE * step * k.abs().max(1.0) + 8.0 * f64::EPSILON * low.abs().max(x.abs())
}

/// An integer parameter's range: `low, low + step, …, high`, optionally log-scaled (step 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IntFields", into = "IntFields")]
pub struct IntDistribution {
    low: i64,
    high: i64,
    log: bool,
    step: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntFields {
    low: i64,
    high: i64,
    #[serde(default)]
    log: bool,
    #[serde(default = "one")]
    step: i64,
}

fn one() -> i64 {
    1
}

impl TryFrom<IntFields> for IntDistribution {
    type Error = Error;
    fn try_from(f: IntFields) -> Result<Self> {
        IntDistribution::new(f.low, f.high, f.log, f.step)
    }
}

impl From<IntDistribution> for IntFields {
    fn from(d: IntDistribution) -> Self {
        IntFields {
            low: d.low,
            high: d.high,
            log: d.log,
            step: d.step,
        }
    }
}

impl IntDistribution {
    /// An integer range `[low, high]` on a grid of `step` (1 for every integer). A log-scaled
    /// range needs `low >= 1` and `step == 1`. When `high − low` is not a multiple of `step`,
    /// `high` is lowered to the last grid point, with a warning.
    pub fn new(low: i64, high: i64, log: bool, step: i64) -> Result<Self> {
        let bad = |msg: String| Err(Error::InvalidDistribution(msg));
        if low > high {
            return bad(format!(
                "int low={low} is greater than high={high}; swap them"
            ));
        }
        if step <= 0 {
            return bad(format!("int step must be >= 1, got step={step}"));
        }
        if log && low < 1 {
            return bad(format!(
                "a log-scaled int needs low >= 1, got low={low}; raise low or drop log"
            ));
        }
        if log && step != 1 {
            return bad(format!(
                "a log-scaled int needs step = 1, got step={step}; drop one of them"
            ));
        }
        let span = high.checked_sub(low).ok_or_else(|| {
            Error::InvalidDistribution(format!("int range [{low}, {high}] overflows i64"))
        })?;
        let adjusted = low + span / step * step;
        if adjusted != high {
            tracing::warn!(
                low,
                high,
                step,
                adjusted,
                "int range high - low is not a multiple of step; high lowered to the last grid point"
            );
        }
        Ok(IntDistribution {
            low,
            high: adjusted,
            log,
            step,
        })
    }

    /// Every integer in `[low, high]`.
    pub fn range(low: i64, high: i64) -> Result<Self> {
        Self::new(low, high, false, 1)
    }

    /// Integers in `[low, high]`, drawn log-uniformly.
    pub fn log_range(low: i64, high: i64) -> Result<Self> {
        Self::new(low, high, true, 1)
    }

    /// The lower bound.
    pub fn low(&self) -> i64 {
        self.low
    }
    /// The upper bound (already lowered onto the grid).
    pub fn high(&self) -> i64 {
        self.high
    }
    /// Whether the range is log-scaled.
    pub fn log(&self) -> bool {
        self.log
    }
    /// The grid step (1 for plain integers).
    pub fn step(&self) -> i64 {
        self.step
    }
    /// How many values the range holds.
    pub fn cardinality(&self) -> u64 {
        ((self.high - self.low) / self.step) as u64 + 1
    }
}

/// A categorical parameter: one of a fixed, non-empty list of distinct choices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CategoricalFields", into = "CategoricalFields")]
pub struct CategoricalDistribution {
    choices: Vec<ParamValue>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoricalFields {
    choices: Vec<ParamValue>,
}

impl TryFrom<CategoricalFields> for CategoricalDistribution {
    type Error = Error;
    fn try_from(f: CategoricalFields) -> Result<Self> {
        CategoricalDistribution::new(f.choices)
    }
}

impl From<CategoricalDistribution> for CategoricalFields {
    fn from(d: CategoricalDistribution) -> Self {
        CategoricalFields { choices: d.choices }
    }
}

impl CategoricalDistribution {
    /// Choices must be non-empty, free of NaN and distinct by typed equality (`1` and `1.0`
    /// are different choices).
    pub fn new<I, V>(choices: I) -> Result<Self>
    where
        I: IntoIterator<Item = V>,
        V: Into<ParamValue>,
    {
        let choices: Vec<ParamValue> = choices.into_iter().map(Into::into).collect();
        if choices.is_empty() {
            return Err(Error::InvalidDistribution(
                "a categorical needs at least one choice, got none".into(),
            ));
        }
        for (i, c) in choices.iter().enumerate() {
            if let ParamValue::Float(x) = c {
                if x.is_nan() {
                    return Err(Error::InvalidDistribution(format!(
                        "categorical choice #{i} is NaN; NaN cannot be compared, so it cannot be a choice"
                    )));
                }
            }
            if let Some(j) = choices[..i].iter().position(|earlier| earlier == c) {
                return Err(Error::InvalidDistribution(format!(
                    "categorical choice {c} appears twice (at #{j} and #{i}); choices must be distinct"
                )));
            }
        }
        Ok(CategoricalDistribution { choices })
    }

    /// The choices, in declaration order.
    pub fn choices(&self) -> &[ParamValue] {
        &self.choices
    }

    /// The index of `value` among the choices.
    pub fn index_of(&self, value: &ParamValue) -> Option<usize> {
        self.choices.iter().position(|c| c == value)
    }
}

/// The distribution a parameter is drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Distribution {
    /// A float range.
    Float(FloatDistribution),
    /// An integer range.
    Int(IntDistribution),
    /// A list of choices.
    Categorical(CategoricalDistribution),
}

impl From<FloatDistribution> for Distribution {
    fn from(d: FloatDistribution) -> Self {
        Distribution::Float(d)
    }
}
impl From<IntDistribution> for Distribution {
    fn from(d: IntDistribution) -> Self {
        Distribution::Int(d)
    }
}
impl From<CategoricalDistribution> for Distribution {
    fn from(d: CategoricalDistribution) -> Self {
        Distribution::Categorical(d)
    }
}

impl Distribution {
    /// Converts a user-facing value to the internal `f64`, checking that it belongs here.
    /// Float distributions accept ints too (widened).
    pub fn to_internal(&self, value: &ParamValue) -> Result<f64> {
        let internal = match (self, value) {
            (Distribution::Float(_), v) => v.as_f64(),
            (Distribution::Int(_), ParamValue::Int(i)) => Some(*i as f64),
            (Distribution::Int(_), ParamValue::Float(x)) if x.fract() == 0.0 => Some(*x),
            (Distribution::Categorical(c), v) => c.index_of(v).map(|i| i as f64),
            _ => None,
        };
        match internal {
            Some(x) if self.contains(x) => Ok(x),
            _ => Err(Error::ValueOutOfDistribution {
                value: format!("{value} ({})", value.type_name()),
                distribution: self.to_string(),
            }),
        }
    }

    /// Converts an internal `f64` back to the user-facing value.
    pub fn to_external(&self, internal: f64) -> Result<ParamValue> {
        if !self.contains(internal) {
            return Err(Error::ValueOutOfDistribution {
                value: format!("internal {internal}"),
                distribution: self.to_string(),
            });
        }
        Ok(match self {
            Distribution::Float(_) => ParamValue::Float(internal),
            Distribution::Int(_) => ParamValue::Int(internal as i64),
            Distribution::Categorical(c) => c.choices[internal as usize].clone(),
        })
    }

    /// Whether an internal value lies inside the bounds and, for stepped and integer
    /// distributions, on the grid.
    pub fn contains(&self, internal: f64) -> bool {
        if !internal.is_finite() {
            return false;
        }
        match self {
            Distribution::Float(d) => match d.step {
                None => internal >= d.low && internal <= d.high,
                Some(step) => {
                    // The top grid point is computed as low + k·step, which may round below
                    // the value a user writes (0.0 + 3·0.3 = 0.8999999999999999 for 0.9), so
                    // the bounds get the same slack as the grid.
                    let k = ((internal - d.low) / step).round();
                    let nearest = d.low + k * step;
                    let slack = grid_slack(d.low, internal, step, k);
                    internal >= d.low - slack
                        && internal <= d.high + slack
                        && (internal - nearest).abs() <= slack
                }
            },
            Distribution::Int(d) => {
                internal.fract() == 0.0
                    && internal >= d.low as f64
                    && internal <= d.high as f64
                    && (internal as i64 - d.low) % d.step == 0
            }
            Distribution::Categorical(c) => {
                internal.fract() == 0.0 && internal >= 0.0 && (internal as usize) < c.choices.len()
            }
        }
    }

    /// Whether the distribution holds exactly one value (sampling it needs no sampler).
    pub fn is_single(&self) -> bool {
        match self {
            Distribution::Float(d) => (d.high - d.low) == 0.0,
            Distribution::Int(d) => d.low == d.high,
            Distribution::Categorical(c) => c.choices.len() == 1,
        }
    }

    /// The internal value of the lowest point (the only one when [`Self::is_single`]).
    pub fn low_internal(&self) -> f64 {
        match self {
            Distribution::Float(d) => d.low,
            Distribution::Int(d) => d.low as f64,
            Distribution::Categorical(_) => 0.0,
        }
    }

    /// The number of distinct values, or `None` for a continuous float range.
    pub fn cardinality(&self) -> Option<u64> {
        match self {
            Distribution::Float(d) => d
                .step
                .map(|step| grid_steps(d.low, d.high, step) as u64 + 1),
            Distribution::Int(d) => Some(d.cardinality()),
            Distribution::Categorical(c) => Some(c.choices.len() as u64),
        }
    }

    /// Maps `u ∈ [0, 1]` to an internal value; uniform `u` gives the distribution's own
    /// sampling law (uniform, log-uniform, or uniform over grid points).
    pub fn from_unit(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match self {
            Distribution::Float(d) => match d.step {
                Some(step) => {
                    let n = grid_steps(d.low, d.high, step) + 1.0;
                    let k = (u * n).floor().min(n - 1.0);
                    (d.low + k * step).min(d.high)
                }
                None if d.log => {
                    let (a, b) = (d.low.ln(), d.high.ln());
                    (a + u * (b - a)).exp().clamp(d.low, d.high)
                }
                None => (d.low + u * (d.high - d.low)).clamp(d.low, d.high),
            },
            Distribution::Int(d) if d.log => {
                // Log-uniform over the cells [k − ½, k + ½], then rounded: each integer's
                // probability is proportional to the log-width of its cell.
                let (a, b) = ((d.low as f64 - 0.5).ln(), (d.high as f64 + 0.5).ln());
                let x = (a + u * (b - a)).exp().round();
                x.clamp(d.low as f64, d.high as f64)
            }
            Distribution::Int(d) => {
                let n = d.cardinality() as f64;
                let k = (u * n).floor().min(n - 1.0);
                d.low as f64 + k * d.step as f64
            }
            Distribution::Categorical(c) => {
                let n = c.choices.len() as f64;
                (u * n).floor().min(n - 1.0)
            }
        }
    }

    /// The inverse of [`Self::from_unit`]: the unit-cube coordinate of an internal value (the
    /// centre of its cell for grid points), so `from_unit(to_unit(x)) == x` for every valid `x`.
    pub fn to_unit(&self, internal: f64) -> f64 {
        let u = match self {
            Distribution::Float(d) => match d.step {
                Some(step) => {
                    let n = grid_steps(d.low, d.high, step) + 1.0;
                    (((internal - d.low) / step).round() + 0.5) / n
                }
                None if d.log => {
                    let (a, b) = (d.low.ln(), d.high.ln());
                    if b > a {
                        (internal.ln() - a) / (b - a)
                    } else {
                        0.5
                    }
                }
                None if d.high > d.low => (internal - d.low) / (d.high - d.low),
                None => 0.5,
            },
            Distribution::Int(d) if d.log => {
                let (a, b) = ((d.low as f64 - 0.5).ln(), (d.high as f64 + 0.5).ln());
                (internal.ln() - a) / (b - a)
            }
            Distribution::Int(d) => {
                let n = d.cardinality() as f64;
                (((internal - d.low as f64) / d.step as f64).round() + 0.5) / n
            }
            Distribution::Categorical(c) => (internal + 0.5) / c.choices.len() as f64,
        };
        u.clamp(0.0, 1.0)
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Float(d) => {
                write!(f, "float[{}, {}]", d.low, d.high)?;
                if d.log {
                    write!(f, " log")?;
                }
                if let Some(step) = d.step {
                    write!(f, " step {step}")?;
                }
                Ok(())
            }
            Distribution::Int(d) => {
                write!(f, "int[{}, {}]", d.low, d.high)?;
                if d.log {
                    write!(f, " log")?;
                }
                if d.step != 1 {
                    write!(f, " step {}", d.step)?;
                }
                Ok(())
            }
            Distribution::Categorical(c) => {
                write!(f, "categorical[")?;
                for (i, choice) in c.choices.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{choice}")?;
                }
                write!(f, "]")
            }
        }
    }
}

#[cfg(test)]
mod tests;
