//! Multi-objective building blocks, all on loss vectors (every objective minimized; see
//! [`Direction::to_loss`](crate::Direction::to_loss)): non-domination ranks, crowding
//! distances, the exact hypervolume, and greedy hypervolume subset selection. MOTPE uses them
//! to pick its "good" trials, successive halving to rank a rung of several objectives;
//! NSGA-II and the hypervolume plots will too.

/// Whether `a` dominates `b`: no larger loss anywhere and a smaller one somewhere.
fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (&x, &y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        strictly |= x < y;
    }
    strictly
}

/// The non-domination rank of each point (0 = the Pareto front, 1 = the front once rank 0
/// is removed, …; Deb et al., "A fast and elitist multiobjective genetic algorithm:
/// NSGA-II", IEEE TEC 6(2), 2002). Ranking stops once at least `enough` points are ranked:
/// the rest get `usize::MAX`, which is all a caller selecting `enough` points needs.
pub fn non_domination_ranks(points: &[&[f64]], enough: usize) -> Vec<usize> {
    let n = points.len();
    let mut rank = vec![usize::MAX; n];
    // dominated_by[i]: how many unranked points dominate i; dominates_list[i]: whom i dominates.
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(points[i], points[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(points[j], points[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut front: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let (mut r, mut ranked) = (0, 0);
    while !front.is_empty() && ranked < enough.min(n) {
        let mut next = Vec::new();
        for &i in &front {
            rank[i] = r;
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        ranked += front.len();
        next.sort_unstable();
        front = next;
        r += 1;
    }
    rank
}

/// The crowding distance of each point within `points`, taken as one front (Deb, Pratap,
/// Agarwal & Meyarivan, "A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE
/// TEC 6(2), 2002, §III-B): the sum over objectives of the gap between a point's two
/// neighbours along that objective, divided by the objective's range; the extremes of each
/// objective get `+∞`, so a larger distance means a less crowded, more valuable point.
///
/// One refinement for ties: a point's neighbours are the nearest *different* values, and
/// every point holding the smallest or largest value is an extreme. Deb's sort-based formula
/// gives tied points different distances depending on the order they happen to be sorted in;
/// here points sharing a value are treated alike, identical points get identical distances,
/// and the result does not depend on the order of `points`. With distinct values in every
/// objective it is exactly Deb's formula. An objective on which all points agree separates
/// none of them and adds nothing, so a lone point, or a set of identical points, has
/// distance `0`.
pub fn crowding_distances(points: &[&[f64]]) -> Vec<f64> {
    let n = points.len();
    let mut distance = vec![0.0; n];
    let n_objectives = points.first().map_or(0, |p| p.len());
    let mut values: Vec<f64> = Vec::with_capacity(n);
    for m in 0..n_objectives {
        values.clear();
        values.extend(points.iter().map(|p| p[m]));
        values.sort_by(f64::total_cmp);
        values.dedup_by(|a, b| a.total_cmp(b).is_eq());
        let (Some(&lo), Some(&hi)) = (values.first(), values.last()) else {
            continue;
        };
        if values.len() < 2 {
            continue;
        }
        let range = hi - lo;
        for (i, p) in points.iter().enumerate() {
            // The position of this point's value among the distinct values.
            let j = values.partition_point(|v| v.total_cmp(&p[m]).is_lt());
            if j == 0 || j + 1 >= values.len() {
                distance[i] = f64::INFINITY;
            } else {
                distance[i] += (values[j + 1] - values[j - 1]) / range;
            }
        }
    }
    distance
}

/// The hypervolume dominated by `points` and bounded by `reference`: the measure of
/// `{x : some p ≤ x ≤ reference}`. Points not strictly better than the reference in every
/// objective add nothing.
///
/// Exact, by a sweep in two dimensions and by the WFG algorithm beyond (While, Bradstreet &
/// Barone, "A fast way of calculating exact hypervolumes", IEEE TEC 16(1), 2012): the
/// volume is the sum of each point's exclusive part, `inclusive(p) − hv(limit(rest, p))`.
pub fn hypervolume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let mut inside: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.iter().zip(reference).all(|(x, r)| x < r))
        .map(|p| p.to_vec())
        .collect();
    keep_non_dominated(&mut inside);
    wfg(inside, reference)
}

/// Removes dominated points and duplicates, in place.
fn keep_non_dominated(points: &mut Vec<Vec<f64>>) {
    points.sort_by(|a, b| {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    points.dedup();
    let keep: Vec<bool> = (0..points.len())
        .map(|i| {
            !points
                .iter()
                .enumerate()
                .any(|(j, q)| j != i && dominates(q, &points[i]))
        })
        .collect();
    let mut k = keep.iter();
    points.retain(|_| *k.next().unwrap_or(&true));
}

fn inclusive(p: &[f64], reference: &[f64]) -> f64 {
    p.iter().zip(reference).map(|(x, r)| r - x).product()
}

/// WFG over non-dominated points inside the reference box.
fn wfg(mut points: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    match (points.len(), reference.len()) {
        (0, _) => 0.0,
        (1, _) => inclusive(&points[0], reference),
        (_, 1) => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        (_, 2) => {
            points.sort_by(|a, b| a[0].total_cmp(&b[0]));
            let mut lowest = reference[1];
            let mut volume = 0.0;
            for p in &points {
                if p[1] < lowest {
                    volume += (reference[0] - p[0]) * (lowest - p[1]);
                    lowest = p[1];
                }
            }
            volume
        }
        _ => {
            // Sorting by the last objective, worst first, keeps limit sets small.
            let last = reference.len() - 1;
            points.sort_by(|a, b| b[last].total_cmp(&a[last]));
            let mut volume = 0.0;
            for i in 0..points.len() {
                volume += exclusive(&points[i], &points[i + 1..], reference);
            }
            volume
        }
    }
}

/// The part of `p`'s box dominated by none of `others`.
fn exclusive(p: &[f64], others: &[Vec<f64>], reference: &[f64]) -> f64 {
    let mut limited: Vec<Vec<f64>> = others
        .iter()
        .map(|q| q.iter().zip(p).map(|(a, b)| a.max(*b)).collect())
        .collect();
    keep_non_dominated(&mut limited);
    inclusive(p, reference) - wfg(limited, reference)
}

/// Picks `k` of `points` that greedily maximize the hypervolume they dominate with respect
/// to `reference` (hypervolume subset selection; the greedy choice is within a factor
/// `1 − 1/e` of the best subset because hypervolume is submodular — Guerreiro, Fonseca &
/// Paquete, "Greedy hypervolume subset selection in low dimensions", Evol. Comput. 24(3),
/// 2016). Contributions only shrink as the selection grows, so stale values are upper
/// bounds and are refreshed lazily. Ties go to the lower index; the result is in selection
/// order (all indices in order when `k` covers them all).
pub fn greedy_hypervolume_subset(points: &[&[f64]], k: usize, reference: &[f64]) -> Vec<usize> {
    let n = points.len();
    if k >= n {
        return (0..n).collect();
    }
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut chosen_points: Vec<Vec<f64>> = Vec::with_capacity(k);
    // (upper bound of the contribution, index, selection size it was computed at)
    let mut bound: Vec<(f64, usize)> = (0..n)
        .map(|i| {
            let inside = points[i].iter().zip(reference).all(|(x, r)| x < r);
            (
                if inside {
                    inclusive(points[i], reference)
                } else {
                    0.0
                },
                0,
            )
        })
        .collect();
    let mut taken = vec![false; n];
    while chosen.len() < k {
        loop {
            let best = (0..n)
                .filter(|&i| !taken[i])
                .max_by(|&a, &b| bound[a].0.total_cmp(&bound[b].0).then(b.cmp(&a)));
            let Some(i) = best else {
                return chosen;
            };
            if bound[i].1 == chosen.len() {
                taken[i] = true;
                chosen.push(i);
                chosen_points.push(points[i].to_vec());
                break;
            }
            let inside = points[i].iter().zip(reference).all(|(x, r)| x < r);
            let contribution = if inside {
                exclusive(points[i], &chosen_points, reference)
            } else {
                0.0
            };
            bound[i] = (contribution, chosen.len());
        }
    }
    chosen
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::rng::TrialRng;

    fn refs(points: &[Vec<f64>]) -> Vec<&[f64]> {
        points.iter().map(|p| p.as_slice()).collect()
    }

    #[test]
    fn ranks_of_a_known_set() {
        let pts = vec![
            vec![1.0, 4.0],
            vec![2.0, 2.0],
            vec![3.0, 3.0],
            vec![4.0, 1.0],
            vec![2.0, 2.0],
            vec![5.0, 5.0],
        ];
        assert_eq!(non_domination_ranks(&refs(&pts), 6), vec![0, 0, 1, 0, 0, 2]);
        // Enough points in the first front: the rest stay unranked.
        assert_eq!(
            non_domination_ranks(&refs(&pts), 3),
            vec![0, 0, usize::MAX, 0, 0, usize::MAX]
        );
    }

    #[test]
    fn crowding_distance_of_a_known_front() {
        // Front (1,5), (2,3), (4,2), (5,1); ranges 4 and 4.
        let pts = vec![
            vec![1.0, 5.0],
            vec![2.0, 3.0],
            vec![4.0, 2.0],
            vec![5.0, 1.0],
        ];
        let d = crowding_distances(&refs(&pts));
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[3], f64::INFINITY);
        // (2,3): neighbours 1 and 4 along x, 5 and 2 along y → 3/4 + 3/4.
        assert_eq!(d[1], 1.5);
        // (4,2): neighbours 2 and 5 along x, 3 and 1 along y → 3/4 + 2/4.
        assert_eq!(d[2], 1.25);
        // The order of the points does not matter.
        let reversed: Vec<Vec<f64>> = pts.iter().rev().cloned().collect();
        let mut back = crowding_distances(&refs(&reversed));
        back.reverse();
        assert_eq!(back, d);
    }

    #[test]
    fn crowding_distance_treats_ties_alike() {
        // Two identical interior points share one distance.
        let pts = vec![
            vec![0.0, 4.0],
            vec![2.0, 2.0],
            vec![2.0, 2.0],
            vec![4.0, 0.0],
        ];
        let d = crowding_distances(&refs(&pts));
        assert_eq!(d, vec![f64::INFINITY, 2.0, 2.0, f64::INFINITY]);
        // Every point at an extreme value is an extreme.
        let pts = vec![vec![0.0, 1.0], vec![0.0, 2.0], vec![1.0, 0.0]];
        assert!(crowding_distances(&refs(&pts))
            .iter()
            .all(|d| d.is_infinite()));
        // All points equal: nothing separates them.
        let same = vec![vec![1.0, 1.0]; 3];
        assert_eq!(crowding_distances(&refs(&same)), vec![0.0; 3]);
        assert_eq!(crowding_distances(&refs(&[vec![3.0, 3.0]])), vec![0.0]);
        assert!(crowding_distances(&[]).is_empty());
        // An objective where all agree adds nothing; the other still separates.
        let flat = vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![1.0, 3.0]];
        assert_eq!(
            crowding_distances(&refs(&flat)),
            vec![f64::INFINITY, 1.0, f64::INFINITY]
        );
    }

    #[test]
    fn hypervolume_known_values() {
        let r = [4.0, 4.0];
        // Staircase (1,3), (2,2), (3,1): 3·1 + 2·1 + 1·1 = 6.
        let pts = vec![
            vec![1.0, 3.0],
            vec![2.0, 2.0],
            vec![3.0, 1.0],
            vec![3.0, 3.0],
        ];
        assert_eq!(hypervolume(&refs(&pts), &r), 6.0);
        // A point outside the box adds nothing.
        assert_eq!(hypervolume(&refs(&[vec![5.0, 0.0]]), &r), 0.0);
        // 3-d: two boxes [0,2]³ and a point (1,1,3) with reference (4,4,4):
        // box of (0,0,2) = 4·4·2 = 32; box of (1,1,0) = 3·3·4 = 36; overlap 3·3·2 = 18 → 50.
        let pts3 = vec![vec![0.0, 0.0, 2.0], vec![1.0, 1.0, 0.0]];
        assert_eq!(hypervolume(&refs(&pts3), &[4.0, 4.0, 4.0]), 50.0);
    }

    #[test]
    fn wfg_agrees_with_monte_carlo_in_four_dimensions() {
        let mut rng = TrialRng::from_seed(3);
        let pts: Vec<Vec<f64>> = (0..12)
            .map(|_| (0..4).map(|_| rng.uniform()).collect())
            .collect();
        let r = [1.0; 4];
        let exact = hypervolume(&refs(&pts), &r);
        let samples = 200_000;
        let hits = (0..samples)
            .filter(|_| {
                let x: Vec<f64> = (0..4).map(|_| rng.uniform()).collect();
                pts.iter().any(|p| p.iter().zip(&x).all(|(a, b)| a <= b))
            })
            .count();
        let estimate = hits as f64 / samples as f64;
        assert!((exact - estimate).abs() < 0.01, "{exact} vs {estimate}");
    }

    #[test]
    fn greedy_subset_prefers_spread_points() {
        // Reference (4,4): extremes (0,3) and (3,0) contribute 4 and 4 … (1,1) alone 9.
        let pts = vec![
            vec![0.0, 3.0],
            vec![1.0, 1.0],
            vec![3.0, 0.0],
            vec![1.1, 1.1],
        ];
        let r = [4.0, 4.0];
        let picked = greedy_hypervolume_subset(&refs(&pts), 2, &r);
        assert_eq!(picked[0], 1, "the largest box first");
        // After (1,1): (0,3) adds 1·1 = 1, (3,0) adds 1, (1.1,1.1) adds 0 → lowest index.
        assert_eq!(picked, vec![1, 0]);
        let all = greedy_hypervolume_subset(&refs(&pts), 4, &r);
        assert_eq!(all.len(), 4);
        // The greedy choice matches the exact best pair here.
        let best_pair = hypervolume(&refs(&[pts[1].clone(), pts[0].clone()]), &r);
        assert_eq!(best_pair, 10.0);
    }
}
