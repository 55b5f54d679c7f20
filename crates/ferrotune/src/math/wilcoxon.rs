//! The one-sample (paired) Wilcoxon signed-rank test.
//!
//! Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1(6), 1945:
//! rank the absolute differences, sum the ranks of the positive ones (`T⁺`), and compare `T⁺`
//! with its distribution under the null hypothesis that every difference is as likely
//! positive as negative (each rank then enters `T⁺` with probability ½, independently).
//!
//! Zero differences follow the "zsplit" convention (half of each zero's rank goes to `T⁺`,
//! half to `T⁻`; the zeros stay in the ranking), as SciPy's `zero_method="zsplit"`, which is
//! what Optuna's `WilcoxonPruner` asks for. Tied absolute differences get their average rank.
//!
//! Which distribution is used follows SciPy's `method="auto"` (scipy.stats.wilcoxon), so that
//! a pruner built on this test reaches the same p-values as Optuna's:
//! - at most 50 differences, no ties and no zeros: the exact null distribution;
//! - at most 13 differences with ties or zeros: the exact distribution of `T⁺` over the
//!   `2ⁿ` sign flips (SciPy's exhaustive permutation test), which with average ranks is no
//!   longer Wilcoxon's table;
//! - otherwise the normal approximation with the tie correction of the variance, without a
//!   continuity correction (SciPy's default).
//!
//! Both exact cases are one computation: the distribution of a sum of independent
//! `rank · Bernoulli(½)` terms, by dynamic programming over the (doubled, hence integral)
//! rank sums.

use super::ndtr;

/// Which deviation the test looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alternative {
    /// The differences tend to be positive (`T⁺` large): p = P(T⁺ ≥ observed).
    Greater,
    /// The differences tend to be negative (`T⁺` small): p = P(T⁺ ≤ observed).
    Less,
}

/// The largest sample for which SciPy computes the exact distribution when there are no
/// ties or zeros.
const EXACT_MAX: usize = 50;
/// The largest sample with ties or zeros for which SciPy enumerates all sign flips.
const PERMUTATION_MAX: usize = 13;

/// The one-sided p-value of the signed-rank test of `differences` (zsplit for zeros), or
/// `None` when it is undefined: no differences, a NaN among them, or (normal approximation)
/// all of them zero.
pub(crate) fn signed_rank_p_value(differences: &[f64], alternative: Alternative) -> Option<f64> {
    let n = differences.len();
    if n == 0 || differences.iter().any(|d| d.is_nan()) {
        return None;
    }
    // Doubled average ranks of |d|: a tie group at sorted positions i..=j (0-based) has the
    // average rank (i + j + 2) / 2, so its doubled rank i + j + 2 is an integer.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| differences[a].abs().total_cmp(&differences[b].abs()));
    let mut rank2 = vec![0u64; n];
    let mut tie_term = 0.0; // Σ (t³ − t) over tie groups
    let mut has_ties = false;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n
            && differences[order[j + 1]]
                .abs()
                .total_cmp(&differences[order[i]].abs())
                .is_eq()
        {
            j += 1;
        }
        for &k in &order[i..=j] {
            rank2[k] = (i + j + 2) as u64;
        }
        let t = (j - i + 1) as f64;
        if j > i {
            has_ties = true;
            tie_term += t * t * t - t;
        }
        i = j + 1;
    }
    // 2·T⁺ = Σ_{d>0} 2r + Σ_{d=0} r (zsplit: half of each zero's rank).
    let zero_rank2: u64 = (0..n)
        .filter(|&k| differences[k] == 0.0)
        .map(|k| rank2[k])
        .sum();
    let has_zeros = zero_rank2 > 0;
    // The zeros hold the lowest ranks 1..=z, so their doubled ranks sum to z(z+1): even.
    let offset2 = zero_rank2 / 2;
    let positive2: u64 = (0..n)
        .filter(|&k| differences[k] > 0.0)
        .map(|k| rank2[k])
        .sum();
    let observed2 = positive2 + offset2;

    let exact = if has_ties || has_zeros {
        n <= PERMUTATION_MAX
    } else {
        n <= EXACT_MAX
    };
    if exact {
        let nonzero: Vec<u64> = (0..n)
            .filter(|&k| differences[k] != 0.0)
            .map(|k| rank2[k])
            .collect();
        let counts = rank_sum_counts(&nonzero);
        let total = (nonzero.len() as f64).exp2();
        let target = observed2 - offset2; // the nonzero part of the observed statistic
        let tail: f64 = match alternative {
            Alternative::Greater => counts.iter().skip(target as usize).sum(),
            Alternative::Less => counts.iter().take(target as usize + 1).sum(),
        };
        return Some(tail / total);
    }
    let n = n as f64;
    let mean = n * (n + 1.0) / 4.0;
    let variance = (n * (n + 1.0) * (2.0 * n + 1.0) - tie_term / 2.0) / 24.0;
    if variance <= 0.0 {
        return None;
    }
    let z = (observed2 as f64 / 2.0 - mean) / variance.sqrt();
    Some(match alternative {
        Alternative::Greater => ndtr(-z),
        Alternative::Less => ndtr(z),
    })
}

