//! The statistics behind the report's "ferrotune vs peers" section: a one-sided
//! Mann–Whitney U test (is one sampler's final regret stochastically greater than another's?)
//! and the Holm–Bonferroni correction for testing it on many problems at once.
//!
//! The U test needs no assumption about the shape of the regret distribution, which is
//! skewed and heavy-tailed for most benchmark problems, and it compares samples of different
//! sizes, so two samplers need not have run the same seeds.
//!
//! Sources:
//! - H. B. Mann and D. R. Whitney, "On a test of whether one of two random variables is
//!   stochastically larger than the other", *Annals of Mathematical Statistics* 18(1), 1947,
//!   pp. 50–60: the statistic U, the recurrence for its exact null distribution, and its
//!   asymptotic normality (mean n₁n₂/2, variance n₁n₂(n₁+n₂+1)/12).
//! - M. Hollander, D. A. Wolfe and E. Chicken, *Nonparametric Statistical Methods*, 3rd ed.,
//!   Wiley 2014, §4.1: the large-sample approximation with the tie correction of the
//!   variance and the continuity correction of ½.
//! - S. Holm, "A simple sequentially rejective multiple test procedure", *Scandinavian
//!   Journal of Statistics* 6(2), 1979, pp. 65–70.
//! - M. Abramowitz and I. A. Stegun, *Handbook of Mathematical Functions*, 1964, 7.1.6 and
//!   7.1.14: the series and the continued fraction used for the normal tail.

/// Both sample sizes at most this, and no ties: the p-value comes from the exact null
/// distribution of U (at most C(20, 10) = 184,756 arrangements, counted exactly in `f64`);
/// otherwise from the normal approximation, which is good to about two decimals from there on.
pub const EXACT_MAX_N: usize = 10;

/// The alternative hypothesis H1 of a one-sided test about samples `x` and `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// H1: `x` is stochastically greater than `y` (P(X > Y) > ½).
    Greater,
    /// H1: `x` is stochastically less than `y` (P(X < Y) > ½).
    Less,
}

/// How a p-value was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// From the exact null distribution of U (small samples without ties).
    Exact,
    /// From the normal approximation with tie and continuity corrections.
    Normal,
}

/// The result of [`mann_whitney_u`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U for `x`: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting ½ (the times a
    /// y precedes an x in the pooled ordering, in Mann & Whitney's words). It ranges from 0 to n₁n₂ and has mean n₁n₂/2 under H0.
    pub u: f64,
    /// The one-sided p-value for the requested alternative.
    pub p: f64,
    /// How `p` was computed.
    pub method: Method,
}

/// One-sided Mann–Whitney U test (Mann & Whitney 1947) of H0 "`x` and `y` come from the
/// same distribution" against `alternative`.
///
/// With both samples of at most [`EXACT_MAX_N`] values and no tied values, `p` is exact.
/// Otherwise it uses the normal approximation (Hollander, Wolfe & Chicken 2014, §4.1):
/// μ = n₁n₂/2, σ² = n₁n₂/12 · [(N + 1) − Σ(t³ − t) / (N(N − 1))] where N = n₁ + n₂ and t runs
/// over the sizes of the groups of tied values, and z = (U − μ ∓ ½)/σ with the continuity
/// correction taken towards μ; p = 1 − Φ(z) for [`Alternative::Greater`], Φ(z) for
/// [`Alternative::Less`]. When every value is tied (σ = 0) there is no evidence either way
/// and p = 1.
///
/// Returns `None` when a sample is empty or holds a NaN.
pub fn mann_whitney_u(x: &[f64], y: &[f64], alternative: Alternative) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let (n1, n2) = (x.len(), y.len());
    // Midranks of the pooled sample; U₁ = R₁ − n₁(n₁ + 1)/2 (Hollander et al. 2014, §4.1).
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0; // Σ (t³ − t)
    let mut has_ties = false;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        // partial_cmp rather than total_cmp so that −0.0 and 0.0 are one value.
        while j < n && pooled[j].0.partial_cmp(&pooled[i].0) == Some(std::cmp::Ordering::Equal) {
            j += 1;
        }
        let t = (j - i) as f64;
        let midrank = (i + 1 + j) as f64 / 2.0; // mean of ranks i+1 ..= j
        rank_sum_x += midrank * pooled[i..j].iter().filter(|(_, is_x)| *is_x).count() as f64;
        tie_term += t * t * t - t;
        has_ties |= j - i > 1;
        i = j;
    }
    let u = rank_sum_x - (n1 * (n1 + 1)) as f64 / 2.0;
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);

    if n1 <= EXACT_MAX_N && n2 <= EXACT_MAX_N && !has_ties {
        let counts = u_distribution(n1, n2);
        let total: f64 = counts.iter().sum();
        // Without ties U is an integer.
        let u_obs = u.round() as usize;
        let tail: f64 = match alternative {
            Alternative::Greater => counts[u_obs..].iter().sum(),
            Alternative::Less => counts[..=u_obs].iter().sum(),
        };
        return Some(MannWhitney {
            u,
            p: (tail / total).min(1.0),
            method: Method::Exact,
        });
    }

    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    let p = if variance <= 0.0 {
        1.0
    } else {
        let sd = variance.sqrt();
        match alternative {
            Alternative::Greater => 1.0 - normal_cdf((u - mean - 0.5) / sd),
            Alternative::Less => normal_cdf((u - mean + 0.5) / sd),
        }
    };
    Some(MannWhitney {
        u,
        p: p.clamp(0.0, 1.0),
        method: Method::Normal,
    })
}

