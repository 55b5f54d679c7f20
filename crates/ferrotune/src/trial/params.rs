//! `Params`: a trial's parameters, each with its name, distribution and value.
//!
//! A parameter's name and distribution (its *spec*) are shared: every trial of a study that
//! suggests `"lr"` with the same distribution points at one allocation, in storage and in the
//! live trial alike, so a long study holds each name once instead of once per trial and copy.

use crate::error::{Error, Result};
use crate::space::{Distribution, ParamValue};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// A parameter's name and distribution, shared between the trials that use both.
#[derive(Debug)]
pub(crate) struct Spec {
    name: Box<str>,
    /// `name`'s first bytes, for cheap comparisons (see [`NameKey`]).
    prefix: u64,
    distribution: Distribution,
}

impl PartialEq for Spec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.distribution == other.distribution
    }
}

impl Spec {
    pub(crate) fn new(name: &str, distribution: Distribution) -> Arc<Spec> {
        Arc::new(Spec {
            name: name.into(),
            prefix: NameKey::new(name).prefix,
            distribution,
        })
    }

    fn key(&self) -> NameKey<'_> {
        NameKey {
            prefix: self.prefix,
            name: &self.name,
        }
    }
}

/// A name with its first 8 bytes packed big-endian (zero-padded) into an integer. Comparing
/// prefixes first orders names exactly as comparing the strings does, and settles most
/// comparisons (every one between names of at most 8 bytes) without comparing bytes.
#[derive(Clone, Copy)]
pub(crate) struct NameKey<'a> {
    prefix: u64,
    name: &'a str,
}

impl<'a> NameKey<'a> {
    pub(crate) fn new(name: &'a str) -> Self {
        let mut prefix = 0u64;
        for (i, &b) in name.as_bytes().iter().take(8).enumerate() {
            prefix |= u64::from(b) << (56 - 8 * i);
        }
        NameKey { prefix, name }
    }

    /// Lexicographic order of the names: a smaller prefix means a smaller name; equal
    /// prefixes of names of at most 8 bytes mean one is the other padded with NULs, so the
    /// shorter is smaller.
    fn cmp(self, other: NameKey<'_>) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| {
            if self.name.len() <= 8 && other.name.len() <= 8 {
                self.name.len().cmp(&other.name.len())
            } else {
                self.name.cmp(other.name)
            }
        })
    }
}

/// One parameter of a trial: its name, its distribution and its value. Cloning one shares the
/// name and distribution.
#[derive(Clone)]
pub struct Param {
    spec: Arc<Spec>,
    value: ParamValue,
}

impl Param {
    /// A parameter as given; the value is checked against the distribution when the trial
    /// holding it is validated (`Study::add_trial`). Use [`Param::from_internal`] for a
    /// checked one.
    pub fn new(name: &str, distribution: Distribution, value: ParamValue) -> Param {
        Param {
            spec: Spec::new(name, distribution),
            value,
        }
    }

    /// A parameter from its internal value (see [`Distribution::to_internal`]); errors when
    /// the value is outside the distribution.
    pub fn from_internal(name: &str, distribution: Distribution, internal: f64) -> Result<Param> {
        let value = distribution.to_external(internal)?;
        Ok(Param::new(name, distribution, value))
    }

    pub(crate) fn from_spec(spec: Arc<Spec>, value: ParamValue) -> Param {
        Param { spec, value }
    }

    /// The same parameter (name and distribution, shared) with another internal value.
    pub fn with_internal(&self, internal: f64) -> Result<Param> {
        Ok(Param {
            value: self.spec.distribution.to_external(internal)?,
            spec: self.spec.clone(),
        })
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The distribution it was suggested from.
    pub fn distribution(&self) -> &Distribution {
        &self.spec.distribution
    }

    /// Its value, as the objective saw it.
    pub fn value(&self) -> &ParamValue {
        &self.value
    }

    /// Its internal value (the index of the choice for a categorical); errors when the value
    /// is outside the distribution.
    pub fn internal(&self) -> Result<f64> {
        self.spec.distribution.to_internal(&self.value)
    }

    fn same_spec(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.spec, &other.spec) || self.spec == other.spec
    }
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        self.same_spec(other) && self.value == other.value
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name())
            .field("value", &self.value)
            .field("distribution", self.distribution())
            .finish()
    }
}

