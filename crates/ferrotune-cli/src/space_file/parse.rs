//! Reading the three file formats into raw parameter entries, in file order, before any
//! distribution is built or condition checked.
//!
//! The file is deserialized straight from each format's own serde deserializer (no detour
//! through a generic value), so type errors and unknown keys keep the format's line and column.
//! The `params` table is read with a seed that remembers which parameter is being read, so
//! an error inside one is also attributed to it by name.

use super::Format;
use ferrotune::{
    CategoricalDistribution, Distribution, FloatDistribution, IntDistribution, ParamValue,
};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::cell::RefCell;
use std::fmt;

/// A parameter's `type`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Float,
    Int,
    Categorical,
}

/// One parameter entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParam {
    #[serde(rename = "type")]
    kind: Kind,
    low: Option<Number>,
    high: Option<Number>,
    log: Option<bool>,
    step: Option<Number>,
    choices: Option<Vec<Scalar>>,
    /// `{ other = [values…] }`, in file order.
    pub when: Option<OrderedMap<WhenValues>>,
}

/// The entries of a file, in file order.
pub(super) type RawParams = Vec<(String, RawParam)>;

/// Why a file could not be read as a search space: the parameter being read when the error
/// happened (if any) and the format's own message.
pub(super) struct ParseFailure {
    pub param: Option<String>,
    pub message: String,
}

/// Reads the `params` entries of a file in `format`.
pub(super) fn parse(text: &str, format: Format) -> Result<RawParams, ParseFailure> {
    let current = RefCell::new(None);
    let seed = FileSeed { current: &current };
    let result = match format {
        Format::Toml => toml::Deserializer::parse(text)
            .and_then(|de| seed.deserialize(de))
            .map_err(|e| e.to_string()),
        Format::Yaml => seed
            .deserialize(yaml_serde::Deserializer::from_str(text))
            .map_err(|e| e.to_string()),
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            seed.deserialize(&mut de)
                .and_then(|params| de.end().map(|()| params))
                .map_err(|e| {
                    let mut message = e.to_string();
                    if message.contains("expected `params`") {
                        message.push_str(
                            " (parameters go under a top-level \"params\" object: \
                             {\"params\": {\"lr\": {\"type\": \"float\", …}}})",
                        );
                    }
                    message
                })
        }
    };
    result.map_err(|message| ParseFailure {
        param: current.into_inner(),
        message: message.trim_end().to_owned(),
    })
}

/// Reads the top level: exactly one key, `params`.
struct FileSeed<'a> {
    current: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = RawParams;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawParams, D::Error> {
        d.deserialize_struct("SearchSpace", &["params"], self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = RawParams;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a search space with a `params` table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParams, A::Error> {
        let mut params = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "params" {
                return Err(de::Error::unknown_field(&key, &["params"]));
            }
            if params.is_some() {
                return Err(de::Error::duplicate_field("params"));
            }
            params = Some(map.next_value_seed(ParamsSeed {
                current: self.current,
            })?);
        }
        params.ok_or_else(|| de::Error::missing_field("params"))
    }
}

/// Reads the `params` table in order, noting which parameter is being read.
struct ParamsSeed<'a> {
    current: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_> {
    type Value = RawParams;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawParams, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_> {
    type Value = RawParams;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of parameters (name -> {type, …})")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParams, A::Error> {
        let mut out: RawParams = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.iter().any(|(n, _)| *n == name) {
                return Err(de::Error::custom(format_args!(
                    "parameter \"{name}\" is defined twice"
                )));
            }
            *self.current.borrow_mut() = Some(name.clone());
            let raw: RawParam = map.next_value()?;
            *self.current.borrow_mut() = None;
            out.push((name, raw));
        }
        Ok(out)
    }
}

/// A map read in file order; a key given twice is an error.
#[derive(Debug)]
pub(super) struct OrderedMap<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of parameter name -> values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("\"{key}\" is named twice")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