/// The exact null distribution of U for samples of sizes `n1` and `n2` without ties, as
/// counts: entry `u` is the number of the C(n₁ + n₂, n₁) equally likely orderings of the
/// pooled sample in which exactly `u` (x, y) pairs have x > y.
///
/// Mann & Whitney's (1947) recurrence: look at the largest value; if it is an x it beats
/// all n₂ y's, leaving an (n₁ − 1, n₂) problem, else it beats nothing, leaving (n₁, n₂ − 1):
/// f(n₁, n₂; u) = f(n₁ − 1, n₂; u − n₂) + f(n₁, n₂ − 1; u), f(0, ·; 0) = f(·, 0; 0) = 1.
pub fn u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    // table[a][b] = distribution for sizes (a, b); built row by row.
    let mut table: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); n2 + 1]; n1 + 1];
    for a in 0..=n1 {
        for b in 0..=n2 {
            table[a][b] = if a == 0 || b == 0 {
                vec![1.0]
            } else {
                let mut f = vec![0.0; a * b + 1];
                for (u, c) in table[a - 1][b].iter().enumerate() {
                    f[u + b] += c;
                }
                for (u, c) in table[a][b - 1].iter().enumerate() {
                    f[u] += c;
                }
                f
            };
        }
    }
    std::mem::take(&mut table[n1][n2])
}

/// Holm's (1979) step-down adjustment of p-values for a family of tests: with the p-values
/// sorted ascending, p₍ᵢ₎ becomes max over j ≤ i of min(1, (m − j + 1) p₍ⱼ₎). Rejecting
/// every hypothesis whose adjusted p-value is ≤ α controls the family-wise error rate at α
/// whatever the dependence between the tests, and rejects at least what plain Bonferroni
/// does. Returned in the input's order; a NaN stays NaN and does not count towards m.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running_max: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p[i]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[i] = running_max;
    }
    adjusted
}

/// The ranks of `values` (1 = smallest), tied values sharing the mean of the ranks they
/// span ("midranks", as in the rank-sum statistic; Hollander et al. 2014, §4.1). NaN sorts
/// last.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len()
            && values[order[j]].partial_cmp(&values[order[i]]) == Some(std::cmp::Ordering::Equal)
        {
            j += 1;
        }
        let midrank = (i + 1 + j) as f64 / 2.0;
        for &k in &order[i..j] {
            out[k] = midrank;
        }
        i = j;
    }
    out
}

/// The `q`-quantile (0–1) of sorted values, linearly interpolated (NaN when empty).
/// Infinite values are values like any other: a quantile between two equal infinities is
/// that infinity, one between a finite value and +∞ is +∞.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    if sorted[lo].total_cmp(&sorted[hi]).is_eq() {
        return sorted[lo];
    }
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The median of unsorted values (NaN when empty; see [`quantile`]).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// The median, lower and upper quartiles of unsorted values (NaN when empty).
pub fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        quantile(&values, 0.5),
        quantile(&values, 0.25),
        quantile(&values, 0.75),
    )
}

