//! E-Divisive means: change points of one series (Matteson & James 2014,
//! "A nonparametric approach for multiple change point analysis of
//! multivariate data", JASA 109(505); as MongoDB's signal-processing and
//! Apache Otava use it for performance histories).
//!
//! Bisection: the split of a segment that maximizes the energy-statistic
//! divergence between its two sides is proposed, and kept only when a
//! permutation test says so; then each side is split again. Nothing is
//! tuned per metric: a step counts when it stands out of the series' own
//! noise.
//!
//! Written here rather than taken from crates.io: `edivisive` (0.1.0, 2021,
//! one release) pulls ndarray and is unmaintained, and `changepoint` is
//! Bayesian online detection (BOCPD) with a hazard and a prior to choose per
//! metric, which is what this module exists to avoid. The algorithm fits in
//! a page with the incremental sums below (O(n log n) per split search
//! with α = 1, O(n²) otherwise).
//!
//! Pure: no I/O, deterministic for a given seed.

/// The tuning of [`change_points`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EDivisiveParams {
    /// The exponent of the distance |x - y|^α, in (0, 2); 1 as in the paper.
    pub alpha: f64,
    /// The fewest values on either side of a change point.
    pub min_size: usize,
    /// Permutations of the significance test (at most).
    pub permutations: usize,
    /// A change point counts when its permutation p-value is at most this.
    pub significance: f64,
    pub seed: u64,
}

impl Default for EDivisiveParams {
    fn default() -> Self {
        EDivisiveParams {
            alpha: 1.0,
            min_size: 3,
            permutations: 999,
            significance: 0.02,
            seed: 0x5eed_1a7e,
        }
    }
}

/// A significant change point: the series' level differs from `index` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePoint {
    /// The first value of the new level.
    pub index: usize,
    /// The permutation test's p-value, (1 + as large) / (1 + permutations).
    pub p_value: f64,
    /// The energy statistic of the split.
    pub statistic: f64,
}

/// SplitMix64 (Steele, Lea & Flood 2014): a seeded, dependency-free
/// generator, good enough to shuffle.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle(&mut self, values: &mut [f64]) {
        for i in (1..values.len()).rev() {
            values.swap(i, self.below(i + 1));
        }
    }
}

/// Row sums of the distances |xᵢ − xⱼ|^α of a segment: `left[t]` over the
/// values before t, `right[t]` over the values after t (each pair once in
/// each array).
type RowSums = fn(&[f64], f64) -> (Vec<f64>, Vec<f64>);

/// The row sums for any α, pair by pair: O(n²).
fn row_sums_pairwise(x: &[f64], alpha: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let mut left = vec![0.0; n];
    let mut right = vec![0.0; n];
    for i in 0..n {
        for j in i + 1..n {
            let gap = (x[i] - x[j]).abs();
            let d = if alpha == 1.0 { gap } else { gap.powf(alpha) };
            left[j] += d;
            right[i] += d;
        }
    }
    (left, right)
}

/// Below this many values pair by pair is as fast as sorting.
const SORTED_FROM: usize = 100;

/// The row sums: pair by pair for short segments and α ≠ 1, else sorted.
fn row_sums(x: &[f64], alpha: f64) -> (Vec<f64>, Vec<f64>) {
    if alpha != 1.0 || x.len() < SORTED_FROM {
        row_sums_pairwise(x, alpha)
    } else {
        row_sums_sorted(x)
    }
}

/// The row sums with α = 1 in O(n log n).
///
/// With α = 1, Σ|xₜ − xᵢ| over a set splits at xₜ: (count below)·xₜ −
/// (sum below) + (sum above) − (count above)·xₜ. The whole row follows
/// from prefix sums of the sorted values; the part before t from a
/// Fenwick tree over the values' ranks, filled in index order; the part
/// after t is the difference. The values are centred first so that the
/// sums cancel less.
fn row_sums_sorted(x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let centre = x.iter().sum::<f64>() / n.max(1) as f64;
    let x: Vec<f64> = x.iter().map(|v| v - centre).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut rank = vec![0; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    // Prefix sums of the sorted values: the whole row of each value.
    let mut prefix = vec![0.0; n + 1];
    for (r, &i) in order.iter().enumerate() {
        prefix[r + 1] = prefix[r] + x[i];
    }
    let total = prefix[n];
    let mut tree = Fenwick::new(n);
    let mut left = vec![0.0; n];
    let mut right = vec![0.0; n];
    let mut sum_before = 0.0;
    for t in 0..n {
        let (v, r) = (x[t], rank[t]);
        let row = r as f64 * v - prefix[r] + (total - prefix[r + 1]) - (n - 1 - r) as f64 * v;
        let (below, below_sum) = tree.prefix(r);
        let above = (t - below) as f64;
        left[t] = below as f64 * v - below_sum + (sum_before - below_sum) - above * v;
        right[t] = row - left[t];
        tree.add(r, v);
        sum_before += v;
    }
    (left, right)
}

/// A Fenwick (binary indexed) tree of counts and sums over ranks.
struct Fenwick {
    count: Vec<usize>,
    sum: Vec<f64>,
}

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick {
            count: vec![0; n + 1],
            sum: vec![0.0; n + 1],
        }
    }

    fn add(&mut self, rank: usize, value: f64) {
        let mut i = rank + 1;
        while i < self.count.len() {
            self.count[i] += 1;
            self.sum[i] += value;
            i += i & i.wrapping_neg();
        }
    }

    /// The count and sum of the values added at ranks below `rank`.
    fn prefix(&self, rank: usize) -> (usize, f64) {
        let (mut c, mut s) = (0, 0.0);
        let mut i = rank;
        while i > 0 {
            c += self.count[i];
            s += self.sum[i];
            i -= i & i.wrapping_neg();
        }
        (c, s)
    }
}

