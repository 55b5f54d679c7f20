//! Unit and property tests for the search-space types.
//!
//! Grid values are compared exactly on purpose: a grid point must come back bit-for-bit.
#![allow(clippy::float_cmp)]

use super::*;
use crate::rng::TrialRng;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::json;

/// The message of an `InvalidDistribution` error (panics on success or any other error).
fn invalid(result: Result<impl fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidDistribution(msg)) => msg,
        other => panic!("expected InvalidDistribution, got {other:?}"),
    }
}

fn assert_mentions(msg: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            msg.contains(needle),
            "message {msg:?} does not mention {needle:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: every error names the offending value.
// ---------------------------------------------------------------------------------------------

#[test]
fn float_low_greater_than_high_is_rejected() {
    let msg = invalid(FloatDistribution::uniform(2.5, -1.5));
    assert_mentions(&msg, &["low=2.5", "high=-1.5"]);
    // Equal bounds are a valid single-point range.
    let single = FloatDistribution::uniform(3.0, 3.0).expect("low == high is valid");
    assert!(Distribution::from(single).is_single());
}

#[test]
fn float_log_needs_positive_low() {
    assert_mentions(
        &invalid(FloatDistribution::log_uniform(0.0, 1.0)),
        &["low=0", "log"],
    );
    assert_mentions(
        &invalid(FloatDistribution::log_uniform(-2.0, 1.0)),
        &["low=-2", "log"],
    );
    assert!(FloatDistribution::log_uniform(1e-300, 1.0).is_ok());
}

#[test]
fn float_step_must_be_positive_and_finite() {
    assert_mentions(
        &invalid(FloatDistribution::stepped(0.0, 1.0, 0.0)),
        &["step=0"],
    );
    assert_mentions(
        &invalid(FloatDistribution::stepped(0.0, 1.0, -0.5)),
        &["step=-0.5"],
    );
    assert_mentions(
        &invalid(FloatDistribution::stepped(0.0, 1.0, f64::NAN)),
        &["step=NaN"],
    );
    assert_mentions(
        &invalid(FloatDistribution::stepped(0.0, 1.0, f64::INFINITY)),
        &["step=inf"],
    );
}

#[test]
fn float_log_and_step_are_exclusive() {
    let msg = invalid(FloatDistribution::new(1.0, 10.0, true, Some(0.5)));
    assert_mentions(&msg, &["step=0.5", "log"]);
}

#[test]
fn float_bounds_must_be_finite() {
    assert_mentions(
        &invalid(FloatDistribution::uniform(f64::NAN, 1.0)),
        &["low=NaN"],
    );
    assert_mentions(
        &invalid(FloatDistribution::uniform(0.0, f64::NAN)),
        &["high=NaN"],
    );
    assert_mentions(
        &invalid(FloatDistribution::uniform(0.0, f64::INFINITY)),
        &["high=inf"],
    );
    assert_mentions(
        &invalid(FloatDistribution::uniform(f64::NEG_INFINITY, 0.0)),
        &["low=-inf"],
    );
    assert_mentions(
        &invalid(FloatDistribution::log_uniform(1.0, f64::INFINITY)),
        &["high=inf"],
    );
}

#[test]
fn int_low_greater_than_high_is_rejected() {
    assert_mentions(
        &invalid(IntDistribution::range(5, -3)),
        &["low=5", "high=-3"],
    );
    assert!(IntDistribution::range(7, 7).is_ok());
}

#[test]
fn int_step_must_be_positive() {
    assert_mentions(&invalid(IntDistribution::new(0, 10, false, 0)), &["step=0"]);
    assert_mentions(
        &invalid(IntDistribution::new(0, 10, false, -2)),
        &["step=-2"],
    );
}

#[test]
fn int_log_needs_low_at_least_one() {
    assert_mentions(
        &invalid(IntDistribution::log_range(0, 10)),
        &["low=0", "log"],
    );
    assert_mentions(
        &invalid(IntDistribution::log_range(-4, 10)),
        &["low=-4", "log"],
    );
    assert!(IntDistribution::log_range(1, 10).is_ok());
}

#[test]
fn int_log_needs_step_one() {
    let msg = invalid(IntDistribution::new(1, 10, true, 2));
    assert_mentions(&msg, &["step=2", "log"]);
    assert!(IntDistribution::new(1, 10, true, 1).is_ok());
}

#[test]
fn int_range_that_overflows_is_rejected() {
    let msg = invalid(IntDistribution::range(i64::MIN, i64::MAX));
    assert_mentions(&msg, &["overflows"]);
}

#[test]
fn categorical_needs_a_choice() {
    let msg = invalid(CategoricalDistribution::new(Vec::<ParamValue>::new()));
    assert_mentions(&msg, &["at least one choice"]);
}

#[test]
fn categorical_duplicates_are_rejected_by_typed_equality() {
    let msg = invalid(CategoricalDistribution::new(["adam", "sgd", "adam"]));
    assert_mentions(&msg, &["\"adam\"", "#0", "#2"]);

    let msg = invalid(CategoricalDistribution::new([1_i64, 2, 1]));
    assert_mentions(&msg, &["choice 1 ", "#0", "#2"]);

    let msg = invalid(CategoricalDistribution::new([true, true]));
    assert_mentions(&msg, &["true", "#0", "#1"]);

    // +0.0 and -0.0 are one value.
    let msg = invalid(CategoricalDistribution::new([0.0_f64, -0.0]));
    assert_mentions(&msg, &["#0", "#1"]);

    // Int(1), Float(1.0), Str("1") and Bool(true) are four different choices.
    let ok = CategoricalDistribution::new([
        ParamValue::Int(1),
        ParamValue::Float(1.0),
        ParamValue::Str("1".into()),
        ParamValue::Bool(true),
    ])
    .expect("typed equality keeps these distinct");
    assert_eq!(ok.choices().len(), 4);
    assert_eq!(ok.index_of(&ParamValue::Int(1)), Some(0));
    assert_eq!(ok.index_of(&ParamValue::Float(1.0)), Some(1));
    assert_eq!(ok.index_of(&ParamValue::Str("1".into())), Some(2));
    assert_eq!(ok.index_of(&ParamValue::Bool(true)), Some(3));
    assert_eq!(ok.index_of(&ParamValue::Int(2)), None);
}

#[test]
fn categorical_nan_choice_is_rejected() {
    let msg = invalid(CategoricalDistribution::new([
        ParamValue::Float(0.5),
        ParamValue::Float(f64::NAN),
    ]));
    assert_mentions(&msg, &["#1", "NaN"]);
}

// ---------------------------------------------------------------------------------------------
// Steps that do not divide the range.
// ---------------------------------------------------------------------------------------------

#[test]
fn float_high_shrinks_to_last_grid_point() -> Result<()> {
    let d = FloatDistribution::stepped(0.0, 1.0, 0.3)?;
    assert!((d.high() - 0.9).abs() < 1e-12, "high = {}", d.high());
    assert_eq!(d.low(), 0.0);
    assert_eq!(d.step(), Some(0.3));
    let dist = Distribution::from(d.clone());
    assert_eq!(dist.cardinality(), Some(4));
    // The top of the cube maps onto the lowered high, never onto the original bound.
    assert_eq!(dist.from_unit(1.0), d.high());
    assert!(!dist.contains(1.0));

    let d = FloatDistribution::stepped(-1.0, 2.0, 2.0)?;
    assert_eq!(d.high(), 1.0);

    // A step larger than the range leaves a single point.
    let d = FloatDistribution::stepped(0.0, 1.0, 5.0)?;
    assert_eq!(d.high(), 0.0);
    assert!(Distribution::from(d).is_single());
    Ok(())
}

#[test]
fn stepped_grid_far_from_zero() -> Result<()> {
    // Regression: with |low| much larger than step, `low + k·step` rounds by more than the old
    // purely relative grid tolerance, so `contains` rejected points `from_unit` produced and
    // `Trial::suggest` failed with "the sampler proposed … outside …".
    let d = FloatDistribution::stepped(1e6, 1e6 + 0.01, 1e-3)?;
    assert_eq!(d.high(), 1e6 + 0.01);
    let dist = Distribution::from(d);
    assert_eq!(dist.cardinality(), Some(11));
    for i in 0..=100 {
        let x = dist.from_unit(f64::from(i) / 100.0);
        assert!(dist.contains(x), "{dist}: {x}");
    }
    assert!(dist.contains(1e6 + 0.002));
    assert!(!dist.contains(1e6 + 0.0025));
    assert_eq!(
        dist.to_internal(&ParamValue::Float(1e6 + 0.004))?,
        1e6 + 0.004
    );

    // A high off the grid is lowered however large the bounds are.
    let d = FloatDistribution::stepped(1e6, 1e6 + 0.0105, 1e-3)?;
    assert!(
        (d.high() - (1e6 + 0.01)).abs() < 1e-9,
        "high = {}",
        d.high()
    );

    let study = crate::Study::builder()
        .pruner(crate::PrunerSpec::Nop)
        .seed(1)
        .build()?;
    for _ in 0..50 {
        let mut t = study.ask()?;
        let x = t.suggest("x", FloatDistribution::stepped(1e6, 1e6 + 0.01, 1e-3)?)?;
        assert!((1e6..=1e6 + 0.01).contains(&x));
        study.tell(t, x)?;
    }
    Ok(())
}

#[test]
fn float_high_kept_when_step_divides_range() -> Result<()> {
    assert_eq!(FloatDistribution::stepped(0.0, 1.0, 0.25)?.high(), 1.0);
    // 0.3 / 0.1 is 2.9999999999999996 in floating point: still a whole number of steps.
    let d = FloatDistribution::stepped(0.0, 0.3, 0.1)?;
    assert_eq!(d.high(), 0.3);
    let dist = Distribution::from(d);
    assert_eq!(dist.cardinality(), Some(4));
    assert!(dist.contains(0.3));
    assert!(dist.contains(0.2));
    assert!(!dist.contains(0.25));
    Ok(())
}

#[test]
fn int_high_shrinks_to_last_grid_point() -> Result<()> {
    let d = IntDistribution::new(0, 10, false, 3)?;
    assert_eq!(d.high(), 9);
    assert_eq!(d.cardinality(), 4);
    let d = IntDistribution::new(-5, 6, false, 4)?;
    assert_eq!(d.high(), 3);
    let dist = Distribution::from(d);
    assert_eq!(dist.from_unit(1.0), 3.0);
    assert!(dist.contains(-1.0));
    assert!(!dist.contains(0.0));
    assert!(!dist.contains(6.0));
    // Divides: unchanged.
    assert_eq!(IntDistribution::new(0, 12, false, 3)?.high(), 12);
    assert_eq!(IntDistribution::range(0, 7)?.high(), 7);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Internal / external conversion.
// ---------------------------------------------------------------------------------------------

#[test]
fn to_internal_checks_type_and_bounds() -> Result<()> {
    let f: Distribution = FloatDistribution::uniform(0.0, 10.0)?.into();
    assert_eq!(f.to_internal(&ParamValue::Float(2.5))?, 2.5);
    assert_eq!(
        f.to_internal(&ParamValue::Int(3))?,
        3.0,
        "ints widen into floats"
    );
    assert!(f.to_internal(&ParamValue::Float(10.5)).is_err());
    assert!(f.to_internal(&ParamValue::Str("3".into())).is_err());

    let i: Distribution = IntDistribution::new(0, 10, false, 2)?.into();
    assert_eq!(i.to_internal(&ParamValue::Int(4))?, 4.0);
    assert_eq!(i.to_internal(&ParamValue::Float(4.0))?, 4.0);
    assert!(
        i.to_internal(&ParamValue::Int(3)).is_err(),
        "off the step grid"
    );
    assert!(i.to_internal(&ParamValue::Float(4.5)).is_err());
    match i.to_internal(&ParamValue::Int(12)) {
        Err(Error::ValueOutOfDistribution {
            value,
            distribution,
        }) => {
            assert_mentions(&value, &["12", "int"]);
            assert_eq!(distribution, "int[0, 10] step 2");
        }
        other => panic!("expected ValueOutOfDistribution, got {other:?}"),
    }

    let c: Distribution =
        CategoricalDistribution::new([ParamValue::Int(1), ParamValue::Str("adam".into())])?.into();
    assert_eq!(c.to_internal(&ParamValue::Str("adam".into()))?, 1.0);
    assert!(
        c.to_internal(&ParamValue::Float(1.0)).is_err(),
        "typed: 1.0 is not 1"
    );
    assert_eq!(c.to_external(0.0)?, ParamValue::Int(1));
    assert!(c.to_external(2.0).is_err());
    assert!(c.to_external(0.5).is_err());
    assert!(c.to_external(-1.0).is_err());
    assert!(c.to_external(f64::NAN).is_err());
    Ok(())
}

#[test]
fn display_forms() -> Result<()> {
    assert_eq!(
        Distribution::from(FloatDistribution::log_uniform(0.001, 1.0)?).to_string(),
        "float[0.001, 1] log"
    );
    assert_eq!(
        Distribution::from(FloatDistribution::stepped(0.0, 1.0, 0.25)?).to_string(),
        "float[0, 1] step 0.25"
    );
    assert_eq!(
        Distribution::from(IntDistribution::log_range(1, 64)?).to_string(),
        "int[1, 64] log"
    );
    assert_eq!(
        Distribution::from(CategoricalDistribution::new([
            ParamValue::from("adam"),
            ParamValue::from(1_i64),
            ParamValue::from(true),
        ])?)
        .to_string(),
        "categorical[\"adam\", 1, true]"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON form.
// ---------------------------------------------------------------------------------------------

fn round_trip(d: &Distribution) -> Distribution {
    let text = serde_json::to_string(d).expect("serializes");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not deserialize: {e}"))
}

#[test]
fn float_json_form_and_round_trip() -> Result<()> {
    let log: Distribution = FloatDistribution::log_uniform(1e-5, 0.1)?.into();
    assert_eq!(
        serde_json::to_value(&log)?,
        json!({"type": "float", "low": 1e-5, "high": 0.1, "log": true})
    );
    assert_eq!(round_trip(&log), log);

    let stepped: Distribution = FloatDistribution::stepped(0.0, 1.0, 0.25)?.into();
    assert_eq!(
        serde_json::to_string(&stepped)?,
        r#"{"type":"float","low":0.0,"high":1.0,"log":false,"step":0.25}"#
    );
    assert_eq!(round_trip(&stepped), stepped);

    let plain: Distribution = FloatDistribution::uniform(-3.5, 2.0)?.into();
    assert_eq!(
        serde_json::to_string(&plain)?,
        r#"{"type":"float","low":-3.5,"high":2.0,"log":false}"#
    );
    assert_eq!(round_trip(&plain), plain);

    // A lowered high round-trips to the same distribution.
    let shrunk: Distribution = FloatDistribution::stepped(0.0, 1.0, 0.3)?.into();
    assert_eq!(round_trip(&shrunk), shrunk);

    // `log` and `step` may be omitted; integers are accepted as float bounds.
    let parsed: Distribution = serde_json::from_str(r#"{"type":"float","low":0,"high":1}"#)?;
    assert_eq!(parsed, FloatDistribution::uniform(0.0, 1.0)?.into());
    Ok(())
}

#[test]
fn int_json_form_and_round_trip() -> Result<()> {
    let d: Distribution = IntDistribution::range(1, 64)?.into();
    assert_eq!(
        serde_json::to_string(&d)?,
        r#"{"type":"int","low":1,"high":64,"log":false,"step":1}"#
    );
    assert_eq!(round_trip(&d), d);

    let log: Distribution = IntDistribution::log_range(1, 1024)?.into();
    assert_eq!(
        serde_json::to_value(&log)?,
        json!({"type": "int", "low": 1, "high": 1024, "log": true, "step": 1})
    );
    assert_eq!(round_trip(&log), log);

    let stepped: Distribution = IntDistribution::new(-10, 10, false, 5)?.into();
    assert_eq!(round_trip(&stepped), stepped);

    // `log` and `step` default to false and 1.
    let parsed: Distribution = serde_json::from_str(r#"{"type":"int","low":1,"high":64}"#)?;
    assert_eq!(parsed, d);
    // A step that does not divide the range lowers high when parsed, too.
    let parsed: Distribution =
        serde_json::from_str(r#"{"type":"int","low":0,"high":10,"step":3}"#)?;
    assert_eq!(parsed, IntDistribution::new(0, 9, false, 3)?.into());
    Ok(())
}

#[test]
fn categorical_json_keeps_types() -> Result<()> {
    let d: Distribution = CategoricalDistribution::new([
        ParamValue::from("adam"),
        ParamValue::from(1_i64),
        ParamValue::from(2.5),
        ParamValue::from(true),
    ])?
    .into();
    assert_eq!(
        serde_json::to_string(&d)?,
        r#"{"type":"categorical","choices":["adam",1,2.5,true]}"#
    );
    let back = round_trip(&d);
    assert_eq!(back, d);
    let Distribution::Categorical(c) = &back else {
        panic!("expected a categorical, got {back:?}");
    };
    assert!(matches!(&c.choices()[0], ParamValue::Str(s) if s == "adam"));
    assert!(matches!(c.choices()[1], ParamValue::Int(1)));
    assert!(matches!(c.choices()[2], ParamValue::Float(x) if x == 2.5));
    assert!(matches!(c.choices()[3], ParamValue::Bool(true)));

    // 1 and 1.0 stay different choices through JSON.
    let d: Distribution =
        CategoricalDistribution::new([ParamValue::Int(1), ParamValue::Float(1.0)])?.into();
    assert_eq!(
        serde_json::to_string(&d)?,
        r#"{"type":"categorical","choices":[1,1.0]}"#
    );
    assert_eq!(round_trip(&d), d);
    Ok(())
}

/// The error message of deserializing `text` as a distribution (panics when it succeeds).
fn json_error(text: &str) -> String {
    match serde_json::from_str::<Distribution>(text) {
        Ok(d) => panic!("{text} deserialized to {d:?}, expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn invalid_json_fails_with_a_clear_error() {
    assert_mentions(
        &json_error(r#"{"type":"float","low":2.0,"high":1.0}"#),
        &["low=2", "high=1", "greater"],
    );
    assert_mentions(
        &json_error(r#"{"type":"float","low":0.0,"high":1.0,"log":true}"#),
        &["low=0", "log"],
    );
    assert_mentions(
        &json_error(r#"{"type":"float","low":1.0,"high":2.0,"log":true,"step":0.5}"#),
        &["step=0.5"],
    );
    assert_mentions(
        &json_error(r#"{"type":"float","low":0.0,"high":1.0,"step":-1.0}"#),
        &["step=-1"],
    );
    assert_mentions(
        &json_error(r#"{"type":"int","low":10,"high":1}"#),
        &["low=10", "high=1"],
    );
    assert_mentions(
        &json_error(r#"{"type":"int","low":1,"high":10,"log":true,"step":2}"#),
        &["step=2"],
    );
    assert_mentions(
        &json_error(r#"{"type":"categorical","choices":[]}"#),
        &["at least one choice"],
    );
    assert_mentions(
        &json_error(r#"{"type":"categorical","choices":["a","b","a"]}"#),
        &["\"a\"", "twice"],
    );
    // Unknown fields are rejected, by name.
    assert_mentions(
        &json_error(r#"{"type":"float","low":0.0,"high":1.0,"lgo":true}"#),
        &["unknown field", "lgo"],
    );
    assert_mentions(
        &json_error(r#"{"type":"int","low":0,"high":1,"steps":2}"#),
        &["unknown field", "steps"],
    );
    assert_mentions(
        &json_error(r#"{"type":"categorical","choices":[1],"weights":[1]}"#),
        &["unknown field", "weights"],
    );
    // Unknown type, missing fields, wrong field types.
    assert_mentions(
        &json_error(r#"{"type":"uniform","low":0.0,"high":1.0}"#),
        &["uniform"],
    );
    assert_mentions(&json_error(r#"{"type":"float","low":0.0}"#), &["high"]);
    assert!(!json_error(r#"{"type":"int","low":0.5,"high":2}"#).is_empty());
    assert!(!json_error(r#"{"low":0.0,"high":1.0}"#).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Unit-cube mapping.
// ---------------------------------------------------------------------------------------------

#[test]
fn from_unit_and_to_unit_on_small_cases() -> Result<()> {
    let f: Distribution = FloatDistribution::uniform(-2.0, 2.0)?.into();
    assert_eq!(f.from_unit(0.0), -2.0);
    assert_eq!(f.from_unit(0.5), 0.0);
    assert_eq!(f.from_unit(1.0), 2.0);
    assert_eq!(f.from_unit(-3.0), -2.0, "u is clamped to [0, 1]");
    assert_eq!(f.from_unit(7.0), 2.0);
    assert_eq!(f.to_unit(1.0), 0.75);

    let g: Distribution = FloatDistribution::stepped(0.0, 1.0, 0.25)?.into();
    // Five grid points, each with a fifth of the cube.
    assert_eq!(g.from_unit(0.0), 0.0);
    assert_eq!(g.from_unit(0.199), 0.0);
    assert_eq!(g.from_unit(0.2), 0.25);
    assert_eq!(g.from_unit(0.999), 1.0);
    assert_eq!(g.from_unit(1.0), 1.0);
    assert_eq!(g.to_unit(0.5), 0.5);

    let i: Distribution = IntDistribution::range(1, 4)?.into();
    assert_eq!(i.from_unit(0.0), 1.0);
    assert_eq!(i.from_unit(0.26), 2.0);
    assert_eq!(i.from_unit(1.0), 4.0);
    assert_eq!(i.to_unit(1.0), 0.125);

    let c: Distribution = CategoricalDistribution::new(["a", "b"])?.into();
    assert_eq!(c.from_unit(0.49), 0.0);
    assert_eq!(c.from_unit(0.5), 1.0);
    assert_eq!(c.from_unit(1.0), 1.0);
    assert_eq!(c.to_unit(1.0), 0.75);

    let l: Distribution = FloatDistribution::log_uniform(1.0, 100.0)?.into();
    assert!((l.from_unit(0.5) - 10.0).abs() < 1e-12);
    assert_eq!(l.from_unit(0.0), 1.0);
    assert_eq!(l.from_unit(1.0), 100.0);
    Ok(())
}

#[test]
fn single_point_distributions() -> Result<()> {
    for d in [
        Distribution::from(FloatDistribution::uniform(1.5, 1.5)?),
        Distribution::from(FloatDistribution::log_uniform(0.3, 0.3)?),
        Distribution::from(IntDistribution::range(4, 4)?),
        Distribution::from(IntDistribution::log_range(9, 9)?),
        Distribution::from(CategoricalDistribution::new(["only"])?),
    ] {
        assert!(d.is_single(), "{d}");
        for u in [0.0, 0.3, 1.0] {
            assert_eq!(d.from_unit(u), d.low_internal(), "{d} at u={u}");
        }
        assert_eq!(
            d.from_unit(d.to_unit(d.low_internal())),
            d.low_internal(),
            "{d}"
        );
    }
    Ok(())
}

#[test]
fn log_int_sampling_follows_log_cell_widths() -> Result<()> {
    let d: Distribution = IntDistribution::log_range(1, 1000)?.into();
    let mut rng = TrialRng::from_seed(7);
    let n = 20_000;
    let below = (0..n)
        .filter(|_| d.from_unit(rng.uniform()) <= 31.0)
        .count();
    // P(x <= 31) = ln(31.5 / 0.5) / ln(1000.5 / 0.5).
    let expected = (31.5_f64 / 0.5).ln() / (1000.5_f64 / 0.5).ln();
    let observed = below as f64 / n as f64;
    assert!(
        (observed - expected).abs() < 0.02,
        "observed {observed}, expected {expected}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // No regression files in the source tree; failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Uniform float ranges, including single points.
fn uniform_float() -> impl Strategy<Value = Distribution> {
    (
        -1e6..1e6_f64,
        prop_oneof![1 => Just(0.0), 9 => 0.0..1e6_f64],
    )
        .prop_map(|(low, width)| {
            Distribution::from(FloatDistribution::uniform(low, low + width).expect("valid"))
        })
}

/// Log-uniform float ranges from 1e-8 up to 1e8.
fn log_float() -> impl Strategy<Value = Distribution> {
    (-8.0..4.0_f64, 0.0..4.0_f64).prop_map(|(a, span)| {
        let low = 10f64.powf(a);
        let high = 10f64.powf(a + span).max(low);
        Distribution::from(FloatDistribution::log_uniform(low, high).expect("valid"))
    })
}

/// Stepped float ranges whose step may or may not divide the range: near zero, and far from
/// zero relative to the step (where `low + k·step` rounds noticeably).
fn stepped_float() -> impl Strategy<Value = Distribution> {
    prop_oneof![stepped_float_near_zero(), stepped_float_far_from_zero()]
}

fn stepped_float_far_from_zero() -> impl Strategy<Value = Distribution> {
    (
        prop_oneof![-1e9..-1e5_f64, 1e5..1e9_f64],
        -4.0..0.0_f64,
        0u32..200,
        prop_oneof![Just(0.0), 0.0..1.0_f64],
    )
        .prop_map(|(low, log_step, n, extra)| {
            let step = 10f64.powf(log_step);
            let high = low + (f64::from(n) + extra) * step;
            Distribution::from(FloatDistribution::stepped(low, high, step).expect("valid"))
        })
}

fn stepped_float_near_zero() -> impl Strategy<Value = Distribution> {
    (
        -100.0..100.0_f64,
        1e-3..10.0_f64,
        0u32..1000,
        prop_oneof![Just(0.0), 0.0..1.0_f64],
    )
        .prop_map(|(low, step, n, extra)| {
            let high = low + (f64::from(n) + extra) * step;
            Distribution::from(FloatDistribution::stepped(low, high, step).expect("valid"))
        })
}

/// Integer ranges with any step.
fn int_range() -> impl Strategy<Value = Distribution> {
    (-1_000_000..1_000_000_i64, 0..1_000_000_i64, 1..100_i64).prop_map(|(low, span, step)| {
        Distribution::from(IntDistribution::new(low, low + span, false, step).expect("valid"))
    })
}

/// Log-scaled integer ranges.
fn log_int() -> impl Strategy<Value = Distribution> {
    (1..1000_i64, 0..1_000_000_i64).prop_map(|(low, span)| {
        Distribution::from(IntDistribution::log_range(low, low + span).expect("valid"))
    })
}

/// Categoricals of 1–20 mixed-type choices.
fn categorical() -> impl Strategy<Value = Distribution> {
    (1usize..20).prop_map(|n| {
        let choices = (0..n).map(|i| match i % 3 {
            0 => ParamValue::Int(i as i64),
            1 => ParamValue::Float(i as f64),
            _ => ParamValue::Str(format!("c{i}")),
        });
        Distribution::from(CategoricalDistribution::new(choices).expect("valid"))
    })
}

fn any_distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        uniform_float(),
        log_float(),
        stepped_float(),
        int_range(),
        log_int(),
        categorical(),
    ]
}

/// Distributions with a finite grid (ints, stepped floats, categoricals).
fn grid_distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![stepped_float(), int_range(), log_int(), categorical()]
}

/// The `k`-th grid point of a discrete distribution, computed from the bounds (not through
/// `from_unit`).
fn grid_point(d: &Distribution, v: f64) -> f64 {
    let n = d.cardinality().expect("discrete") as f64;
    let k = (v * n).floor().min(n - 1.0);
    match d {
        Distribution::Float(f) => (f.low() + k * f.step().expect("stepped")).min(f.high()),
        Distribution::Int(i) => i.low() as f64 + k * i.step() as f64,
        Distribution::Categorical(_) => k,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn from_unit_is_contained(d in any_distribution(), u in 0.0..=1.0_f64) {
        let x = d.from_unit(u);
        prop_assert!(d.contains(x), "{d}: from_unit({u}) = {x} is not contained");
        let (low, high) = match &d {
            Distribution::Float(f) => (f.low(), f.high()),
            Distribution::Int(i) => (i.low() as f64, i.high() as f64),
            Distribution::Categorical(c) => (0.0, (c.choices().len() - 1) as f64),
        };
        prop_assert!(low <= x && x <= high, "{d}: {x} outside [{low}, {high}]");
        match &d {
            Distribution::Float(f) => {
                if let Some(step) = f.step() {
                    // Distance to the nearest grid point: a millionth of a step, plus the
                    // rounding of numbers as large as the bounds.
                    let k = ((x - f.low()) / step).round();
                    let off = (x - (f.low() + k * step)).abs();
                    let allowed = 1e-6 * step + 1e-14 * f.low().abs().max(x.abs());
                    prop_assert!(off <= allowed, "{d}: {x} is off the grid by {off}");
                }
            }
            Distribution::Int(i) => {
                prop_assert_eq!(x.fract(), 0.0);
                prop_assert_eq!((x as i64 - i.low()) % i.step(), 0);
            }
            Distribution::Categorical(_) => prop_assert_eq!(x.fract(), 0.0),
        }
    }

    #[test]
    fn external_round_trips_through_internal(d in any_distribution(), u in 0.0..=1.0_f64) {
        let x = d.from_unit(u);
        let external = d.to_external(x).expect("contained values convert");
        let expected_type = match &d {
            Distribution::Float(_) => "float",
            Distribution::Int(_) => "int",
            Distribution::Categorical(c) => c.choices()[x as usize].type_name(),
        };
        prop_assert_eq!(external.type_name(), expected_type);
        let back = d.to_internal(&external).expect("external values convert back");
        prop_assert_eq!(back, x, "{} -> {} -> {}", x, external, back);
    }

    #[test]
    fn grid_points_round_trip_through_the_unit_cube(d in grid_distribution(), v in 0.0..1.0_f64) {
        let x = grid_point(&d, v);
        prop_assert!(d.contains(x), "{d}: grid point {x} not contained");
        let u = d.to_unit(x);
        prop_assert!((0.0..=1.0).contains(&u));
        prop_assert_eq!(d.from_unit(u), x, "{} via u={}", d, u);
    }

    #[test]
    fn continuous_points_round_trip_through_the_unit_cube(
        d in prop_oneof![uniform_float(), log_float()],
        v in 0.0..=1.0_f64,
    ) {
        let Distribution::Float(f) = &d else { unreachable!() };
        // x anywhere in the range (computed independently of from_unit).
        let x = if f.log() {
            (f.low().ln() + v * (f.high().ln() - f.low().ln())).exp().clamp(f.low(), f.high())
        } else {
            (f.low() + v * (f.high() - f.low())).clamp(f.low(), f.high())
        };
        let y = d.from_unit(d.to_unit(x));
        let scale = if f.log() { x.abs() } else { f.low().abs().max(f.high().abs()).max(1.0) };
        prop_assert!((y - x).abs() <= 1e-9 * scale, "{d}: {x} came back as {y}");
    }

    #[test]
    fn to_unit_is_monotone_on_the_grid(d in grid_distribution(), v in 0.0..1.0_f64, w in 0.0..1.0_f64) {
        let (a, b) = (grid_point(&d, v.min(w)), grid_point(&d, v.max(w)));
        prop_assert!(d.to_unit(a) <= d.to_unit(b));
    }
}

proptest! {
    // A fixed seed: the statistical check below must not flake from one run to the next.
    #![proptest_config(ProptestConfig {
        rng_seed: RngSeed::Fixed(20_240_601),
        ..config(32)
    })]

    #[test]
    fn log_float_sampling_is_log_uniform(
        a in -6.0..3.0_f64,
        decades in 1.0..6.0_f64,
        seed in any::<u64>(),
    ) {
        let (low, high) = (10f64.powf(a), 10f64.powf(a + decades));
        let d = Distribution::from(FloatDistribution::log_uniform(low, high).expect("valid"));
        let mut rng = TrialRng::from_seed(seed);
        let draws: Vec<f64> = (0..4000).map(|_| d.from_unit(rng.uniform())).collect();
        for q in [0.1, 0.25, 0.5, 0.75, 0.9] {
            // The q-quantile of a log-uniform law on [low, high].
            let cut = low * (high / low).powf(q);
            let fraction = draws.iter().filter(|&&x| x < cut).count() as f64 / 4000.0;
            prop_assert!(
                (fraction - q).abs() < 0.03,
                "{d}: {fraction} of draws below the {q}-quantile {cut}"
            );
        }
        // A linear-uniform law would put far fewer draws below the geometric mean: the check
        // above really tells the two apart.
        let linear = Distribution::from(FloatDistribution::uniform(low, high).expect("valid"));
        let geometric_mean = (low * high).sqrt();
        let mut rng = TrialRng::from_seed(seed);
        let fraction = (0..4000)
            .filter(|_| linear.from_unit(rng.uniform()) < geometric_mean)
            .count() as f64
            / 4000.0;
        prop_assert!(fraction < 0.35, "linear sampling put {fraction} below the geometric mean");
    }
}

/// The top point of a stepped range is accepted as the user writes it, though low + k·step
/// rounds below it (0.0 + 3·0.3 = 0.8999999999999999).
#[test]
fn top_grid_point_as_written_is_inside() {
    let d: Distribution = FloatDistribution::stepped(0.0, 1.0, 0.3).unwrap().into();
    assert!(d.to_internal(&ParamValue::Float(0.9)).is_ok());
    assert!(d.to_internal(&ParamValue::Float(0.91)).is_err());
    assert!(d.to_internal(&ParamValue::Float(1.2)).is_err());
}

proptest! {
    /// Every finite f64 written to JSON parses back to the same bits (stored parameters and
    /// enqueued values go through JSON in database storages).
    #[test]
    fn json_floats_round_trip_exactly(x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
        let text = serde_json::to_string(&ParamValue::Float(x)).unwrap();
        let back: ParamValue = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.as_f64().map(f64::to_bits), Some(x.to_bits()));
    }
}
