//! `HyperbandPruner`: several successive-halving brackets, each trial in one of them.

use super::{Pruner, Resource, StudyDecision, SuccessiveHalvingPruner};
use crate::error::{Error, Result};
use crate::math::floor_log_ratio;
use crate::study::{StudyView, TrialFilter};
use crate::trial::{FrozenTrial, TrialState};
use std::sync::Arc;

/// Study system attribute holding the `max_resource` an "auto" pruner decided.
const MAX_RESOURCE_ATTR: &str = "hyperband:max_resource";

/// Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: a novel
/// bandit-based approach to hyperparameter optimization", JMLR 18(185), 2017) as a pruner,
/// with Optuna 5.0's semantics and defaults: brackets of asynchronous successive halving
/// ([`SuccessiveHalvingPruner`], Li et al. 2020) that differ in how early they stop trials,
/// each trial assigned to one bracket from its number.
///
/// - `min_resource` (default 1) and `max_resource` (default [`Resource::Auto`]: the largest
///   last step of the Complete trials plus one, decided once the first trial completes and
///   stored with the study; nothing is pruned before then): the resource range `[r, R]`.
/// - `reduction_factor` (η ≥ 2, default 3).
/// - `bootstrap_count` (default 0): as in each bracket's [`SuccessiveHalvingPruner`]; it
///   needs a fixed `max_resource`.
///
/// # Brackets
/// There are `n = ⌊log_η(R/r)⌋ + 1` brackets, computed with integers (the largest `k` with
/// `r·η^k ≤ R`, plus one; floating-point logarithms undercount exact powers — Optuna's
/// `math.log(243, 3)` is 4.999…, so for `R/r = 243` and η = 3 Optuna has 5 brackets where the
/// formula gives 6; elsewhere the two agree). Bracket `b` is successive halving with
/// `min_early_stopping_rate = b`, so bracket 0 stops trials after `r` steps and the last one
/// only at `r·η^(n−1)`. Bracket `b` gets a share `⌈n·η^s/(s+1)⌉` of the trials, with
/// `s = n − 1 − b` (the number of configurations Hyperband gives the bracket), and a trial is
/// assigned by hashing: `crc32("{study name}_{trial number}")` modulo the summed shares,
/// walked through the shares in bracket order — Optuna's rule with the same CRC-32, so a
/// study of the same name puts its trials in the same brackets in both. The assignment needs
/// no coordination between workers, but renaming a study reshuffles it.
///
/// Each bracket is judged only against the trials of the same bracket, and the sampler too is
/// shown only those trials ([`Pruner::trial_filter`]), so TPE models each bracket on its own
/// (Optuna does the same; with TPE each bracket then needs its own startup trials).
///
/// # When `max_resource` is "auto"
/// The number of brackets depends on `max_resource`; changing it would move trials between
/// brackets mid-study. As in Optuna, it is fixed when first decided (from the Complete trials
/// at that moment), and unlike in Optuna it is stored with the study, so every worker and
/// every later session uses the same brackets even if longer trials complete afterwards.
/// Before it is decided, every trial is in bracket 0 of a single bracket and nothing is
/// pruned.
#[derive(Debug)]
pub struct HyperbandPruner {
    min_resource: u64,
    max_resource: Resource,
    reduction_factor: u64,
    bootstrap_count: u64,
    decided_max_resource: StudyDecision,
}

impl Default for HyperbandPruner {
    /// Optuna's defaults: `min_resource = 1`, `max_resource = "auto"`, η = 3, no bootstrap.
    fn default() -> Self {
        HyperbandPruner {
            min_resource: 1,
            max_resource: Resource::Auto,
            reduction_factor: 3,
            bootstrap_count: 0,
            decided_max_resource: StudyDecision::new(MAX_RESOURCE_ATTR),
        }
    }
}