/// The best split of `x` (indices relative to `x`) and its statistic
/// Q = mn/(m+n) · (2/(mn) Σ|xᵢ-yⱼ|^α − Σ_{i<k}|xᵢ-xₖ|^α / C(m,2) − Σ_{j<l}|yⱼ-yₗ|^α / C(n,2)).
/// None when `x` is too short to split.
fn best_split(x: &[f64], alpha: f64, min_size: usize, sums: RowSums) -> Option<(usize, f64)> {
    let n = x.len();
    let min_size = min_size.max(2);
    if n < 2 * min_size {
        return None;
    }
    // The row sums are the cost of the search (and of each permutation);
    // the scan over τ below is O(n).
    let (left, right) = sums(x, alpha);
    // τ = min_size: X = x[..τ], Y = x[τ..].
    let mut within_x: f64 = (0..min_size).map(|t| left[t]).sum();
    let mut within_y: f64 = (min_size..n).map(|t| right[t]).sum();
    let mut between: f64 = right[..min_size].iter().sum::<f64>() - within_x;
    let mut best: Option<(usize, f64)> = None;
    for tau in min_size..=n - min_size {
        let (m, k) = (tau as f64, (n - tau) as f64);
        let q = m * k / (m + k)
            * (2.0 * between / (m * k)
                - within_x / (m * (m - 1.0) / 2.0)
                - within_y / (k * (k - 1.0) / 2.0));
        if best.is_none_or(|(_, b)| q > b) {
            best = Some((tau, q));
        }
        // Move x[τ] from Y to X.
        within_x += left[tau];
        within_y -= right[tau];
        between += right[tau] - left[tau];
    }
    best
}

