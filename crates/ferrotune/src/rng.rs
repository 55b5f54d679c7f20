//! Seeded random streams. Every random choice in ferrotune flows from the study seed through a
//! [`TrialRng`] derived from (study seed, trial number, a label such as the parameter name), so
//! a seeded study gives the same trials on one thread, and with many threads each trial's draws
//! depend only on the history it saw, never on how threads interleaved.
//!
//! The generator is xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number
//! generators", 2021) seeded through SplitMix64, written here so the streams never change with a
//! dependency's version.

/// A small, fast, seedable random stream (xoshiro256++).
#[derive(Clone, Debug)]
pub struct TrialRng {
    s: [u64; 4],
}

/// SplitMix64's output function (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a stable (platform- and version-independent) hash for labels.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

impl TrialRng {
    /// A stream from a single 64-bit seed.
    pub fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        TrialRng { s }
    }

    /// The stream for one purpose within one trial: `label` names the purpose (a parameter
    /// name, "relative", "grid"...). Different labels give independent streams.
    pub fn for_trial(study_seed: u64, trial_number: u64, label: &str) -> Self {
        let mut sm = study_seed ^ 0x5851_F42D_4C95_7F2D;
        let a = splitmix64(&mut sm);
        let mut sm = a ^ trial_number.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let b = splitmix64(&mut sm);
        Self::from_seed(b ^ stable_hash(label.as_bytes()))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A standard normal draw (Marsaglia's polar method).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    /// A fresh seed for a derived stream.
    pub fn fork_seed(&mut self) -> u64 {
        self.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_stream_and_labels_separate_streams() {
        let mut a = TrialRng::for_trial(7, 3, "lr");
        let mut b = TrialRng::for_trial(7, 3, "lr");
        let mut c = TrialRng::for_trial(7, 3, "momentum");
        let mut d = TrialRng::for_trial(7, 4, "lr");
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let xd: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }

    #[test]
    fn uniform_is_in_unit_interval_with_mean_one_half() {
        let mut r = TrialRng::from_seed(1);
        let n = 100_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        let mean = sum / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }

    #[test]
    fn below_covers_every_value_evenly() {
        let mut r = TrialRng::from_seed(2);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = TrialRng::from_seed(3);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