/// A trial's parameters by name, each with its distribution, in name order.
///
/// Reads like a map of values: `params["lr"]`, `params.get("lr")`, `for (name, value) in
/// &params`; [`Params::distribution`] and [`Params::as_slice`] give the distributions too.
/// Serializes as a map of name to value.
#[derive(Clone, Default, PartialEq)]
pub struct Params {
    /// Sorted by name, names unique.
    entries: Vec<Param>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// No parameters, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Params {
            entries: Vec::with_capacity(n),
        }
    }

    fn position(&self, name: &str) -> std::result::Result<usize, usize> {
        self.position_by(NameKey::new(name))
    }

    /// Where `key` is, or would go. Appending in name order takes one comparison.
    pub(crate) fn position_by(&self, key: NameKey<'_>) -> std::result::Result<usize, usize> {
        match self.entries.last() {
            None => return Err(0),
            Some(last) => match last.spec.key().cmp(key) {
                std::cmp::Ordering::Less => return Err(self.entries.len()),
                std::cmp::Ordering::Equal => return Ok(self.entries.len() - 1),
                std::cmp::Ordering::Greater => {}
            },
        }
        self.entries.binary_search_by(|p| p.spec.key().cmp(key))
    }

    /// Inserts `param` at `index`, from [`Params::position_by`]'s `Err`.
    pub(crate) fn insert_at(&mut self, index: usize, param: Param) {
        debug_assert!(self.position(param.name()) == Err(index));
        self.entries.insert(index, param);
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.param(name).map(Param::value)
    }

    /// A parameter's distribution.
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.param(name).map(Param::distribution)
    }

    /// A parameter with its name and distribution.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.position(name).ok().map(|i| &self.entries[i])
    }

    /// Whether there is a parameter with this name.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The names, in order.
    pub fn names(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.entries.iter().map(Param::name)
    }

    /// `(name, distribution)` pairs in name order.
    pub fn distributions(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, &Distribution)> + ExactSizeIterator + '_ {
        self.entries.iter().map(|p| (p.name(), p.distribution()))
    }

    /// The parameters, in name order.
    pub fn as_slice(&self) -> &[Param] {
        &self.entries
    }

    /// Adds `param`, replacing (and returning) the one with its name, whatever its
    /// distribution.
    pub fn insert(&mut self, param: Param) -> Option<Param> {
        match self.position_by(param.spec.key()) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i], param)),
            Err(i) => {
                self.entries.insert(i, param);
                None
            }
        }
    }

    /// Records `param` as a trial does: adds it, or replaces the value of the parameter with
    /// its name when both have the same distribution. Errors with
    /// [`Error::IncompatibleDistribution`] when the distributions differ.
    pub fn set(&mut self, param: Param) -> Result<()> {
        match self.position_by(param.spec.key()) {
            Ok(i) => {
                let existing = &mut self.entries[i];
                if !existing.same_spec(&param) {
                    return Err(Error::IncompatibleDistribution {
                        name: param.name().to_owned(),
                        first: existing.distribution().to_string(),
                        second: param.distribution().to_string(),
                    });
                }
                *existing = param;
            }
            Err(i) => self.entries.insert(i, param),
        }
        Ok(())
    }

    /// Removes a parameter.
    pub fn remove(&mut self, name: &str) -> Option<Param> {
        self.position(name).ok().map(|i| self.entries.remove(i))
    }

    /// Reserves room for `additional` more parameters.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
    }

    /// Releases unused room (storages call it when a trial is finished).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }
}

impl std::ops::Index<&str> for Params {
    type Output = ParamValue;