/// The best split over all segments (bounds `[s, e)`): (segment, τ, Q), τ absolute.
fn best_over(
    x: &[f64],
    segments: &[(usize, usize)],
    p: &EDivisiveParams,
    sums: RowSums,
) -> Option<(usize, usize, f64)> {
    segments
        .iter()
        .enumerate()
        .filter_map(|(i, &(s, e))| {
            best_split(&x[s..e], p.alpha, p.min_size, sums).map(|(t, q)| (i, s + t, q))
        })
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

/// The permutation p-value of `observed`: each segment shuffled within
/// itself (the null: no change inside any segment), the best split
/// searched again. Stops early once the p-value cannot reach the
/// significance level.
fn p_value(
    x: &[f64],
    segments: &[(usize, usize)],
    observed: f64,
    p: &EDivisiveParams,
    rng: &mut SplitMix,
    sums: RowSums,
) -> f64 {
    let mut work = x.to_vec();
    let mut as_large = 0usize;
    let give_up = (p.significance * (p.permutations + 1) as f64).floor() as usize;
    for done in 1..=p.permutations {
        for &(s, e) in segments {
            rng.shuffle(&mut work[s..e]);
        }
        if best_over(&work, segments, p, sums).is_some_and(|(_, _, q)| q >= observed) {
            as_large += 1;
            if as_large >= give_up {
                return (1 + as_large) as f64 / (1 + done) as f64;
            }
        }
    }
    (1 + as_large) as f64 / (1 + p.permutations) as f64
}

/// Places a proposed change point where the step in the mean is
/// sharpest: the energy statistic with α = 1 says whether the segment has a
/// change, but its argmax lands further from a step in the mean than the
/// least-squares split does (the Gaussian maximum-likelihood location,
/// mn/(m+n)·(x̄ − ȳ)², over the same segment and min_size).
fn refine(x: &[f64], (s, e): (usize, usize), tau: usize, min_size: usize) -> usize {
    let segment = &x[s..e];
    let n = segment.len();
    let total: f64 = segment.iter().sum();
    let mut left = 0.0;
    let mut best = (tau, f64::MIN);
    for (t, v) in segment.iter().enumerate().take(n - min_size + 1) {
        if t >= min_size {
            let (m, k) = (t as f64, (n - t) as f64);
            let shift = left / m - (total - left) / k;
            let score = m * k / n as f64 * shift * shift;
            if score > best.1 {
                best = (s + t, score);
            }
        }
        left += v;
    }
    best.0
}

/// The significant change points of `x`, in index order.
pub fn change_points(x: &[f64], p: &EDivisiveParams) -> Vec<ChangePoint> {
    search(x, p, row_sums)
}

fn search(x: &[f64], p: &EDivisiveParams, sums: RowSums) -> Vec<ChangePoint> {
    let mut rng = SplitMix::new(p.seed);
    let mut found: Vec<ChangePoint> = Vec::new();
    let mut segments = vec![(0, x.len())];
    while let Some((i, tau, q)) = best_over(x, &segments, p, sums) {
        let p_value = p_value(x, &segments, q, p, &mut rng, sums);
        if p_value > p.significance {
            break;
        }
        let (s, e) = segments[i];
        let index = refine(x, (s, e), tau, p.min_size);
        segments.splice(i..=i, [(s, index), (index, e)]);
        found.push(ChangePoint {
            index,
            p_value,
            statistic: q,
        });
    }
    found.sort_by_key(|c| c.index);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian noise (Box–Muller) from the same generator.
    fn normal(rng: &mut SplitMix) -> f64 {
        let u = rng.unit().max(1e-300);
        let v = rng.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// 30 commits at 100 t/s, each the mean of `runs` runs with 5%
    /// run-to-run noise; from `step_at` on, the level is `100 · (1 + step)`.
    fn history(rng: &mut SplitMix, step_at: usize, step: f64, runs: usize) -> Vec<f64> {
        (0..30)
            .map(|i| {
                let level = if i >= step_at {
                    100.0 * (1.0 + step)
                } else {
                    100.0
                };
                let sum: f64 = (0..runs).map(|_| level * (1.0 + 0.05 * normal(rng))).sum();
                sum / runs as f64
            })
            .collect()
    }

    /// 200 histories with a 10% step at a random commit that leaves
    /// min_size commits on either side: how many E-Divisive finds at that
    /// commit ±1, and how many the least-squares split alone places there
    /// (with no test of significance: an upper bound for any method).
    fn step_detection(seed: u64, runs: usize) -> (usize, usize) {
        let mut rng = SplitMix::new(seed);
        let p = EDivisiveParams::default();
        let (mut found, mut oracle) = (0, 0);
        for i in 0..200 {
            let at = p.min_size + rng.below(30 - 2 * p.min_size + 1);
            let step = if i % 2 == 0 { -0.1 } else { 0.1 };
            let x = history(&mut rng, at, step, runs);
            if change_points(&x, &p)
                .iter()
                .any(|c| c.index.abs_diff(at) <= 1)
            {
                found += 1;
            }
            if refine(&x, (0, x.len()), 0, p.min_size).abs_diff(at) <= 1 {
                oracle += 1;
            }
        }
        (found, oracle)
    }

    #[test]
    fn best_split_matches_the_definition() {
        let x: [f64; 7] = [1.0, 2.0, 1.5, 7.0, 8.0, 6.5, 7.2];
        let naive = |t: usize| {
            let (a, b) = (&x[..t], &x[t..]);
            let (m, n) = (a.len() as f64, b.len() as f64);
            let between: f64 = a
                .iter()
                .flat_map(|u| b.iter().map(move |v| (u - v).abs()))
                .sum();
            let within = |s: &[f64]| {
                let mut w = 0.0;
                for i in 0..s.len() {
                    for k in i + 1..s.len() {
                        w += (s[i] - s[k]).abs();
                    }
                }
                w / (s.len() as f64 * (s.len() as f64 - 1.0) / 2.0)
            };
            m * n / (m + n) * (2.0 * between / (m * n) - within(a) - within(b))
        };
        let (tau, q) = best_split(&x, 1.0, 2, row_sums).unwrap();
        assert_eq!(tau, 3);
        assert!((q - naive(3)).abs() < 1e-9, "{q} vs {}", naive(3));
        for t in 2..=5 {
            assert!(naive(t) <= q + 1e-9);
        }
    }

    /// The O(n log n) row sums against the pair-by-pair ones they replace,
    /// on random series with ties, and the whole search on both (series of
    /// 30 and 300 commits).
    #[test]
    fn sorted_row_sums_agree_with_the_pairwise_ones() {
        let mut rng = SplitMix::new(99);
        for n in [0, 1, 2, 7, 30, 301] {
            for _ in 0..5 {
                // Rounded to 0.5: ties between values.
                let x: Vec<f64> = (0..n)
                    .map(|_| (200.0 * (100.0 + 5.0 * normal(&mut rng))).round() / 2.0)
                    .collect();
                let (fast, slow) = (row_sums_sorted(&x), row_sums_pairwise(&x, 1.0));
                for (a, b) in fast
                    .0
                    .iter()
                    .chain(&fast.1)
                    .zip(slow.0.iter().chain(&slow.1))
                {
                    assert!(
                        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        "n = {n}: {a} vs {b}"
                    );
                }
            }
        }
        let p = EDivisiveParams::default();
        let sorted: RowSums = |x, _| row_sums_sorted(x);
        for seed in 0..40 {
            let mut rng = SplitMix::new(seed);
            let runs = 1 + (seed % 2) as usize;
            let at = 3 + rng.below(25);
            let mut x = history(&mut rng, at, if seed % 4 < 2 { 0.1 } else { 0.0 }, runs);
            if seed % 10 == 0 {
                // 300 commits: ten such histories end to end, steps included.
                x = (0..10)
                    .flat_map(|_| history(&mut rng, at, -0.1, runs))
                    .collect();
            }
            let (fast, slow) = (search(&x, &p, sorted), search(&x, &p, row_sums_pairwise));
            assert_eq!(fast.len(), slow.len(), "seed {seed}: {fast:?} vs {slow:?}");
            for (a, b) in fast.iter().zip(&slow) {
                assert_eq!((a.index, a.p_value), (b.index, b.p_value), "seed {seed}");
                assert!((a.statistic - b.statistic).abs() <= 1e-9 * b.statistic.abs());
            }
        }
    }

    #[test]
    fn other_exponents_keep_the_pairwise_sums() {
        let x = [1.0, 4.0, 2.0, 8.0];
        let (left, right) = row_sums(&x, 0.5);
        assert_eq!(left[1], 3f64.sqrt());
        assert_eq!(right[2], 6f64.sqrt());
    }

    #[test]
    fn a_clean_step_is_found_where_it_is() {
        let mut x = vec![100.0; 10];
        x.extend([80.0; 10]);
        x.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += (i % 3) as f64 * 0.5);
        let found = change_points(&x, &EDivisiveParams::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 10);
        assert!(found[0].p_value <= 0.01);
    }

    #[test]
    fn a_series_too_short_to_split_has_no_change_point() {
        let p = EDivisiveParams::default();
        assert!(change_points(&[], &p).is_empty());
        assert!(change_points(&[1.0, 2.0, 100.0, 100.0, 100.0], &p).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_answer() {
        let mut rng = SplitMix::new(7);
        let x = history(&mut rng, 12, -0.1, 1);
        let p = EDivisiveParams::default();
        assert_eq!(change_points(&x, &p), change_points(&x, &p));
    }

    #[test]
    fn aa_histories_have_a_false_change_point_in_at_most_5_percent() {
        let mut rng = SplitMix::new(2023);
        let p = EDivisiveParams::default();
        let false_ones = (0..200)
            .filter(|_| !change_points(&history(&mut rng, 30, 0.0, 1), &p).is_empty())
            .count();
        eprintln!("A/A, 1 run a commit: {false_ones}/200 histories with a change point");
        assert!(false_ones <= 10, "{false_ones}/200");
    }

    #[test]
    fn a_10_percent_step_is_found_at_its_commit_in_90_percent_with_2_runs_a_commit() {
        let (found, oracle) = step_detection(2024, 2);
        eprintln!("10% step, 2 runs a commit: found at its commit ±1 in {found}/200 (least squares alone: {oracle}/200)");
        assert!(found >= 180, "{found}/200");
    }

    /// With one run a commit a 10% step is 2 sd of the noise, and no
    /// method places it within ±1 commit 90% of the time: the
    /// least-squares split (the maximum-likelihood location) manages about
    /// 84%, before any test of significance. This pins what E-Divisive
    /// reaches here (73% at p ≤ 0.02 over 1,000 histories) against that bound.
    #[test]
    fn a_10_percent_step_with_one_run_a_commit_is_found_in_70_percent() {
        let (found, oracle) = step_detection(2025, 1);
        eprintln!("10% step, 1 run a commit: found at its commit ±1 in {found}/200 (least squares alone: {oracle}/200)");
        assert!(oracle < 180, "the bound moved: {oracle}/200");
        assert!(found >= 140, "{found}/200");
    }
}
