//! Numerics shared by the samplers: the complementary error function, the standard normal
//! distribution function and its logarithm, normal interval masses, and log-sum-exp.
//!
//! Everything works in log space where a value may underflow: `log_ndtr(-40.0)` is finite.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

/// `ln(erfc(x))` for `x ≥ 0`, without underflow.
///
/// Chebyshev-fitted form `erfc(x) = t·exp(−x² + P(t))`, `t = 1/(1 + x/2)` (Press et al.,
/// *Numerical Recipes*, §6.2), with relative error below 1.2e-7 for every `x ≥ 0`; keeping the
/// exponent apart makes the logarithm exact in the far tail.
fn log_erfc_nonneg(x: f64) -> f64 {
    debug_assert!(x >= 0.0);
    let t = 1.0 / (1.0 + 0.5 * x);
    let p = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + p
}

/// The complementary error function `erfc(x) = 1 − erf(x)` (relative error below 1.2e-7).
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= 0.0 {
        log_erfc_nonneg(x).exp()
    } else {
        2.0 - log_erfc_nonneg(-x).exp()
    }
}

/// The standard normal distribution function `Φ(z)`.
#[cfg(test)]
pub(crate) fn ndtr(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// `ln Φ(z)`, finite for every finite `z` (−∞ at −∞).
pub(crate) fn log_ndtr(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z < 0.0 {
        if z == f64::NEG_INFINITY {
            return f64::NEG_INFINITY;
        }
        log_erfc_nonneg(-z * FRAC_1_SQRT_2) - LN_2
    } else {
        (-0.5 * erfc(z * FRAC_1_SQRT_2)).ln_1p()
    }
}

/// `ln(Φ(b) − Φ(a))` for `a ≤ b`: the log-probability that a standard normal lies in
/// `[a, b]`, accurate in either tail (the interval is mirrored into the lower tail, where
/// `Φ` has full relative precision).
pub(crate) fn log_normal_mass(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() || a >= b {
        return f64::NEG_INFINITY;
    }
    if a <= 0.0 && b >= 0.0 && b - a > 0.25 {
        // Straddling zero and wide: 1 − Φ(a) − (1 − Φ(b)) has no cancellation (each term is
        // at most ½ and their sum at most 0.9), so two erfc calls suffice.
        let tails = 0.5 * (erfc(-a * FRAC_1_SQRT_2) + erfc(b * FRAC_1_SQRT_2));
        return (-tails).ln_1p();
    }
    let (a, b) = if a > 0.0 { (-b, -a) } else { (a, b) };
    let lb = log_ndtr(b);
    let la = log_ndtr(a);
    lb + log1mexp(la - lb)
}

/// `ln(1 − eˣ)` for `x ≤ 0` (Mächler 2012, "Accurately computing log(1 − exp(−|a|))").
pub(crate) fn log1mexp(x: f64) -> f64 {
    if x > -LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// `ln Σ exp(xᵢ)`, stable for large and `−∞` entries; `−∞` for an empty slice.
pub(crate) fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    // Terms more than 50 below the largest add less than e^-50 ≈ 2e-22 each relative to it:
    // skipping them leaves the sum unchanged at double precision (for fewer than ~10^6
    // terms) and avoids exp's slow underflow path, which dominated TPE's ask time.
    let s: f64 = xs
        .iter()
        .map(|&x| x - max)
        .filter(|&d| d > -50.0)
        .map(f64::exp)
        .sum();
    max + s.ln()
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_known_values() {
        let known = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (10.0, 2.088_487_583_762_545e-45),
            (-1.0, 1.842_700_792_949_715),
        ];
        for (x, want) in known {
            assert!(
                close(erfc(x), want, 2e-7),
                "erfc({x}) = {} vs {want}",
                erfc(x)
            );
        }
    }

    #[test]
    fn log_ndtr_is_finite_in_the_tails() {
        assert!(close(ndtr(0.0), 0.5, 1e-7));
        assert!(close(ndtr(1.0), 0.841_344_746_068_542_9, 1e-7));
        assert!(close(
            log_ndtr(-1.0),
            0.158_655_253_931_457_05_f64.ln(),
            1e-7
        ));
        // Φ(−40) ≈ 3.655893540915e-350 underflows, its logarithm does not.
        assert!(close(log_ndtr(-40.0), -804.608_442_013_754_8, 1e-8));
        assert!(log_ndtr(40.0) <= 0.0 && log_ndtr(40.0) > -1e-300);
        assert_eq!(log_ndtr(f64::NEG_INFINITY), f64::NEG_INFINITY);
    }

    #[test]
    fn normal_mass_of_intervals() {
        // Φ(1) − Φ(−1) = 0.6826894921370859
        assert!(close(
            log_normal_mass(-1.0, 1.0),
            0.682_689_492_137_085_9_f64.ln(),
            1e-7
        ));
        // Φ(3) − Φ(2) = 0.021400233916549105, both upper-tail.
        assert!(close(
            log_normal_mass(2.0, 3.0),
            0.021_400_233_916_549_105_f64.ln(),
            1e-6
        ));
        // Far tail [30, 31]: mass ≈ φ(30)/30, ln ≈ −454.32
        let far = log_normal_mass(30.0, 31.0);
        assert!(far.is_finite() && (far + 454.321_9).abs() < 1e-2, "{far}");
        assert_eq!(log_normal_mass(1.0, 1.0), f64::NEG_INFINITY);
        // Narrow and wide intervals around zero take different paths; both are accurate.
        assert!(close(
            log_normal_mass(-0.13, 0.13),
            -2.268_825_676_097_518,
            1e-6
        ));
        assert!(close(
            log_normal_mass(-0.1, 0.1),
            0.079_655_674_554_057_96_f64.ln(),
            1e-6
        ));
        assert!(close(
            log_normal_mass(f64::NEG_INFINITY, f64::INFINITY),
            1e-300,
            1.0
        ));
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!(close(log_sum_exp(&[1000.0, 1000.0]), 1000.0 + LN_2, 1e-12));
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert!(close(log_sum_exp(&[f64::NEG_INFINITY, 0.0]), 1e-300, 1.0));
    }
}