impl HyperbandPruner {
    /// A Hyperband pruner; `min_resource ≥ 1`, `max_resource ≥ min_resource` when given,
    /// `reduction_factor ≥ 2`, and `bootstrap_count > 0` only with a given `max_resource`.
    pub fn new(
        min_resource: u64,
        max_resource: Resource,
        reduction_factor: u64,
        bootstrap_count: u64,
    ) -> Result<Self> {
        if min_resource == 0 {
            return Err(Error::invalid_argument(
                "min_resource",
                "must be >= 1, got 0",
            ));
        }
        if let Resource::Steps(max) = max_resource {
            if max < min_resource {
                return Err(Error::invalid_argument(
                    "max_resource",
                    format!("must be >= min_resource = {min_resource}, got {max}"),
                ));
            }
        }
        if reduction_factor < 2 {
            return Err(Error::invalid_argument(
                "reduction_factor",
                format!("must be >= 2, got {reduction_factor}"),
            ));
        }
        if bootstrap_count > 0 && max_resource == Resource::Auto {
            return Err(Error::invalid_argument(
                "bootstrap_count",
                format!(
                    "bootstrap_count = {bootstrap_count} needs a fixed max_resource, but \
                     max_resource is \"auto\"; give max_resource or set bootstrap_count to 0"
                ),
            ));
        }
        Ok(HyperbandPruner {
            min_resource,
            max_resource,
            reduction_factor,
            bootstrap_count,
            decided_max_resource: StudyDecision::new(MAX_RESOURCE_ATTR),
        })
    }

    /// The study's brackets, or `None` while an "auto" `max_resource` is undecided (no trial
    /// has completed with a report).
    pub fn brackets(&self, study: &StudyView<'_>) -> Result<Option<HyperbandBrackets>> {
        let max_resource = match self.max_resource {
            Resource::Steps(max) => max,
            Resource::Auto => {
                let decided = self.decided_max_resource.get_or_decide(study, || {
                    Ok(study
                        .trials_in(&[TrialState::Complete])?
                        .filter_map(FrozenTrial::last_step)
                        .max()
                        .map(|last| last.saturating_add(1)))
                })?;
                match decided {
                    Some(max) => max,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(HyperbandBrackets::new(
            self.min_resource,
            max_resource,
            self.reduction_factor,
        )?))
    }
}

impl Pruner for HyperbandPruner {
    fn prune(&self, study: &StudyView<'_>, trial: &FrozenTrial) -> Result<bool> {
        let Some(brackets) = self.brackets(study)? else {
            return Ok(false);
        };
        let bracket = brackets.bracket_of(study.name(), trial.number);
        tracing::trace!(trial = trial.number, bracket, "hyperband bracket");
        let view = study.filtered(brackets.filter(study.name(), bracket));
        SuccessiveHalvingPruner::new(
            Resource::Steps(self.min_resource),
            self.reduction_factor,
            bracket as u64,
            self.bootstrap_count,
        )?
        .prune(&view, trial)
    }

    fn trial_filter(
        &self,
        study: &StudyView<'_>,
        trial: &FrozenTrial,
    ) -> Result<Option<TrialFilter>> {
        Ok(self.brackets(study)?.map(|brackets| {
            let bracket = brackets.bracket_of(study.name(), trial.number);
            brackets.filter(study.name(), bracket)
        }))
    }
}

/// Hyperband's brackets for one resource range: how many, each one's share of the trials,
/// and which bracket a trial belongs to (see [`HyperbandPruner`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HyperbandBrackets {
    budgets: Vec<u128>,
    total: u128,
}

impl HyperbandBrackets {
    /// The brackets for resources `[min_resource, max_resource]` and reduction factor η
    /// (`min_resource ≥ 1`, η ≥ 2). A range narrower than one step of η (including
    /// `max_resource < min_resource`) has one bracket.
    pub fn new(min_resource: u64, max_resource: u64, reduction_factor: u64) -> Result<Self> {
        if min_resource == 0 {
            return Err(Error::invalid_argument(
                "min_resource",
                "must be >= 1, got 0",
            ));
        }
        if reduction_factor < 2 {
            return Err(Error::invalid_argument(
                "reduction_factor",
                format!("must be >= 2, got {reduction_factor}"),
            ));
        }
        // ⌊log_η(max/min)⌋ in integers: the largest k with min·η^k ≤ max.
        let eta = u128::from(reduction_factor);
        let k = floor_log_ratio(max_resource, min_resource, reduction_factor);
        let n = u128::from(k) + 1;
        // Bracket b: s = n − 1 − b, share ⌈n·η^s/(s+1)⌉ (η^s ≤ max/min < 2^64, so no
        // overflow in u128).
        let budgets: Vec<u128> = (0..=k)
            .map(|b| {
                let s = k - b;
                let numerator = n * eta.pow(s);
                numerator.div_ceil(u128::from(s) + 1)
            })
            .collect();
        let total = budgets.iter().sum();
        Ok(HyperbandBrackets { budgets, total })
    }