/// A number as written: integers stay integers, so an int parameter can reject `1.5`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(x) => x,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// The error for an unsigned integer beyond `i64`.
fn too_large<E: de::Error>(v: u64) -> E {
    E::custom(format_args!(
        "integer {v} is too large (the largest is {})",
        i64::MAX
    ))
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                i64::try_from(v).map(Number::Int).map_err(|_| too_large(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number::Float(v))
            }
        }
        d.deserialize_any(NumberVisitor)
    }
}

/// A choice or a condition value: a string, a number or a boolean.
#[derive(Debug)]
pub(super) struct Scalar(pub ParamValue);

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = ParamValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParamValue, E> {
        Ok(ParamValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamValue, E> {
        Ok(ParamValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamValue, E> {
        i64::try_from(v)
            .map(ParamValue::Int)
            .map_err(|_| too_large(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamValue, E> {
        Ok(ParamValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamValue, E> {
        Ok(ParamValue::Str(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor).map(Scalar)
    }
}

/// The values a `when` condition accepts: one value, or a list of them.
#[derive(Debug)]
pub(super) struct WhenValues(pub Vec<ParamValue>);

impl<'de> Deserialize<'de> for WhenValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = WhenValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of values of the parameter (or one value)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<WhenValues, E> {
                ScalarVisitor.visit_bool(v).map(|v| WhenValues(vec![v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WhenValues, E> {
                ScalarVisitor.visit_i64(v).map(|v| WhenValues(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WhenValues, E> {
                ScalarVisitor.visit_u64(v).map(|v| WhenValues(vec![v]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WhenValues, E> {
                ScalarVisitor.visit_f64(v).map(|v| WhenValues(vec![v]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WhenValues, E> {
                ScalarVisitor.visit_str(v).map(|v| WhenValues(vec![v]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WhenValues, A::Error> {
                let mut values = Vec::new();
                while let Some(Scalar(v)) = seq.next_element()? {
                    values.push(v);
                }
                Ok(WhenValues(values))
            }
        }
        d.deserialize_any(ValuesVisitor)
    }
}

impl RawParam {
    /// Builds the distribution with the library's constructors, so range errors are the
    /// library's own messages. Keys that do not apply to the type are rejected by name.
    pub(super) fn distribution(&self) -> Result<Distribution, String> {
        let numeric_only = [
            ("low", self.low.is_some()),
            ("high", self.high.is_some()),
            ("log", self.log.is_some()),
            ("step", self.step.is_some()),
        ];
        let kind = match self.kind {
            Kind::Float => "float",
            Kind::Int => "int",
            Kind::Categorical => "categorical",
        };
        let required = |key: &str, v: Option<Number>| {
            v.ok_or_else(|| format!("a {kind} parameter needs `{key}`"))
        };
        let integer = |key: &str, v: Number| match v {
            Number::Int(i) => Ok(i),
            Number::Float(x) => Err(format!(
                "`{key}` of an int parameter must be an integer, got {x:?}"
            )),
        };
        let library = |e: ferrotune::Error| e.to_string();
        match self.kind {
            Kind::Float | Kind::Int if self.choices.is_some() => Err(format!(
                "`choices` is only for categorical parameters, not for a {kind} one"
            )),
            Kind::Float => FloatDistribution::new(
                required("low", self.low)?.as_f64(),
                required("high", self.high)?.as_f64(),
                self.log.unwrap_or(false),
                self.step.map(Number::as_f64),
            )
            .map(Distribution::Float)
            .map_err(library),
            Kind::Int => IntDistribution::new(
                integer("low", required("low", self.low)?)?,
                integer("high", required("high", self.high)?)?,
                self.log.unwrap_or(false),
                self.step
                    .map(|s| integer("step", s))
                    .transpose()?
                    .unwrap_or(1),
            )
            .map(Distribution::Int)
            .map_err(library),
            Kind::Categorical => {
                if let Some((key, _)) = numeric_only.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "`{key}` does not apply to a categorical parameter (it takes `choices`)"
                    ));
                }
                let choices = self
                    .choices
                    .as_ref()
                    .ok_or_else(|| "a categorical parameter needs `choices`".to_owned())?;
                CategoricalDistribution::new(choices.iter().map(|Scalar(v)| v.clone()))
                    .map(Distribution::Categorical)
                    .map_err(library)
            }
        }
    }
}
