//! Slots: how many trials run at once, and which GPUs and CPU cores each one gets.
//!
//! A slot is a fixed share of the machine that runs one trial after another. The allocation is
//! computed once, before the first trial, by a pure function ([`allocate`]):
//!
//! - GPUs: `--gpus-per-trial` is a whole number of GPUs (`2`: slot 0 gets GPUs 0 and 1, slot 1
//!   GPUs 2 and 3, …) or a fraction 1/k of one (`0.5`, `1/3`): up to k slots share a GPU,
//!   never more. Slots are spread round-robin over the GPUs, so fewer jobs than places still
//!   use every GPU (4 GPUs at 0.5 with 4 jobs: one trial per GPU).
//! - CPU cores: `--cpus-per-trial C` gives each slot C cores of its own (disjoint sets).
//! - The number of slots is the smallest of `--jobs` and what the devices hold.
//!
//! A trial's slot decides its `CUDA_VISIBLE_DEVICES`, its thread-count variables and its CPU
//! affinity.

use std::fmt;
use std::str::FromStr;

/// How much of the GPUs one trial gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuShare {
    /// This many whole GPUs (at least 1).
    Whole(u32),
    /// 1/k of one GPU: k trials share it (k at least 2).
    Fraction(u32),
}

impl GpuShare {
    /// How many trials fit on `n_gpus` GPUs.
    pub fn capacity(self, n_gpus: usize) -> usize {
        match self {
            GpuShare::Whole(m) => n_gpus / m as usize,
            GpuShare::Fraction(k) => n_gpus.saturating_mul(k as usize),
        }
    }
}

impl fmt::Display for GpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuShare::Whole(m) => write!(f, "{m}"),
            GpuShare::Fraction(k) => write!(f, "1/{k}"),
        }
    }
}

impl FromStr for GpuShare {
    type Err = String;

    /// `1`, `2` (whole GPUs), `0.5`, `0.25`, `1/3`, `0.333` (a fraction 1/k of one).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--gpus-per-trial `{s}`: give a whole number of GPUs (1, 2, …) or a fraction 1/k \
                 of one (0.5, 0.25, 1/3)"
            )
        };
        let s = s.trim();
        if let Some(k) = s.strip_prefix("1/") {
            return match k.trim().parse::<u32>() {
                Ok(1) => Ok(GpuShare::Whole(1)),
                Ok(k) if k >= 2 => Ok(GpuShare::Fraction(k)),
                _ => Err(bad()),
            };
        }
        if let Ok(m) = s.parse::<u32>() {
            return if m >= 1 {
                Ok(GpuShare::Whole(m))
            } else {
                Err(bad())
            };
        }
        let x: f64 = s.parse().map_err(|_| bad())?;
        if !(x.is_finite() && x > 0.0) {
            return Err(bad());
        }
        if x >= 1.0 {
            // 2.0 is fine; 1.5 GPUs is not a share.
            let m = x.round();
            return if (x - m).abs() < 1e-9 && m <= f64::from(u32::MAX) {
                Ok(GpuShare::Whole(m as u32))
            } else {
                Err(bad())
            };
        }
        let k = (1.0 / x).round();
        // 0.333 means a third; 0.3 is no 1/k.
        if (k * x - 1.0).abs() <= 1e-3 && k <= 1024.0 {
            Ok(GpuShare::Fraction(k as u32))
        } else {
            Err(bad())
        }
    }
}

/// What the slots are made from.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotRequest {
    /// The most trials at once (`--jobs`).
    pub jobs: usize,
    /// The GPUs, as `CUDA_VISIBLE_DEVICES` names them (indices or UUIDs); empty: GPUs are not
    /// managed.
    pub gpus: Vec<String>,
    /// Each trial's share of the GPUs (1 GPU when GPUs are given without it).
    pub gpu_share: Option<GpuShare>,
    /// The CPU cores this process may use.
    pub cpus: Vec<usize>,
    /// Cores per trial; `None`: cores are not managed.
    pub cpus_per_trial: Option<usize>,
}

