//! Classic synthetic test functions (minimization) with their domains and known global
//! minima, as tabulated by Surjanovic & Bingham, "Virtual Library of Simulation Experiments:
//! Test Functions and Datasets" (Simon Fraser University, sfu.ca/~ssurjano), which cites the
//! original sources for each function.

use ferrotune::{Distribution, FloatDistribution, Trial, TrialError};
use std::f64::consts::{E, PI};

/// A test function on a box, with its known global minimum.
#[derive(Clone, Copy, Debug)]
pub struct Synthetic {
    /// The name used in reports (`branin`, `hartmann6`, `rosenbrock20`, …).
    pub name: &'static str,
    /// Lower and upper bound of each coordinate.
    pub bounds: &'static [(f64, f64)],
    /// The function.
    pub f: fn(&[f64]) -> f64,
    /// The global minimum's value.
    pub optimum: f64,
    /// A point where the minimum is reached (one of them).
    pub argmin: &'static [f64],
}

impl Synthetic {
    /// The number of coordinates.
    pub fn dim(&self) -> usize {
        self.bounds.len()
    }

    /// The search space: `x0 … x{d-1}`, uniform floats on the bounds.
    pub fn space(&self) -> ferrotune::Result<Vec<(String, Distribution)>> {
        self.bounds
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| Ok((format!("x{i}"), FloatDistribution::uniform(lo, hi)?.into())))
            .collect()
    }

    /// Suggests every coordinate through `trial` and returns the function's value: the
    /// problem as a ferrotune objective.
    pub fn objective(&self, trial: &mut Trial<'_>) -> Result<f64, TrialError> {
        let mut x = Vec::with_capacity(self.dim());
        for (i, &(lo, hi)) in self.bounds.iter().enumerate() {
            x.push(trial.suggest_float(&format!("x{i}"), lo, hi)?);
        }
        Ok((self.f)(&x))
    }
}

/// Branin-Hoo on [-5, 10] × [0, 15]; minimum 0.397887 at three points.
pub fn branin(x: &[f64]) -> f64 {
    let (a, b, c) = (1.0, 5.1 / (4.0 * PI * PI), 5.0 / PI);
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * PI));
    a * (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s
}

/// Hartmann's weights α of its four Gaussian bumps (shared by the 3-d and 6-d functions).
pub(crate) const HARTMANN_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

/// Hartmann 3-d's matrix A.
const HARTMANN3_A: [[f64; 3]; 4] = [
    [3.0, 10.0, 30.0],
    [0.1, 10.0, 35.0],
    [3.0, 10.0, 30.0],
    [0.1, 10.0, 35.0],
];
/// Hartmann 3-d's matrix P (×10⁴).
const HARTMANN3_P: [[f64; 3]; 4] = [
    [3689.0, 1170.0, 2673.0],
    [4699.0, 4387.0, 7470.0],
    [1091.0, 8732.0, 5547.0],
    [381.0, 5743.0, 8828.0],
];
/// Hartmann 6-d's matrix A.
const HARTMANN6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
/// Hartmann 6-d's matrix P (×10⁴).
const HARTMANN6_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];

fn hartmann<const D: usize>(
    x: &[f64],
    alpha: &[f64; 4],
    a: &[[f64; D]; 4],
    p: &[[f64; D]; 4],
) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..D)
                .map(|j| a[i][j] * (x[j] - p[i][j] * 1e-4).powi(2))
                .sum();
            alpha[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// Hartmann 3-d with its weights α replaced by `alpha` (the multi-fidelity variants lower
/// them at low fidelity); `alpha = HARTMANN_ALPHA` is [`hartmann3`].
pub(crate) fn hartmann3_with(x: &[f64], alpha: &[f64; 4]) -> f64 {
    hartmann(x, alpha, &HARTMANN3_A, &HARTMANN3_P)
}

/// Hartmann 6-d with its weights α replaced by `alpha`; `alpha = HARTMANN_ALPHA` is
/// [`hartmann6`].
pub(crate) fn hartmann6_with(x: &[f64], alpha: &[f64; 4]) -> f64 {
    hartmann(x, alpha, &HARTMANN6_A, &HARTMANN6_P)
}

/// Hartmann 3-d on [0, 1]³; minimum −3.86278.
pub fn hartmann3(x: &[f64]) -> f64 {
    hartmann3_with(x, &HARTMANN_ALPHA)
}

/// Hartmann 6-d on [0, 1]⁶; minimum −3.32237.
pub fn hartmann6(x: &[f64]) -> f64 {
    hartmann6_with(x, &HARTMANN_ALPHA)
}

/// Rosenbrock on [−5, 10]^d; minimum 0 at (1, …, 1).
pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (w[0] - 1.0).powi(2))
        .sum()
}

/// Ackley on [−32.768, 32.768]^d (a = 20, b = 0.2, c = 2π); minimum 0 at the origin.
pub fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let squares = x.iter().map(|v| v * v).sum::<f64>() / d;
    let cosines = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * squares.sqrt()).exp() - cosines.exp() + 20.0 + E
}

