//! Property tests: whatever the distribution and the seed, every sampler's values stay inside
//! the distribution, on its grid, and come back unchanged through the stored record.

use ferrotune::sampler::QmcKind;
use ferrotune::{
    CategoricalDistribution, Distribution, FloatDistribution, IntDistribution, Optimize,
    ParamValue, PrunerSpec, SamplerSpec, Study, Trial, TrialError,
};
use proptest::prelude::*;

fn float_dist() -> impl Strategy<Value = Distribution> {
    (
        -1e6f64..1e6,
        0.0f64..1e3,
        prop_oneof![Just(0u8), Just(1), Just(2)],
        1e-3f64..10.0,
    )
        .prop_filter_map("valid float", |(low, width, kind, step)| {
            let high = low + width;
            let d = match kind {
                0 => FloatDistribution::uniform(low, high),
                1 => FloatDistribution::log_uniform(low.abs() + 1e-6, low.abs() + 1e-6 + width),
                _ => FloatDistribution::stepped(low, high, step),
            };
            d.ok().map(Distribution::from)
        })
}

fn int_dist() -> impl Strategy<Value = Distribution> {
    (-1000i64..1000, 0i64..5000, any::<bool>(), 1i64..50).prop_filter_map(
        "valid int",
        |(low, width, log, step)| {
            let d = if log {
                IntDistribution::log_range(low.abs() + 1, low.abs() + 1 + width)
            } else {
                IntDistribution::new(low, low + width, false, step)
            };
            d.ok().map(Distribution::from)
        },
    )
}

fn categorical_dist() -> impl Strategy<Value = Distribution> {
    (1usize..12).prop_map(|n| {
        let choices: Vec<ParamValue> = (0..n)
            .map(|i| match i % 4 {
                0 => ParamValue::Int(i as i64),
                1 => ParamValue::Str(format!("c{i}")),
                2 => ParamValue::Float(i as f64 + 0.5),
                _ => ParamValue::Bool(i % 8 == 3),
            })
            .collect();
        CategoricalDistribution::new(choices)
            .expect("distinct choices")
            .into()
    })
}

fn sampler() -> impl Strategy<Value = SamplerSpec> {
    prop_oneof![
        Just(SamplerSpec::Random),
        Just(SamplerSpec::Qmc {
            kind: QmcKind::Sobol,
            scramble: true
        }),
        Just(SamplerSpec::Qmc {
            kind: QmcKind::Halton,
            scramble: true
        }),
        Just(SamplerSpec::Qmc {
            kind: QmcKind::Halton,
            scramble: false
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn samplers_stay_inside_their_distributions(
        spec in sampler(),
        seed in any::<u64>(),
        dists in proptest::collection::vec(prop_oneof![float_dist(), int_dist(), categorical_dist()], 1..5),
    ) {
        let study = Study::builder()
            .sampler(spec)
            .pruner(PrunerSpec::Nop)
            .seed(seed)
            .build()
            .expect("study");
        let objective = |t: &mut Trial| -> Result<f64, TrialError> {
            for (i, d) in dists.iter().enumerate() {
                t.suggest(&format!("p{i}"), d.clone())?;
            }
            Ok(0.0)
        };
        study.optimize(objective, Optimize::trials(12)).expect("optimize");
        for t in study.trials().expect("trials") {
            prop_assert_eq!(t.params.len(), dists.len());
            for (i, d) in dists.iter().enumerate() {
                let name = format!("p{i}");
                let value = &t.params[&name];
                let internal = d.to_internal(value);
                prop_assert!(internal.is_ok(), "{} = {} outside {}", name, value, d);
                prop_assert_eq!(&d.to_external(internal.expect("checked")).expect("inside"), value);
            }
        }
    }
}