    /// The number of brackets.
    pub fn n_brackets(&self) -> usize {
        self.budgets.len()
    }

    /// Each bracket's share of the trials, in bracket order.
    pub fn budgets(&self) -> &[u128] {
        &self.budgets
    }

    /// The bracket of trial `trial_number` in the study named `study_name`.
    pub fn bracket_of(&self, study_name: &str, trial_number: u64) -> usize {
        self.bracket_from(
            crc32_update(crc32_start(), study_name.as_bytes()),
            trial_number,
        )
    }

    /// The bracket of `trial_number` given the running CRC of `"{study name}"`.
    fn bracket_from(&self, name_state: u32, trial_number: u64) -> usize {
        let mut digits = [0u8; 20];
        let state = crc32_update(name_state, b"_");
        let hash = crc32_finish(crc32_update(state, decimal(trial_number, &mut digits)));
        let mut left = u128::from(hash) % self.total;
        for (bracket, &budget) in self.budgets.iter().enumerate() {
            if left < budget {
                return bracket;
            }
            left -= budget;
        }
        // Unreachable: left < total = Σ budgets.
        self.budgets.len() - 1
    }

    /// A filter showing the trials of `bracket` (of the study named `study_name`).
    pub fn filter(&self, study_name: &str, bracket: usize) -> TrialFilter {
        let brackets = self.clone();
        // The name's CRC state is computed once; each trial then hashes only its number.
        let name_state = crc32_update(crc32_start(), study_name.as_bytes());
        Arc::new(move |t: &FrozenTrial| brackets.bracket_from(name_state, t.number) == bracket)
    }
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// The CRC-32 lookup table for the reflected IEEE 802.3 polynomial `0xEDB88320` (the CRC of
/// zlib, PNG and Python's `binascii.crc32`; ISO/IEC 3309, ITU-T V.42), one entry per byte
/// value, built at compile time.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32 register before any byte: all ones.
fn crc32_start() -> u32 {
    0xFFFF_FFFF
}

/// Feeds `bytes` into the register (Sarwate's table-driven method, one byte at a time, least
/// significant bit first).
fn crc32_update(mut state: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        state = CRC32_TABLE[((state ^ u32::from(b)) & 0xFF) as usize] ^ (state >> 8);
    }
    state
}

/// The checksum: the register, inverted.
fn crc32_finish(state: u32) -> u32 {
    !state
}

/// The CRC-32 of `bytes` (IEEE polynomial; `crc32(b"123456789") == 0xCBF43926`).
#[cfg(test)]
fn crc32(bytes: &[u8]) -> u32 {
    crc32_finish(crc32_update(crc32_start(), bytes))
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::pruner::test_util::{named_study, study};
    use crate::study::{Direction, Study};
    use serde_json::Value;

    #[test]
    fn crc32_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        // Python: binascii.crc32(b"study_0") == 368277276, binascii.crc32(b"abc_12") ==
        // 3512811043.
        assert_eq!(crc32(b"study_0"), 368_277_276);
        assert_eq!(crc32(b"abc_12"), 3_512_811_043);
        // Streaming equals one shot.
        let s = crc32_update(crc32_update(crc32_start(), b"12345"), b"6789");
        assert_eq!(crc32_finish(s), 0xCBF4_3926);
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(7, &mut buf), b"7");
        assert_eq!(decimal(1234, &mut buf), b"1234");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn brackets_for_81_and_27() -> Result<()> {
        // r = 1, R = 81, η = 3: 5 brackets with shares ⌈5·81/5⌉, ⌈5·27/4⌉, ⌈5·9/3⌉,
        // ⌈5·3/2⌉, ⌈5/1⌉.
        let b = HyperbandBrackets::new(1, 81, 3)?;
        assert_eq!(b.n_brackets(), 5);
        assert_eq!(b.budgets(), &[81, 34, 15, 8, 5]);
        // R = 27: 4 brackets, ⌈4·27/4⌉, ⌈4·9/3⌉, ⌈4·3/2⌉, ⌈4/1⌉.
        let b = HyperbandBrackets::new(1, 27, 3)?;
        assert_eq!(b.n_brackets(), 4);
        assert_eq!(b.budgets(), &[27, 12, 6, 4]);
        Ok(())
    }