    /// The value of `name`; panics when there is no such parameter (like a map).
    fn index(&self, name: &str) -> &ParamValue {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no parameter `{name}`"),
        }
    }
}

/// The `(name, value)` pairs of [`Params`], in name order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, Param>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a ParamValue);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|p| (p.name(), p.value()))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|p| (p.name(), p.value()))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a str, &'a ParamValue);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<Param> for Params {
    /// Collects parameters; a later one replaces an earlier one with the same name.
    fn from_iter<I: IntoIterator<Item = Param>>(iter: I) -> Self {
        let mut params = Params::new();
        for p in iter {
            params.insert(p);
        }
        params
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|p| (p.name(), (p.value(), p.distribution()))),
            )
            .finish()
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Specs kept per study at most; a study with more distinct names still works, it just
/// shares fewer of them.
const MAX_SHARED_SPECS: usize = 4096;

/// The specs a study's trials have used, for the next trials to share. A live trial takes a
/// snapshot when it starts (one pointer copy) and looks each suggestion up there; only a
/// trial that met a new name or distribution merges its specs back, when it ends.
#[derive(Debug, Default)]
pub(crate) struct SharedSpecs {
    /// Sorted by name, names unique (the latest distribution of each name).
    known: RwLock<Arc<[Arc<Spec>]>>,
    /// How many parameters the last trial that merged its specs had: a live trial's initial
    /// capacity.
    last_len: AtomicUsize,
}

/// A snapshot of [`SharedSpecs`].
pub(crate) type SpecSnapshot = Arc<[Arc<Spec>]>;

/// The shared spec for `name` and `distribution` in `snapshot`, if there is one.
pub(crate) fn find_spec<'a>(
    snapshot: &'a [Arc<Spec>],
    name: NameKey<'_>,
    distribution: &Distribution,
) -> Option<&'a Arc<Spec>> {
    let i = snapshot.binary_search_by(|s| s.key().cmp(name)).ok()?;
    let spec = &snapshot[i];
    (spec.distribution == *distribution).then_some(spec)
}

impl SharedSpecs {
    pub(crate) fn snapshot(&self) -> SpecSnapshot {
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn expected_len(&self) -> usize {
        self.last_len.load(Ordering::Relaxed)
    }

    /// Merges a finished trial's specs: its own win over older ones of the same name.
    pub(crate) fn learn(&self, params: &Params) {
        self.last_len.store(params.len(), Ordering::Relaxed);
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        let new = params.as_slice();
        let already = new.iter().all(|p| {
            known
                .binary_search_by(|s| s.key().cmp(p.spec.key()))
                .is_ok_and(|i| Arc::ptr_eq(&known[i], &p.spec))
        });
        if already {
            return;
        }
        let mut merged: Vec<Arc<Spec>> = Vec::with_capacity(known.len() + new.len());
        let (mut a, mut b) = (known.iter().peekable(), new.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.key().cmp(y.spec.key()) {
                    std::cmp::Ordering::Less => merged.extend(a.next().cloned()),
                    std::cmp::Ordering::Greater => merged.extend(b.next().map(|p| p.spec.clone())),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        merged.extend(b.next().map(|p| p.spec.clone()));
                    }
                },
                (Some(_), None) => merged.extend(a.next().cloned()),
                (None, Some(_)) => merged.extend(b.next().map(|p| p.spec.clone())),
                (None, None) => break,
            }
        }
        if merged.len() > MAX_SHARED_SPECS {
            merged = new.iter().map(|p| p.spec.clone()).collect();
        }
        *known = merged.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{CategoricalDistribution, FloatDistribution, IntDistribution};
    use crate::trial::FrozenTrial;
    use crate::{Optimize, SamplerSpec, Study, Trial, TrialError};
    use proptest::prelude::*;

    fn float(low: f64, high: f64) -> Distribution {
        FloatDistribution::uniform(low, high).expect("valid").into()
    }

