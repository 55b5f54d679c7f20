//! TPE's cost per ask at n finished trials (10 float parameters, sphere values), with the
//! history seeded through `add_trial` rather than by optimizing up to n, multivariate and
//! univariate. Run with `cargo bench -p ferrotune --bench tpe_ask [-- N … [multivariate|univariate]]`
//! (default: 100 1000, both).

use ferrotune::rng::TrialRng;
use ferrotune::{
    Distribution, FloatDistribution, FrozenTrial, ParamValue, PrunerSpec, SamplerSpec, Study,
};
use std::time::Instant;

fn run(n: usize, multivariate: bool) -> ferrotune::Result<()> {
    let spec: SamplerSpec = serde_json::from_value(serde_json::json!({
        "type": "tpe", "multivariate": multivariate
    }))?;
    let study = Study::builder()
        .sampler(spec)
        .pruner(PrunerSpec::Nop)
        .seed(0)
        .build()?;
    let dist: Distribution = FloatDistribution::uniform(-5.0, 5.0)?.into();
    let names: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let mut rng = TrialRng::from_seed(1);
    for _ in 0..n {
        let xs: Vec<f64> = (0..10).map(|_| dist.from_unit(rng.uniform())).collect();
        let value = xs.iter().map(|x| x * x).sum();
        let params = names
            .iter()
            .zip(&xs)
            .map(|(name, &x)| (name.clone(), dist.clone(), ParamValue::Float(x)));
        study.add_trial(&FrozenTrial::completed(params, vec![value]))?;
    }
    let asks = std::env::var("TPE_ASKS")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    for _ in 0..asks {
        let mut trial = study.ask()?;
        let mut value = 0.0;
        for name in &names {
            let x = trial.suggest_float(name, -5.0, 5.0)?;
            value += x * x;
        }
        study.tell(trial, value)?;
    }
    println!(
        "{{\"peer\": \"ferrotune\", \"sampler\": \"tpe\", \"multivariate\": {multivariate}, \"history\": {n}, \"params\": 10, \"ms_per_ask\": {:.3}}}",
        start.elapsed().as_secs_f64() * 1e3 / asks as f64
    );
    Ok(())
}

fn main() -> ferrotune::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    let only = |mode: &str| std::env::args().any(|a| a == mode);
    let modes: Vec<bool> = match (only("multivariate"), only("univariate")) {
        (true, false) => vec![true],
        (false, true) => vec![false],
        _ => vec![true, false],
    };
    for n in sizes {
        for &multivariate in &modes {
            run(n, multivariate)?;
        }
    }
    Ok(())
}
