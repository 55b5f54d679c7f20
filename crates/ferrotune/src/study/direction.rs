//! `Direction`: whether an objective is minimized or maximized, and the dominance rules built on
//! it.

use serde::{Deserialize, Serialize};

/// Whether an objective is minimized or maximized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smaller is better (the default, as for a loss).
    #[default]
    Minimize,
    /// Larger is better (as for an accuracy).
    Maximize,
}

impl Direction {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// The value turned into a loss (smaller is better) for sign-free comparisons.
    pub fn to_loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Direction {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "minimize" | "min" => Ok(Direction::Minimize),
            "maximize" | "max" => Ok(Direction::Maximize),
            _ => Err(crate::Error::invalid_argument(
                "direction",
                format!("unknown direction `{s}`; use minimize or maximize"),
            )),
        }
    }
}

/// Whether loss vector `a` Pareto-dominates `b` under `directions`: no worse in every objective
/// and strictly better in one.
pub fn dominates(a: &[f64], b: &[f64], directions: &[Direction]) -> bool {
    let mut strictly = false;
    for ((&x, &y), d) in a.iter().zip(b).zip(directions) {
        let (x, y) = (d.to_loss(x), d.to_loss(y));
        if x > y {
            return false;
        }
        if x < y {
            strictly = true;
        }
    }
    strictly
}

/// Indices of the non-dominated points among `points` (the Pareto front); duplicates of a
/// front point are all kept.
pub fn pareto_front(points: &[&[f64]], directions: &[Direction]) -> Vec<usize> {
    let losses: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            p.iter()
                .zip(directions)
                .map(|(&v, d)| d.to_loss(v))
                .collect()
        })
        .collect();
    let losses: Vec<&[f64]> = losses.iter().map(Vec::as_slice).collect();
    crate::pareto::non_domination_ranks(&losses, 1)
        .into_iter()
        .enumerate()
        .filter(|&(_, rank)| rank == 0)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominance_respects_directions() {
        let dirs = [Direction::Minimize, Direction::Maximize];
        assert!(dominates(&[1.0, 5.0], &[2.0, 4.0], &dirs));
        assert!(!dominates(&[1.0, 3.0], &[2.0, 4.0], &dirs));
        assert!(!dominates(&[1.0, 4.0], &[1.0, 4.0], &dirs));
    }

    #[test]
    fn front_of_a_known_set() {
        let dirs = [Direction::Minimize, Direction::Minimize];
        let pts: Vec<&[f64]> = vec![
            &[1.0, 4.0],
            &[2.0, 2.0],
            &[3.0, 3.0],
            &[4.0, 1.0],
            &[2.0, 2.0],
        ];
        assert_eq!(pareto_front(&pts, &dirs), vec![0, 1, 3, 4]);
    }
}