/// One slot's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot's number, 0 to slots − 1.
    pub index: usize,
    /// Its GPUs (empty when GPUs are not managed).
    pub gpus: Vec<String>,
    /// Its CPU cores (empty when cores are not managed).
    pub cpus: Vec<usize>,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.index)?;
        if !self.gpus.is_empty() {
            write!(f, ": GPU {}", self.gpus.join(","))?;
        }
        if !self.cpus.is_empty() {
            let sep = if self.gpus.is_empty() { ":" } else { ";" };
            write!(f, "{sep} cores {}", cpu_list(&self.cpus))?;
        }
        Ok(())
    }
}

/// Cores as `0-3,8,10-11`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The slots, and what limited their number.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// One per concurrent trial.
    pub slots: Vec<Slot>,
    /// Why there are fewer slots than `--jobs`, in words (`None`: `--jobs` decided).
    pub limited_by: Option<String>,
}

/// Why no slot can be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// `--jobs 0`.
    #[error("--jobs must be at least 1")]
    NoJobs,
    /// A share of GPUs without GPUs.
    #[error("--gpus-per-trial needs the GPUs to share: name them with --gpus 0,1,…")]
    ShareWithoutGpus,
    /// A GPU named twice or with an empty name.
    #[error("--gpus: {0}")]
    BadGpuList(String),
    /// A trial needs more GPUs than there are.
    #[error("each trial needs {need} GPUs but --gpus names only {have}")]
    TooFewGpus {
        /// GPUs per trial.
        need: u32,
        /// GPUs given.
        have: usize,
    },
    /// `--cpus-per-trial 0`.
    #[error("--cpus-per-trial must be at least 1")]
    NoCpus,
    /// A trial needs more cores than this process may use.
    #[error("each trial needs {need} CPU cores but this process may use only {have}")]
    TooFewCpus {
        /// Cores per trial.
        need: usize,
        /// Cores available.
        have: usize,
    },
}

