//! Milliseconds per training epoch of the digits MLP, on the 1,198 training rows of a
//! two-thirds split, for a few widths and depths. Run with
//! `cargo run --release -p ferrotune-examples --example mlp_speed`.

use ferrotune_examples::digits::{load_digits, stratified_splits, MlpConfig, MlpTrainer};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let splits = stratified_splits(&load_digits(), 3, 0)?;
    let split = &splits[0];
    println!(
        "{} training rows, {} validation rows; milliseconds per training epoch and per \
         validation pass (the minimum filters out other processes' interference)",
        split.train.n_samples(),
        split.test.n_samples()
    );
    println!("layers  width  batch   params  ms/epoch (min, median)  ms/eval  error after");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let chosen = match args[..] {
        [layers, width, batch] => vec![(layers, width, batch)],
        [] => Vec::new(),
        _ => anyhow::bail!("usage: mlp_speed [LAYERS WIDTH BATCH]"),
    };
    let all = [
        (2, 8, 32),
        (2, 32, 32),
        (2, 128, 32),
        (2, 128, 8),
        (2, 128, 256),
        (1, 64, 32),
        (3, 128, 32),
    ];
    for &(layers, width, batch) in if chosen.is_empty() {
        &all[..]
    } else {
        &chosen[..]
    } {
        let config = MlpConfig {
            hidden_layers: layers,
            hidden_width: width,
            batch_size: batch,
            learning_rate: 0.02,
            momentum: 0.9,
            weight_decay: 1e-4,
        };
        let mut trainer = MlpTrainer::new(config, &split.train, 1)?;
        let epochs = 20;
        let mut train_ms = Vec::new();
        let mut eval_ms = Vec::new();
        let mut error = f64::NAN;
        for _ in 0..epochs {
            let started = Instant::now();
            trainer.train_epoch();
            train_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            error = trainer.error_on(&split.test)?;
            eval_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let (train_min, train_median) = min_median(&mut train_ms);
        let (eval_min, _) = min_median(&mut eval_ms);
        println!(
            "{layers:>6}  {width:>5}  {batch:>5}  {:>7}  {train_min:>6.2}  {train_median:>6.2}  {eval_min:>7.2}  {error:.4} ({epochs} epochs)",
            config.n_params()
        );
    }
    Ok(())
}

/// The minimum and the median of `v` (sorted in place).
fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}
