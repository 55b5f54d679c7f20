//! Numerics shared by the samplers and pruners: the complementary error function, the
//! standard normal distribution function and its logarithm, normal interval masses,
//! log-sum-exp, the integer logarithm of a resource ratio used by Hyperband ([`floor_log_ratio`]),
//! the Wilcoxon signed-rank test ([`wilcoxon`]), and the dense Cholesky factorization behind
//! Gaussian-process models ([`gp`]).
//!
//! Everything works in log space where a value may underflow: `log_ndtr(-40.0)` is finite.

pub(crate) mod gp;
pub(crate) mod wilcoxon;

use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

/// `2^(j/32)` for `j = 0..32`, correctly rounded.
const EXP2_TABLE: [f64; 32] = [
    1.0,
    1.0218971486541166,
    1.0442737824274138,
    1.0671404006768237,
    1.0905077326652577,
    1.1143867425958924,
    1.1387886347566916,
    1.1637248587775775,
    1.189207115002721,
    1.215247359980469,
    1.241857812073484,
    1.2690509571917332,
    1.2968395546510096,
    1.3252366431597413,
    1.3542555469368927,
    1.383909881963832,
    std::f64::consts::SQRT_2,
    1.4451808069770467,
    1.4768261459394993,
    1.5091644275934228,
    1.5422108254079407,
    1.5759808451078865,
    1.6104903319492543,
    1.645755478153965,
    1.681792830507429,
    1.718619298122478,
    1.7562521603732995,
    1.7947090750031072,
    1.8340080864093424,
    1.8741676341103,
    1.9152065613971474,
    1.9571441241754002,
];

/// `eˣ` with relative error below 1e-15, inlined and free of library calls so the loops
/// over mixture components stay tight (glibc's `exp` dominated TPE's ask time).
///
/// Table-driven reduction (Tang, "Table-driven implementation of the exponential function
/// in IEEE floating-point arithmetic", ACM TOMS 15(2), 1989): `x = (32m + j)·ln2/32 + r`,
/// `|r| ≤ ln2/64`, `eˣ = 2ᵐ · 2^(j/32) · eʳ`, with `eʳ` from its degree-6 Taylor polynomial
/// (remainder below `0.011⁷/7! < 1e-17`).
#[inline]
pub(crate) fn exp(x: f64) -> f64 {
    const INV_LN2_32: f64 = 46.166_241_308_446_83;
    // ln2/32 split so that k·LN2_32_HI is exact for |k| < 2²⁰.
    const LN2_32_HI: f64 = 0.021_660_849_390_173_098;
    const LN2_32_LO: f64 = 2.325_192_846_878_874e-12;
    // 1.5·2⁵²: adding and subtracting it rounds to the nearest integer without a library
    // call (`f64::round` is one on targets without SSE4.1).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    if x.is_nan() {
        return x;
    }
    if x < -708.0 {
        // Below the normal range: at most 3e-308, zero for every use here.
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    let k = (x * INV_LN2_32 + ROUND) - ROUND;
    let r = (x - k * LN2_32_HI) - k * LN2_32_LO;
    let p = r
        * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let k = k as i64;
    let (m, j) = (k >> 5, (k & 31) as usize);
    let t = EXP2_TABLE[j];
    // m ∈ [−1022, 1023] here, so 2ᵐ is a normal number.
    (t + t * p) * f64::from_bits(((m + 1023) as u64) << 52)
}

/// The Chebyshev-fitted exponent `P(t) − x²` of `erfc(x) = t·exp(−x² + P(t))`,
/// `t = 1/(1 + x/2)`, `x ≥ 0` (Press et al., *Numerical Recipes*, §6.2; relative error below
/// 1.2e-7 for every `x ≥ 0`). Keeping the exponent apart makes logarithms exact in the far
/// tail and `erfc` itself a single exponential.
#[inline]
fn erfc_exponent(x: f64, t: f64) -> f64 {
    let p = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    p - x * x
}

/// `ln(erfc(x))` for `x ≥ 0`, without underflow.
fn log_erfc_nonneg(x: f64) -> f64 {
    debug_assert!(x >= 0.0);
    let t = 1.0 / (1.0 + 0.5 * x);
    t.ln() + erfc_exponent(x, t)
}

/// `erfc(x)` for `x ≥ 0`.
#[inline]
fn erfc_nonneg(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    t * exp(erfc_exponent(x, t))
}

/// The complementary error function `erfc(x) = 1 − erf(x)` (relative error below 1.2e-7).
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= 0.0 {
        erfc_nonneg(x)
    } else {
        2.0 - erfc_nonneg(-x)
    }
}

/// The standard normal distribution function `Φ(z)`.
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
    if let Some(mass) = wide_normal_mass(a, b) {
        return mass.ln();
    }
    let (a, b) = if a > 0.0 { (-b, -a) } else { (a, b) };
    let lb = log_ndtr(b);
    let la = log_ndtr(a);
    lb + log1mexp(la - lb)
}

/// Whether `[a, b]` straddles zero and is wider than ¼: then its normal mass is at least
/// 0.098 and can be computed in linear space (see [`wide_normal_mass`]).
#[inline]
fn straddles_widely(a: f64, b: f64) -> bool {
    a <= 0.0 && b >= 0.0 && b - a > 0.25
}