/// Computes the slots: never more than `jobs`, never more trials on a GPU than its share
/// allows, never a core in two slots.
pub fn allocate(req: &SlotRequest) -> Result<Allocation, SlotError> {
    if req.jobs == 0 {
        return Err(SlotError::NoJobs);
    }
    for (i, g) in req.gpus.iter().enumerate() {
        if g.trim().is_empty() {
            return Err(SlotError::BadGpuList("an empty GPU name".into()));
        }
        if req.gpus[..i].contains(g) {
            return Err(SlotError::BadGpuList(format!("GPU {g} is named twice")));
        }
    }
    let share = match (req.gpu_share, req.gpus.is_empty()) {
        (Some(_), true) => return Err(SlotError::ShareWithoutGpus),
        (None, false) => Some(GpuShare::Whole(1)),
        (share, _) => share,
    };
    let mut n = req.jobs;
    let mut limited_by = None;
    // Fewer slots when the GPUs or cores hold fewer trials than --jobs, saying which did:
    // `have` devices at `per` per trial hold `cap` trials.
    let mut limit = |cap: usize, have: usize, devices: &str, per: &dyn fmt::Display| {
        if cap < n {
            n = cap;
            limited_by = Some(format!(
                "{have} {devices} at {per} per trial hold {cap} trial(s)"
            ));
        }
    };
    if let Some(share) = share {
        let cap = share.capacity(req.gpus.len());
        if cap == 0 {
            let need = match share {
                GpuShare::Whole(m) => m,
                GpuShare::Fraction(_) => 1,
            };
            return Err(SlotError::TooFewGpus {
                need,
                have: req.gpus.len(),
            });
        }
        limit(cap, req.gpus.len(), "GPU(s)", &share);
    }
    if let Some(c) = req.cpus_per_trial {
        if c == 0 {
            return Err(SlotError::NoCpus);
        }
        let cap = req.cpus.len() / c;
        if cap == 0 {
            return Err(SlotError::TooFewCpus {
                need: c,
                have: req.cpus.len(),
            });
        }
        limit(cap, req.cpus.len(), "CPU core(s)", &c);
    }
    let slots = (0..n)
        .map(|i| Slot {
            index: i,
            gpus: match share {
                None => Vec::new(),
                Some(GpuShare::Whole(m)) => {
                    let m = m as usize;
                    req.gpus[i * m..(i + 1) * m].to_vec()
                }
                // Round-robin: slot i on GPU i mod G, so at most ceil(n / G) <= k per GPU.
                Some(GpuShare::Fraction(_)) => vec![req.gpus[i % req.gpus.len()].clone()],
            },
            cpus: match req.cpus_per_trial {
                None => Vec::new(),
                Some(c) => req.cpus[i * c..(i + 1) * c].to_vec(),
            },
        })
        .collect();
    Ok(Allocation { slots, limited_by })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn gpus(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    fn req(jobs: usize, n_gpus: usize, share: Option<GpuShare>) -> SlotRequest {
        SlotRequest {
            jobs,
            gpus: gpus(n_gpus),
            gpu_share: share,
            cpus: (0..16).collect(),
            cpus_per_trial: None,
        }
    }

    #[test]
    fn shares_parse() {
        assert_eq!("1".parse(), Ok(GpuShare::Whole(1)));
        assert_eq!("2".parse(), Ok(GpuShare::Whole(2)));
        assert_eq!("2.0".parse(), Ok(GpuShare::Whole(2)));
        assert_eq!("0.5".parse(), Ok(GpuShare::Fraction(2)));
        assert_eq!("0.25".parse(), Ok(GpuShare::Fraction(4)));
        assert_eq!("1/3".parse(), Ok(GpuShare::Fraction(3)));
        assert_eq!("0.333".parse(), Ok(GpuShare::Fraction(3)));
        assert_eq!("1/1".parse(), Ok(GpuShare::Whole(1)));
        for bad in [
            "0", "0.3", "1.5", "-1", "nan", "inf", "1/0", "x", "", "0.33",
        ] {
            let err = bad.parse::<GpuShare>().unwrap_err();
            assert!(err.contains("1/k"), "{bad}: {err}");
        }
    }

    #[test]
    fn half_gpus_pack_two_per_device_and_no_more() {
        let a = allocate(&req(8, 2, Some(GpuShare::Fraction(2)))).unwrap();
        assert_eq!(a.slots.len(), 4);
        let devices: Vec<&str> = a.slots.iter().map(|s| s.gpus[0].as_str()).collect();
        assert_eq!(devices, ["0", "1", "0", "1"]);
        assert!(a.limited_by.unwrap().contains("hold 4"));
    }

    #[test]
    fn fewer_jobs_spread_over_every_gpu() {
        let a = allocate(&req(4, 4, Some(GpuShare::Fraction(2)))).unwrap();
        let devices: Vec<&str> = a.slots.iter().map(|s| s.gpus[0].as_str()).collect();
        assert_eq!(devices, ["0", "1", "2", "3"]);
        assert_eq!(a.limited_by, None);
    }

    #[test]
    fn whole_gpus_are_grouped() {
        let a = allocate(&req(8, 5, Some(GpuShare::Whole(2)))).unwrap();
        assert_eq!(a.slots.len(), 2);
        assert_eq!(a.slots[0].gpus, ["0", "1"]);
        assert_eq!(a.slots[1].gpus, ["2", "3"]);
        // GPUs without a share: one each.
        let a = allocate(&req(8, 3, None)).unwrap();
        assert_eq!(a.slots.len(), 3);
        assert_eq!(a.slots[2].gpus, ["2"]);
    }

    #[test]
    fn cpu_sets_are_disjoint_and_limit_the_slots() {
        let mut r = req(8, 0, None);
        r.cpus = vec![0, 1, 2, 3, 8, 9, 10];
        r.cpus_per_trial = Some(2);
        let a = allocate(&r).unwrap();
        assert_eq!(a.slots.len(), 3);
        assert_eq!(a.slots[0].cpus, [0, 1]);
        assert_eq!(a.slots[1].cpus, [2, 3]);
        assert_eq!(a.slots[2].cpus, [8, 9]);
        assert!(a.limited_by.unwrap().contains("CPU"));
        assert_eq!(a.slots[2].to_string(), "slot 2: cores 8-9");
    }

    #[test]
    fn impossible_requests_say_why() {
        assert_eq!(allocate(&req(0, 0, None)), Err(SlotError::NoJobs));
        assert_eq!(
            allocate(&req(2, 0, Some(GpuShare::Whole(1)))),
            Err(SlotError::ShareWithoutGpus)
        );
        assert_eq!(
            allocate(&req(2, 1, Some(GpuShare::Whole(2)))),
            Err(SlotError::TooFewGpus { need: 2, have: 1 })
        );
        let mut r = req(2, 0, None);
        r.cpus_per_trial = Some(32);
        assert_eq!(
            allocate(&r),
            Err(SlotError::TooFewCpus { need: 32, have: 16 })
        );
        r.cpus_per_trial = Some(0);
        assert_eq!(allocate(&r), Err(SlotError::NoCpus));
        let mut r = req(2, 2, None);
        r.gpus[1] = "0".into();
        assert!(matches!(allocate(&r), Err(SlotError::BadGpuList(_))));
    }

    #[test]
    fn cpu_lists_are_compact() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(cpu_list(&[5]), "5");
        assert_eq!(cpu_list(&[]), "");
    }

    fn share() -> impl Strategy<Value = GpuShare> {
        prop_oneof![
            (1u32..4).prop_map(GpuShare::Whole),
            (2u32..5).prop_map(GpuShare::Fraction),
        ]
    }

    proptest! {
        #[test]
        fn never_over_capacity_never_over_jobs(
            jobs in 1usize..24,
            n_gpus in 0usize..9,
            share in proptest::option::of(share()),
            n_cpus in 1usize..33,
            cpus_per_trial in proptest::option::of(1usize..6),
        ) {
            let r = SlotRequest {
                jobs,
                gpus: gpus(n_gpus),
                gpu_share: share,
                cpus: (0..n_cpus).map(|c| c * 2).collect(),
                cpus_per_trial,
            };
            let Ok(a) = allocate(&r) else {
                // Refused only when a single trial cannot fit.
                let gpu_misfit = match (share, n_gpus) {
                    (Some(_), 0) => true,
                    (Some(s), g) => s.capacity(g) == 0,
                    (None, _) => false,
                };
                let cpu_misfit = cpus_per_trial.is_some_and(|c| c > n_cpus);
                prop_assert!(gpu_misfit || cpu_misfit);
                return Ok(());
            };
            let slots = &a.slots;
            prop_assert!(!slots.is_empty());
            prop_assert!(slots.len() <= jobs);
            // As many as the scarcest resource allows.
            let mut cap = jobs;
            if n_gpus > 0 {
                cap = cap.min(share.unwrap_or(GpuShare::Whole(1)).capacity(n_gpus));
            }
            if let Some(c) = cpus_per_trial {
                cap = cap.min(n_cpus / c);
            }
            prop_assert_eq!(slots.len(), cap);
            // Per GPU: the shares of the slots on it add up to at most one GPU.
            let mut load: HashMap<&str, (u32, u32)> = HashMap::new();
            for s in slots {
                for g in &s.gpus {
                    let e = load.entry(g.as_str()).or_insert((0, 0));
                    match share.unwrap_or(GpuShare::Whole(1)) {
                        GpuShare::Whole(m) => {
                            prop_assert_eq!(s.gpus.len(), m as usize);
                            e.0 += 1;
                        }
                        GpuShare::Fraction(k) => {
                            prop_assert_eq!(s.gpus.len(), 1);
                            e.1 += 1;
                            prop_assert!(e.1 <= k, "GPU {} holds {} trials of 1/{}", g, e.1, k);
                        }
                    }
                    prop_assert!(e.0 <= 1, "GPU {} in two whole-GPU slots", g);
                    prop_assert!(r.gpus.contains(g));
                }
            }
            // Cores: disjoint, the right number, all available.
            let mut seen = std::collections::HashSet::new();
            for s in slots {
                prop_assert_eq!(s.cpus.len(), cpus_per_trial.unwrap_or(0));
                for c in &s.cpus {
                    prop_assert!(r.cpus.contains(c));
                    prop_assert!(seen.insert(*c), "core {} in two slots", c);
                }
            }
        }
    }
}