/// Φ, the standard normal distribution function: Φ(z) = ½ erfc(−z/√2).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to about 1e-15 relative accuracy (enough for p-values
/// far into the tails, where 1 − erf(x) would cancel to 0).
///
/// For |x| < 2.5 it sums the series of Abramowitz & Stegun 7.1.6,
/// erf(x) = (2/√π) e^(−x²) Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n + 1)), whose terms are all positive;
/// beyond, the continued fraction 7.1.14,
/// erfc(x) = (e^(−x²)/√π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
/// evaluated from a fixed depth backwards.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    if x < 2.5 {
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > 1e-17 * sum {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - two_over_sqrt_pi * (-x * x).exp() * sum
    } else {
        const DEPTH: u32 = 120;
        let mut t = x;
        for k in (1..=DEPTH).rev() {
            t = x + (f64::from(k) / 2.0) / t;
        }
        (two_over_sqrt_pi / 2.0) * (-x * x).exp() / t
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians_and_quartiles_interpolate_and_keep_infinities() {
        use super::{median, quartiles};
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-12);
        assert!(median(&[]).is_nan());
        // A run that never reached a value counts as +∞.
        assert!(median(&[1.0, f64::INFINITY, f64::INFINITY]) == f64::INFINITY);
        assert_eq!(
            median(&[1.0, 3.0, f64::INFINITY]).to_bits(),
            3.0_f64.to_bits()
        );
        assert!(median(&[1.0, 3.0, f64::INFINITY, f64::INFINITY]) == f64::INFINITY);
        let (m, lo, hi) = quartiles(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(
            (m.to_bits(), lo.to_bits(), hi.to_bits()),
            (3.0_f64.to_bits(), 2.0_f64.to_bits(), 4.0_f64.to_bits())
        );
    }

    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_reference_values() {
        // Reference values: C's erfc (glibc), which is correctly rounded to about 1 ulp.
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_265),
            (2.4, 0.000_688_513_896_645_078_9),
            (2.6, 0.000_236_034_416_529_349_08),
            (3.0, 2.209_049_699_858_543_8e-5),
            (5.0, 1.537_459_794_428_035_1e-12),
            (10.0, 2.088_487_583_762_545e-45),
        ] {
            assert!(close(erfc(x), want, 1e-13), "erfc({x}) = {}", erfc(x));
            assert!(close(erfc(-x), 2.0 - want, 1e-13), "erfc(-{x})");
        }
        // The 97.5 % point of the normal distribution.
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-13));
        assert!(close(normal_cdf(-1.959_963_984_540_054), 0.025, 1e-12));
    }

    #[test]
    fn the_exact_distribution_matches_mann_and_whitneys_table() {
        // n₁ = n₂ = 5: C(10, 5) = 252 orderings. f(u) for small u is the number of
        // partitions of u into at most 5 parts of at most 5: 1, 1, 2, 3, 5, 7.
        let f = u_distribution(5, 5);
        assert_eq!(f.len(), 26);
        assert_eq!(&f[..6], &[1.0, 1.0, 2.0, 3.0, 5.0, 7.0]);
        assert!((f.iter().sum::<f64>() - 252.0).abs() < 1e-9);
        // Symmetric about n₁n₂/2.
        for u in 0..=25 {
            assert!((f[u] - f[25 - u]).abs() < 1e-9);
        }
        // So P(U ≤ 4) = 12/252 = 0.0476 and P(U ≤ 5) = 19/252 = 0.0754: the one-sided 5 %
        // critical value for 5 vs 5 is U = 4, as in the published tables.
        let x = [1.0, 2.0, 3.0, 4.5, 6.5]; // 0+0+0+1+3 = 4 pairs above a y
        let y = [4.0, 5.0, 6.0, 7.0, 8.0];
        let r = mann_whitney_u(&x, &y, Alternative::Less).unwrap();
        assert_eq!(r.method, Method::Exact);
        assert!((r.u - 4.0).abs() < 1e-12);
        assert!(close(r.p, 12.0 / 252.0, 1e-12), "{}", r.p);
        let x5 = [1.0, 2.0, 3.0, 5.5, 6.5]; // 0+0+0+2+3 = 5
        let r5 = mann_whitney_u(&x5, &y, Alternative::Less).unwrap();
        assert!(close(r5.p, 19.0 / 252.0, 1e-12), "{}", r5.p);
        // The other direction: P(U ≥ 4) = 1 − P(U ≤ 3) = 1 − 7/252.
        let g = mann_whitney_u(&x, &y, Alternative::Greater).unwrap();
        assert!(close(g.p, 245.0 / 252.0, 1e-12), "{}", g.p);
    }

    #[test]
    fn complete_separation_gives_the_smallest_exact_p_value() {
        // 3 vs 3 with every x above every y: U = 9, P(U ≥ 9) = 1/C(6, 3) = 1/20.
        let r = mann_whitney_u(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0], Alternative::Greater).unwrap();
        assert!((r.u - 9.0).abs() < 1e-12);
        assert!(close(r.p, 0.05, 1e-12));
        let l = mann_whitney_u(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0], Alternative::Less).unwrap();
        assert!(close(l.p, 1.0, 1e-12));
        // 4 vs 3: 1/C(7, 3) = 1/35.
        let r = mann_whitney_u(
            &[4.0, 5.0, 6.0, 7.0],
            &[1.0, 2.0, 3.0],
            Alternative::Greater,
        )
        .unwrap();
        assert!(close(r.p, 1.0 / 35.0, 1e-12));
    }

    #[test]
    fn ties_use_the_normal_approximation_with_both_corrections() {
        // x = 1, 2, 3, 3 and y = 3, 4, 5. Pooled ranks: 1, 2, then the three 3s share
        // rank 4, then 6, 7. R₁ = 1 + 2 + 4 + 4 = 11, U = 11 − 4·5/2 = 1 (the two tied x
        // each count ½ against the tied y). μ = 4·3/2 = 6. One tie group of t = 3, so
        // σ² = 12/12 · (8 − 24/(7·6)) = 7.428571…, σ = 2.725541.
        // Less: z = (1 − 6 + ½)/σ = −1.651049, p = Φ(z) = 0.049364.
        // Greater: z = (1 − 6 − ½)/σ = −2.017952, p = 1 − Φ(z) = 0.978202.
        let x = [1.0, 2.0, 3.0, 3.0];
        let y = [3.0, 4.0, 5.0];
        let l = mann_whitney_u(&x, &y, Alternative::Less).unwrap();
        assert_eq!(l.method, Method::Normal);
        assert!((l.u - 1.0).abs() < 1e-12);
        assert!(close(l.p, 0.049_364_323_947_412_47, 1e-9), "{}", l.p);
        let g = mann_whitney_u(&x, &y, Alternative::Greater).unwrap();
        assert!(close(g.p, 0.978_201_677_557_229_3, 1e-9), "{}", g.p);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        // x = 1..=11, y = 6.5..=16.5: U = 1 + 2 + 3 + 4 + 5 = 15, μ = 60.5,
        // σ = √(121·23/12) = 15.228810, z = (15 − 60.5 + ½)/σ = −2.954925, p = 0.0015637.
        let x: Vec<f64> = (1..=11).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 5.5).collect();
        let r = mann_whitney_u(&x, &y, Alternative::Less).unwrap();
        assert_eq!(r.method, Method::Normal);
        assert!((r.u - 15.0).abs() < 1e-12);
        assert!(close(r.p, 0.001_563_722_885_464_683, 1e-9), "{}", r.p);
    }

    #[test]
    fn the_normal_approximation_is_close_to_the_exact_tail_at_the_switch() {
        // 10 vs 10 (the largest exact case): U = 25 has exact P(U ≤ 25); the continuity-
        // corrected normal approximation should be within about 0.005 of it.
        let f = u_distribution(10, 10);
        let total: f64 = f.iter().sum();
        assert!((total - 184_756.0).abs() < 1e-6);
        let exact: f64 = f[..=25].iter().sum::<f64>() / total;
        let sd = (100.0_f64 * 21.0 / 12.0).sqrt();
        let approx = normal_cdf((25.0 - 50.0 + 0.5) / sd);
        assert!((exact - approx).abs() < 0.005, "{exact} vs {approx}");
    }

    #[test]
    fn identical_samples_give_no_evidence() {
        let x = [2.0; 6];
        for alt in [Alternative::Greater, Alternative::Less] {
            let r = mann_whitney_u(&x, &x, alt).unwrap();
            assert!(close(r.p, 1.0, 1e-12), "{alt:?}: {}", r.p);
        }
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        for alt in [Alternative::Greater, Alternative::Less] {
            assert!(mann_whitney_u(&x, &x, alt).unwrap().p > 0.4);
        }
    }

    #[test]
    fn empty_or_nan_samples_are_rejected() {
        assert!(mann_whitney_u(&[], &[1.0], Alternative::Less).is_none());
        assert!(mann_whitney_u(&[1.0, f64::NAN], &[1.0], Alternative::Less).is_none());
    }

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ranks(&[5.0, 5.0, 5.0]), [2.0, 2.0, 2.0]);
        assert!(ranks(&[]).is_empty());
    }

    #[test]
    fn holm_matches_a_hand_computation() {
        // Sorted: 0.005 ·4 = 0.02; 0.01 ·3 = 0.03; 0.03 ·2 = 0.06; 0.04 ·1 = 0.04 → 0.06
        // (monotone).
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (a, want) in adj.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!(close(*a, want, 1e-12), "{adj:?}");
        }
        // Capped at 1; NaN passes through and does not count.
        let adj = holm(&[0.6, f64::NAN, 0.5]);
        assert!(close(adj[0], 1.0, 1e-12) && adj[1].is_nan() && close(adj[2], 1.0, 1e-12));
        assert!(holm(&[]).is_empty());
    }
}