    #[test]
    fn bracket_counts_are_exact_at_powers() -> Result<()> {
        // 3^5 = 243: six brackets (a floating-point log gives 4.999… and five).
        assert_eq!(HyperbandBrackets::new(1, 243, 3)?.n_brackets(), 6);
        assert_eq!(HyperbandBrackets::new(1, 242, 3)?.n_brackets(), 5);
        assert_eq!(HyperbandBrackets::new(1, 1000, 10)?.n_brackets(), 4);
        assert_eq!(HyperbandBrackets::new(2, 486, 3)?.n_brackets(), 6);
        assert_eq!(HyperbandBrackets::new(1, 1, 3)?.n_brackets(), 1);
        assert_eq!(HyperbandBrackets::new(5, 3, 3)?.n_brackets(), 1, "clamped");
        assert_eq!(HyperbandBrackets::new(1, 100, 2)?.n_brackets(), 7);
        assert_eq!(
            HyperbandBrackets::new(1, u64::MAX, 2)?.n_brackets(),
            64,
            "no overflow"
        );
        Ok(())
    }

    #[test]
    fn assignment_matches_optunas_hash_and_walk() -> Result<()> {
        let b = HyperbandBrackets::new(1, 81, 3)?;
        // crc32("study_0") = 368277276; mod 143 = 81, past bracket 0's 81 → bracket 1.
        assert_eq!(b.bracket_of("study", 0), 1);
        // Python with Optuna's rule (binascii.crc32, the same walk) for trials 0–29 of
        // "my-study":
        let optuna = [
            0, 1, 1, 0, 0, 0, 2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 1, 3, 2, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0,
            0,
        ];
        let ours: Vec<usize> = (0..30).map(|n| b.bracket_of("my-study", n)).collect();
        assert_eq!(ours, optuna);
        // Every assignment agrees with the hash-and-walk rule computed directly.
        for number in 0..500u64 {
            let hash = u128::from(crc32(format!("my-study_{number}").as_bytes()));
            let mut left = hash % 143;
            let mut expected = 0;
            for (i, &budget) in [81u128, 34, 15, 8, 5].iter().enumerate() {
                if left < budget {
                    expected = i;
                    break;
                }
                left -= budget;
            }
            assert_eq!(b.bracket_of("my-study", number), expected, "trial {number}");
        }
        // The shares show over many trials (Python gives the same counts).
        let counts = (0..14_300u64).fold([0usize; 5], |mut c, n| {
            c[b.bracket_of("my-study", n)] += 1;
            c
        });
        assert_eq!(counts, [8097, 3409, 1527, 753, 514]);
        Ok(())
    }

    #[test]
    fn the_filter_shows_one_bracket() -> Result<()> {
        let b = HyperbandBrackets::new(1, 27, 3)?;
        let f = b.filter("s", 2);
        for number in 0..200 {
            let t = FrozenTrial::new_running(crate::trial::TrialId(number), number);
            assert_eq!(f(&t), b.bracket_of("s", number) == 2);
        }
        Ok(())
    }

    #[test]
    fn constructor_validates() {
        let name = |r: Result<HyperbandPruner>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(
            name(HyperbandPruner::new(0, Resource::Auto, 3, 0)),
            "min_resource"
        );
        assert_eq!(
            name(HyperbandPruner::new(5, Resource::Steps(4), 3, 0)),
            "max_resource"
        );
        assert_eq!(
            name(HyperbandPruner::new(1, Resource::Steps(9), 1, 0)),
            "reduction_factor"
        );
        assert_eq!(
            name(HyperbandPruner::new(1, Resource::Auto, 3, 1)),
            "bootstrap_count"
        );
        assert!(HyperbandPruner::new(1, Resource::Steps(9), 3, 1).is_ok());
        assert!(HyperbandPruner::new(3, Resource::Steps(3), 3, 0).is_ok());
    }