    #[test]
    fn reads_like_a_map_in_name_order() {
        let mut p = Params::new();
        p.set(Param::from_internal("lr", float(0.0, 1.0), 0.5).expect("valid"))
            .expect("set");
        let ints: Distribution = IntDistribution::range(1, 8).expect("valid").into();
        p.set(Param::from_internal("b", ints.clone(), 3.0).expect("valid"))
            .expect("set");
        assert_eq!(p["lr"], ParamValue::Float(0.5));
        assert_eq!(p.get("b"), Some(&ParamValue::Int(3)));
        assert_eq!(p.distribution("b"), Some(&ints));
        assert!(p.contains_key("lr") && !p.contains_key("c"));
        let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "lr"]);
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"b":3,"lr":0.5}"#
        );
        // The same distribution replaces the value; another one is rejected.
        p.set(
            p.param("lr")
                .expect("lr")
                .with_internal(0.25)
                .expect("valid"),
        )
        .expect("same distribution");
        assert_eq!(p["lr"], ParamValue::Float(0.25));
        let other = Param::from_internal("lr", float(0.0, 2.0), 1.5).expect("valid");
        assert!(matches!(
            p.set(other),
            Err(Error::IncompatibleDistribution { .. })
        ));
        assert_eq!(p["lr"], ParamValue::Float(0.25));
        assert!(p.remove("b").is_some() && p.len() == 1);
    }

    #[test]
    fn frozen_trials_serialize_params_and_distributions_as_maps() {
        let opt: Distribution = CategoricalDistribution::new(["adam", "sgd"])
            .expect("valid")
            .into();
        let t = FrozenTrial::completed(
            [
                ("x".to_owned(), float(0.0, 1.0), ParamValue::Float(0.5)),
                ("opt".to_owned(), opt, ParamValue::from("sgd")),
            ],
            vec![1.0],
        );
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["params"], serde_json::json!({"opt": "sgd", "x": 0.5}));
        assert_eq!(json["distributions"]["x"]["type"], "float");
        let back: FrozenTrial = serde_json::from_value(json.clone()).expect("back");
        assert_eq!(back, t);
        let mut orphan = json;
        orphan["params"]["y"] = serde_json::json!(1.0);
        assert!(serde_json::from_value::<FrozenTrial>(orphan).is_err());
    }

    #[test]
    fn trials_of_a_study_share_names_and_distributions() {
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(1)
            .build()
            .expect("study");
        study
            .optimize(
                |t: &mut Trial| -> std::result::Result<f64, TrialError> {
                    let x = t.suggest_float("x", 0.0, 1.0)?;
                    // A range that changes every trial cannot be shared, and still works.
                    let y = t.suggest_float("y", 0.0, 1.0 + t.number() as f64)?;
                    Ok(x + y)
                },
                Optimize::trials(5),
            )
            .expect("optimize");
        let trials = study.trials().expect("trials");
        let spec = |t: &FrozenTrial, name: &str| t.params.param(name).expect("param").spec.clone();
        let (first, rest) = trials.split_first().expect("trials");
        for t in rest {
            let n = t.number;
            assert!(Arc::ptr_eq(&spec(first, "x"), &spec(t, "x")), "trial {n}");
            assert!(!Arc::ptr_eq(&spec(first, "y"), &spec(t, "y")), "trial {n}");
            let y = float(0.0, 1.0 + n as f64);
            assert_eq!(t.params.distribution("y"), Some(&y));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn name_keys_order_like_strings(a in "[a\\x00\\x7f-\\u{10ffff}b]{0,12}", b in "[a\\x00\\x7f-\\u{10ffff}b]{0,12}") {
            prop_assert_eq!(NameKey::new(&a).cmp(NameKey::new(&b)), a.cmp(&b));
            let ab = format!("{a}{b}");
            prop_assert_eq!(NameKey::new(&a).cmp(NameKey::new(&ab)), a.as_str().cmp(&ab));
        }
    }
}