/// Levy on [−10, 10]^d; minimum 0 at (1, …, 1).
pub fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let (first, last) = (w[0], w[w.len() - 1]);
    let middle: f64 = w[..w.len() - 1]
        .iter()
        .map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2)))
        .sum();
    (PI * first).sin().powi(2)
        + middle
        + (last - 1.0).powi(2) * (1.0 + (2.0 * PI * last).sin().powi(2))
}

/// Styblinski-Tang on [−5, 5]^d; minimum −39.16617·d at x_i = −2.903534.
pub fn styblinski_tang(x: &[f64]) -> f64 {
    0.5 * x
        .iter()
        .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
        .sum::<f64>()
}

/// Rastrigin on [−5.12, 5.12]^d; minimum 0 at the origin.
pub fn rastrigin(x: &[f64]) -> f64 {
    10.0 * x.len() as f64
        + x.iter()
            .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
            .sum::<f64>()
}

const UNIT3: [(f64, f64); 3] = [(0.0, 1.0); 3];
const UNIT6: [(f64, f64); 6] = [(0.0, 1.0); 6];

/// Every synthetic problem of the benchmark suite.
pub const SYNTHETIC: [Synthetic; 9] = [
    Synthetic {
        name: "branin",
        bounds: &[(-5.0, 10.0), (0.0, 15.0)],
        f: branin,
        optimum: 0.397_887_357_729_738,
        argmin: &[PI, 2.275],
    },
    Synthetic {
        name: "hartmann3",
        bounds: &UNIT3,
        f: hartmann3,
        optimum: -3.862_78,
        argmin: &[0.114_614, 0.555_649, 0.852_547],
    },
    Synthetic {
        name: "hartmann6",
        bounds: &UNIT6,
        f: hartmann6,
        optimum: -3.322_37,
        argmin: &[0.201_69, 0.150_011, 0.476_874, 0.275_332, 0.311_652, 0.6573],
    },
    Synthetic {
        name: "rosenbrock5",
        bounds: &[(-5.0, 10.0); 5],
        f: rosenbrock,
        optimum: 0.0,
        argmin: &[1.0; 5],
    },
    Synthetic {
        name: "rosenbrock20",
        bounds: &[(-5.0, 10.0); 20],
        f: rosenbrock,
        optimum: 0.0,
        argmin: &[1.0; 20],
    },
    Synthetic {
        name: "ackley10",
        bounds: &[(-32.768, 32.768); 10],
        f: ackley,
        optimum: 0.0,
        argmin: &[0.0; 10],
    },
    Synthetic {
        name: "levy10",
        bounds: &[(-10.0, 10.0); 10],
        f: levy,
        optimum: 0.0,
        argmin: &[1.0; 10],
    },
    Synthetic {
        name: "styblinski_tang10",
        bounds: &[(-5.0, 5.0); 10],
        f: styblinski_tang,
        optimum: -391.661_657,
        argmin: &[-2.903_534; 10],
    },
    Synthetic {
        name: "rastrigin10",
        bounds: &[(-5.12, 5.12); 10],
        f: rastrigin,
        optimum: 0.0,
        argmin: &[0.0; 10],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotune::rng::TrialRng;

    /// Each function reaches its tabulated minimum at its tabulated argmin (to the precision
    /// the tables give), and no random point in the box goes below it.
    #[test]
    fn minima_match_the_tables() {
        for p in SYNTHETIC {
            assert_eq!(p.argmin.len(), p.dim(), "{}", p.name);
            let at = (p.f)(p.argmin);
            let tolerance = 1e-4 * p.optimum.abs().max(1.0);
            assert!(
                (at - p.optimum).abs() < tolerance,
                "{}: f(argmin) = {at}, table {}",
                p.name,
                p.optimum
            );
            let mut rng = TrialRng::from_seed(1);
            for _ in 0..2000 {
                let x: Vec<f64> = p
                    .bounds
                    .iter()
                    .map(|&(lo, hi)| lo + rng.uniform() * (hi - lo))
                    .collect();
                assert!(
                    (p.f)(&x) >= p.optimum - tolerance,
                    "{} below its minimum at {x:?}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn branin_has_three_minima() {
        for x in [[-PI, 12.275], [PI, 2.275], [9.424_78, 2.475]] {
            assert!((branin(&x) - 0.397_887).abs() < 1e-5, "{x:?}");
        }
    }

    #[test]
    fn objectives_suggest_every_coordinate() {
        use ferrotune::{Optimize, Study};
        for p in SYNTHETIC {
            let study = Study::builder().seed(1).build().unwrap();
            study
                .optimize(|t: &mut Trial| p.objective(t), Optimize::trials(3))
                .unwrap();
            let t = &study.trials().unwrap()[0];
            assert_eq!(t.params.len(), p.dim());
            assert_eq!(p.space().unwrap().len(), p.dim());
            assert!(t.value().unwrap() >= p.optimum - 1e-9);
        }
    }
}