    /// Runs a trial to `steps` reports of `value`, asking `p` after each, as an objective
    /// would; returns whether it was pruned (and tells the study accordingly).
    fn run(study: &Study, p: &HyperbandPruner, steps: u64, value: f64) -> Result<bool> {
        let mut t = study.ask()?;
        for step in 0..steps {
            t.report(step, value)?;
            if p.prune(&study.view(), t.frozen())? {
                study.tell_pruned(t)?;
                return Ok(true);
            }
        }
        study.tell(t, value)?;
        Ok(false)
    }

    #[test]
    fn auto_max_resource_is_decided_once_and_stored() -> Result<()> {
        let study = study(Direction::Minimize)?;
        let p = HyperbandPruner::default();
        assert_eq!(p.brackets(&study.view())?, None);
        // Before a trial completes nothing is pruned, and the sampler sees everything.
        let t = study.ask()?;
        assert!(p.trial_filter(&study.view(), t.frozen())?.is_none());
        study.tell(t, 1.0)?; // no reports: still undecided
        assert_eq!(p.brackets(&study.view())?, None);
        assert!(!run(&study, &p, 27, 5.0)?);
        let b = p.brackets(&study.view())?.expect("decided");
        assert_eq!(b, HyperbandBrackets::new(1, 27, 3)?);
        assert_eq!(
            study
                .storage()
                .study_system_attr(study.id(), MAX_RESOURCE_ATTR)?,
            Some(Value::from(27))
        );
        // A longer trial completing later moves nothing; a fresh pruner reads the same.
        let mut long = study.ask()?;
        for step in 0..300 {
            long.report(step, 1.0)?;
        }
        study.tell(long, 1.0)?;
        assert_eq!(HyperbandPruner::default().brackets(&study.view())?, Some(b));
        Ok(())
    }

    #[test]
    fn each_bracket_judges_its_own_trials() -> Result<()> {
        let study = named_study("hb-brackets")?;
        let p = HyperbandPruner::new(1, Resource::Steps(9), 3, 0)?;
        let b = p.brackets(&study.view())?.expect("fixed");
        assert_eq!(b.budgets(), &[9, 5, 3]);
        // One good trial (in bracket 0 for this name), then bad ones: the first bad trial of
        // each bracket is pruned only in the good one's bracket; elsewhere it is alone.
        assert!(!run(&study, &p, 10, 1.0)?);
        let good_bracket = b.bracket_of("hb-brackets", 0);
        assert_eq!(good_bracket, 0);
        let mut first_bad = [None; 3];
        for number in 1..40 {
            let bracket = b.bracket_of("hb-brackets", number);
            let pruned = run(&study, &p, 10, 10.0)?;
            first_bad[bracket].get_or_insert(pruned);
        }
        assert_eq!(first_bad, [Some(true), Some(false), Some(false)]);
        Ok(())
    }

    #[test]
    fn the_first_decision_comes_later_in_later_brackets() -> Result<()> {
        let study = named_study("hb-steps")?;
        let p = HyperbandPruner::new(1, Resource::Steps(9), 3, 0)?;
        let b = p.brackets(&study.view())?.expect("fixed");
        // The first trial of each bracket is good and completes; the later ones are bad and
        // are pruned at the bracket's first rung: step 3^b.
        let mut pruned_at = [None; 3];
        let mut has_good = [false; 3];
        for number in 0..40 {
            let bracket = b.bracket_of("hb-steps", number);
            let value = if has_good[bracket] { 10.0 } else { 1.0 };
            has_good[bracket] = true;
            let mut t = study.ask()?;
            let mut stopped = None;
            for step in 0..10 {
                t.report(step, value)?;
                if p.prune(&study.view(), t.frozen())? {
                    stopped = Some(step);
                    break;
                }
            }
            if let Some(step) = stopped {
                pruned_at[bracket].get_or_insert(step);
                study.tell_pruned(t)?;
            } else {
                study.tell(t, value)?;
            }
        }
        assert_eq!(pruned_at, [Some(1), Some(3), Some(9)]);
        Ok(())
    }
}