/// How many of the `2ⁿ` subsets of `weights` have each sum (index = sum). Counts up to `2⁵⁰`
/// are exact in `f64`.
fn rank_sum_counts(weights: &[u64]) -> Vec<f64> {
    let max: u64 = weights.iter().sum();
    let mut counts = vec![0.0; max as usize + 1];
    counts[0] = 1.0;
    let mut reach = 0usize;
    for &w in weights {
        let w = w as usize;
        for s in (0..=reach).rev() {
            counts[s + w] += counts[s];
        }
        reach += w;
    }
    counts
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use Alternative::{Greater, Less};

    fn p(d: &[f64], alternative: Alternative) -> f64 {
        signed_rank_p_value(d, alternative).expect("defined")
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn exact_small_samples_by_hand() {
        // All five positive: T⁺ = 15 is the largest of 2⁵ equally likely sums.
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0, 5.0], Greater), 1.0 / 32.0);
        assert_eq!(p(&[1.0, 2.0, 3.0, 4.0, 5.0], Less), 1.0);
        // One negative at rank 1: T⁺ = 14; sums ≥ 14 are 15 and 14 ({2,3,4,5}).
        assert_eq!(p(&[-1.0, 2.0, 3.0, 4.0, 5.0], Greater), 2.0 / 32.0);
        assert_eq!(p(&[-1.0, 2.0, 3.0, 4.0, 5.0], Less), 31.0 / 32.0);
        // Ranks 1 and 4 negative among ten: T⁺ = 50 ≥ 50 for the subsets whose complement
        // sums to at most 5 (ten of them).
        let d = [-0.5, 1.5, 2.5, -3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5];
        assert_eq!(p(&d, Greater), 10.0 / 1024.0);
        assert_eq!(p(&d, Less), 1017.0 / 1024.0);
        // Twenty values, ranks 1–3 negative: T⁺ = 204; complements summing to ≤ 6 number 14.
        let mut d: Vec<f64> = (1..=20).map(f64::from).collect();
        for v in &mut d[..3] {
            *v = -*v;
        }
        assert_eq!(p(&d, Greater), 14.0 / 1_048_576.0);
    }

    #[test]
    fn the_sign_of_the_scale_does_not_matter() {
        let d = [0.3, -0.1, 0.7, 1.2, 0.05, -0.4, 2.0];
        let scaled: Vec<f64> = d.iter().map(|x| x * 1000.0).collect();
        assert_eq!(p(&d, Greater), p(&scaled, Greater));
        let flipped: Vec<f64> = d.iter().map(|x| -x).collect();
        assert_eq!(p(&d, Greater), p(&flipped, Less));
    }

    #[test]
    fn zsplit_gives_zeros_half_their_rank() {
        // Zero at rank 1 splits 0.5 each way: T⁺ = 14.5; the null adds 0.5 to the sums of
        // {2,3,4,5}, and only all four reach 14.
        assert_eq!(p(&[0.0, 2.0, 3.0, 4.0, 5.0], Greater), 1.0 / 16.0);
        assert_eq!(p(&[0.0, 2.0, 3.0, 4.0, 5.0], Less), 1.0);
        // Two zeros (ranks 1.5 each) split 1.5 each way; rank 4 is negative.
        // T⁺ = 1.5 + 3 + 5 + 6 + 7 + 8 = 30.5; sums over {3..8} ≥ 29: 33, 30 (−3), 29 (−4).
        let d = [0.0, 0.0, 1.0, -2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(p(&d, Greater), 3.0 / 64.0);
        assert_eq!(p(&d, Less), 62.0 / 64.0);
        // All zeros: T⁺ is always its mean, nothing is significant.
        assert_eq!(p(&[0.0, 0.0, 0.0], Greater), 1.0);
        assert_eq!(p(&[0.0, 0.0, 0.0], Less), 1.0);
    }

    #[test]
    fn ties_use_average_ranks_and_the_sign_flip_distribution() {
        // Ranks 1.5, 1.5, 3, 4; all positive: T⁺ = 10, reached by 1 of 16 flips.
        assert_eq!(p(&[1.0, 1.0, 2.0, 3.0], Greater), 1.0 / 16.0);
        // One of the tied pair negative: T⁺ = 8.5, reached or passed by 3 of 16 flips.
        assert_eq!(p(&[-1.0, 1.0, 2.0, 3.0], Greater), 3.0 / 16.0);
        assert_eq!(p(&[-1.0, 1.0, 2.0, 3.0], Less), 15.0 / 16.0);
    }

    #[test]
    fn normal_approximation_beyond_the_exact_range() {
        // 14 values with one tie: SciPy switches to the normal approximation. T⁺ = 91,
        // mean 52.5, variance (14·15·29 − 6/2)/24 = 253.625, z = 38.5/√253.625.
        let d = [
            1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, -13.0,
        ];
        let z: f64 = 38.5 / 253.625f64.sqrt();
        assert!(close(p(&d, Greater), ndtr(-z), 1e-12));
        assert!(close(p(&d, Greater), 0.007_813_980_123_866_915, 1e-6));
        assert!(close(p(&d, Less), 0.992_186_019_876_133_1, 1e-6));
        // 60 distinct values (beyond 50): T⁺ = 1830 − 12 = 1818, mean 915,
        // variance 60·61·121/24 = 18452.5.
        let mut d: Vec<f64> = (1..=60).map(f64::from).collect();
        d[0] = -1.0;
        d[10] = -11.0;
        let z: f64 = (1818.0 - 915.0) / 18452.5f64.sqrt();
        assert!(close(p(&d, Greater), ndtr(-z), 1e-12));
        assert!(close(p(&d, Greater), 1.490_285_672_645_086_4e-11, 1e-5));
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(signed_rank_p_value(&[], Greater), None);
        assert_eq!(signed_rank_p_value(&[1.0, f64::NAN], Greater), None);
        // Fourteen zeros: the normal approximation keeps the zeros' ranks, so T⁺ sits at its
        // mean and z = 0: p = ½, as SciPy gives.
        assert!(close(p(&[0.0; 14], Greater), 0.5, 1e-6));
        assert!(close(p(&[0.0; 14], Less), 0.5, 1e-6));
    }

    #[test]
    fn exact_distribution_sums_to_one_and_is_symmetric() {
        let counts = rank_sum_counts(&[2, 4, 6, 8, 10]);
        assert_eq!(counts.iter().sum::<f64>(), 32.0);
        for s in 0..counts.len() {
            assert_eq!(counts[s], counts[counts.len() - 1 - s]);
        }
        // Infinite differences rank highest and are fine.
        assert_eq!(p(&[1.0, 2.0, f64::INFINITY], Greater), 1.0 / 8.0);
    }
}