/// `Φ(b) − Φ(a)` when `[a, b]` straddles zero and is wider than ¼, so that the mass (at
/// least 0.098) is accurate in linear space: `1 − Φ(a) − (1 − Φ(b))` has no cancellation
/// (each tail is at most ½ and their sum at most 0.902). `None` for other intervals, whose
/// mass needs [`log_normal_mass`]'s log-space path.
#[inline]
pub(crate) fn wide_normal_mass(a: f64, b: f64) -> Option<f64> {
    if straddles_widely(a, b) {
        let tails = 0.5 * (erfc_nonneg(-a * FRAC_1_SQRT_2) + erfc_nonneg(b * FRAC_1_SQRT_2));
        Some(1.0 - tails)
    } else {
        None
    }
}

/// Grid points per unit of the [`NormalTail`] table.
const TAIL_STEPS_PER_UNIT: f64 = 32.0;
/// Where the table ends: `Q(8.5) ≈ 9.5e-18` is below half an ulp of 1, so beyond it the
/// upper tail adds nothing to a mass `1 − Q(−a) − Q(b)`.
const TAIL_END: f64 = 8.5;

/// The standard normal upper tail `Q(z) = 1 − Φ(z)` for `z ≥ 0`, by cubic Hermite
/// interpolation between tabulated values and slopes (`Q' = −φ`) on a grid of step 1/32:
/// absolute error below 2e-9 (the interpolation error bound `h⁴/384 · max|Q⁗|`), with no
/// division and no exponential per call. Used where a mass is needed in linear space over
/// many mixture components; [`log_ndtr`] stays the accurate path for far tails.
pub(crate) struct NormalTail {
    /// Per grid cell `i`: `[Q(zᵢ), h·Q'(zᵢ), Q(zᵢ₊₁), h·Q'(zᵢ₊₁)]`, so one lookup fetches
    /// everything the interpolation needs.
    cells: Vec<[f64; 4]>,
}

/// The standard normal density.
fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * FRAC_1_SQRT_2)
}

impl NormalTail {
    /// The shared table, built on first use (a few microseconds).
    pub(crate) fn get() -> &'static NormalTail {
        static TABLE: std::sync::OnceLock<NormalTail> = std::sync::OnceLock::new();
        TABLE.get_or_init(NormalTail::build)
    }

    /// Tabulates `Q` from the far end inwards: `Q(TAIL_END)` from its asymptotic series
    /// `φ(z)/z · (1 − 1/z² + 3/z⁴ − 15/z⁶ + 105/z⁸)` (relative error below 1e-7 of a value
    /// itself below 1e-17), then `Q(zᵢ) = Q(zᵢ₊₁) + ∫ φ` over each cell by 5-point
    /// Gauss–Legendre quadrature (exact to rounding for a cell this narrow).
    fn build() -> NormalTail {
        const NODES: [f64; 5] = [
            0.0,
            -0.538_469_310_105_683,
            0.538_469_310_105_683,
            -0.906_179_845_938_664,
            0.906_179_845_938_664,
        ];
        const WEIGHTS: [f64; 5] = [
            0.568_888_888_888_888_9,
            0.478_628_670_499_366_5,
            0.478_628_670_499_366_5,
            0.236_926_885_056_189_1,
            0.236_926_885_056_189_1,
        ];
        let n = (TAIL_END * TAIL_STEPS_PER_UNIT) as usize;
        let h = 1.0 / TAIL_STEPS_PER_UNIT;
        let mut values = vec![0.0; n + 2];
        let z_end = TAIL_END;
        let w = 1.0 / (z_end * z_end);
        values[n] = normal_pdf(z_end) / z_end
            * (1.0 - w * (1.0 - 3.0 * w * (1.0 - 5.0 * w * (1.0 - 7.0 * w))));
        for i in (0..n).rev() {
            let mid = (i as f64 + 0.5) * h;
            let integral: f64 = NODES
                .iter()
                .zip(WEIGHTS)
                .map(|(&x, w)| w * normal_pdf(mid + 0.5 * h * x))
                .sum::<f64>()
                * 0.5
                * h;
            values[i] = values[i + 1] + integral;
        }
        let slope = |i: usize| -normal_pdf(i as f64 * h) * h;
        let cells = (0..=n)
            .map(|i| [values[i], slope(i), values[i + 1], slope(i + 1)])
            .collect();
        NormalTail { cells }
    }

    /// `Q(z)` for `z ≥ 0`.
    #[inline]
    pub(crate) fn upper(&self, z: f64) -> f64 {
        if z >= TAIL_END || z.is_nan() {
            return 0.0;
        }
        let u = z * TAIL_STEPS_PER_UNIT;
        let i = u as usize;
        let t = u - i as f64;
        let [q0, m0, q1, m1] = self.cells[i];
        let t2 = t * t;
        let t3 = t2 * t;
        q0 * (2.0 * t3 - 3.0 * t2 + 1.0)
            + m0 * (t3 - 2.0 * t2 + t)
            + q1 * (3.0 * t2 - 2.0 * t3)
            + m1 * (t3 - t2)
    }

    /// `Φ(b) − Φ(a)` for an interval straddling zero and wider than ¼ (see
    /// [`wide_normal_mass`]), to about 4e-9 absolute; `None` for other intervals.
    #[inline]
    pub(crate) fn wide_mass(&self, a: f64, b: f64) -> Option<f64> {
        if straddles_widely(a, b) {
            Some(1.0 - self.upper(-a) - self.upper(b))
        } else {
            None
        }
    }
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
        .map(exp)
        .sum();
    max + s.ln()
}

/// `⌊log_base(high / low)⌋` computed exactly in integers: the largest `k` with
/// `low·baseᵏ ≤ high`, and 0 when `high < low·base` (including `high < low`).
///
/// Hyperband's bracket count is this plus one. Floating-point logarithms undercount exact
/// powers (`ln 243 / ln 3` is 4.999…), which would drop a bracket; products of integers in
/// `u128` cannot overflow here (`low·baseᵏ ≤ high < 2⁶⁴` before each multiplication by a
/// `base < 2⁶⁴`). Needs `low ≥ 1` and `base ≥ 2` (callers validate both; with `low = 0` or
/// `base < 2` the loop would not end, so they are clamped to 1 and 2 here).
pub(crate) fn floor_log_ratio(high: u64, low: u64, base: u64) -> u32 {
    let base = u128::from(base.max(2));
    let (mut k, mut reach) = (0u32, u128::from(low.max(1)));
    while reach * base <= u128::from(high) {
        reach *= base;
        k += 1;
    }
    k
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn floor_log_ratio_is_exact_at_powers() {
        assert_eq!(floor_log_ratio(243, 1, 3), 5);
        assert_eq!(floor_log_ratio(242, 1, 3), 4);
        assert_eq!(floor_log_ratio(1000, 1, 10), 3);
        assert_eq!(floor_log_ratio(486, 2, 3), 5);
        assert_eq!(floor_log_ratio(1, 1, 3), 0);
        assert_eq!(floor_log_ratio(3, 5, 3), 0, "high < low");
        assert_eq!(floor_log_ratio(u64::MAX, 1, 2), 63);
        assert_eq!(floor_log_ratio(u64::MAX, 1, u64::MAX), 1);
        for high in 1..2000u64 {
            for low in 1..5u64 {
                for base in 2..6u64 {
                    let k = floor_log_ratio(high, low, base);
                    assert!(high < low * base || low * base.pow(k) <= high);
                    assert!(low * base.pow(k + 1) > high, "{high} {low} {base}");
                }
            }
        }
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
    fn exp_matches_the_standard_library() {
        let mut worst: f64 = 0.0;
        for i in -70_000..70_900 {
            let x = i as f64 * 0.01 + 0.003_7;
            let (ours, std) = (exp(x), x.exp());
            worst = worst.max((ours - std).abs() / std);
        }
        assert!(worst < 2e-15, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn tabulated_tail_matches_known_values() {
        let tail = NormalTail::get();
        let known = [
            (0.0, 0.5),
            (0.5, 0.308_537_538_725_986_9),
            (1.0, 0.158_655_253_931_457_05),
            (1.96, 0.024_997_895_148_220_435),
            (3.0, 0.001_349_898_031_630_094_6),
            (5.0, 2.866_515_718_791_939e-7),
            (8.0, 6.220_960_574_271_785e-16),
        ];
        for (z, want) in known {
            let got = tail.upper(z);
            assert!((got - want).abs() < 2e-9, "Q({z}) = {got} vs {want}");
        }
        // Between grid points, against the erfc path.
        for i in 0..2000 {
            let z = i as f64 * 0.004_1;
            let reference = 0.5 * erfc(z * FRAC_1_SQRT_2);
            assert!((tail.upper(z) - reference).abs() < 5e-8, "Q({z})");
        }
        assert_eq!(tail.upper(9.0), 0.0);
        assert_eq!(tail.wide_mass(0.1, 2.0), None);
        let m = tail.wide_mass(-1.0, 1.0).unwrap();
        assert!((m - 0.682_689_492_137_085_9).abs() < 4e-9);
    }

    #[test]
    fn wide_mass_agrees_with_the_log_path() {
        for (a, b) in [
            (-1.0, 1.0),
            (-0.1, 0.2),
            (-3.0, 0.0),
            (0.0, 8.0),
            (-40.0, 40.0),
        ] {
            let mass = wide_normal_mass(a, b).unwrap();
            let via_logs = log_ndtr(b) + log1mexp(log_ndtr(a) - log_ndtr(b));
            assert!(close(mass.ln(), via_logs, 1e-6), "[{a}, {b}]");
        }
        assert_eq!(wide_normal_mass(0.1, 2.0), None);
        assert_eq!(wide_normal_mass(-0.1, 0.1), None);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!(close(log_sum_exp(&[1000.0, 1000.0]), 1000.0 + LN_2, 1e-12));
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert!(close(log_sum_exp(&[f64::NEG_INFINITY, 0.0]), 1e-300, 1.0));
    }
}
