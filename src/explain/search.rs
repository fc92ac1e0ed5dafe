//! Root-cause search: an aggregated cube of segments → the segments that explain a KPI's change.
//!
//! (header written at the end)

use std::collections::{BTreeMap, HashMap};

/// How the KPI is built from its additive components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A sum: the segment value is `num`.
    Additive,
    /// A ratio of sums, `num / den` (e.g. conversion = orders / sessions).
    Ratio,
}

/// A member of a dimension; `None` is SQL NULL.
pub type Member = Option<String>;

/// One aggregated segment: the additive components of both periods.
#[derive(Debug, Clone)]
pub struct SegmentRow {
    /// One entry per dimension of [`Cube::dims`]: `None` = not constrained (aggregated over), `Some(member)` = this member.
    pub key: Vec<Option<Member>>,
    /// Additive: the value. Ratio: the numerator.  (0 = baseline, 1 = current period)
    pub num0: f64,
    pub num1: f64,
    /// Ratio: the denominator. Additive: 0 (ignored).
    pub den0: f64,
    pub den1: f64,
}

/// The aggregated table the engine hands to [`localize`].
#[derive(Debug, Clone)]
pub struct Cube {
    pub dims: Vec<String>,
    pub shape: Shape,
    /// The total (every key None) and every non-empty segment up to the query's depth.
    /// Order is arbitrary; a segment absent from a period has 0 there.
    pub rows: Vec<SegmentRow>,
}

/// Limits of the search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Maximum number of constrained dimensions in a returned segment (default 3).
    pub max_depth: usize,
    /// Maximum number of segments returned (default 10; the search returns fewer when fewer explain the change).
    pub max_causes: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            max_depth: 3,
            max_causes: 10,
        }
    }
}

/// One segment of the answer, with the numbers a report needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RootCause {
    /// (dimension index, member), sorted by dimension index.
    pub key: Vec<(usize, Member)>,
    pub num0: f64,
    pub num1: f64,
    pub den0: f64,
    pub den1: f64,
    /// Additive: num1 − num0. Ratio: the segment's ratio change r1 − r0 (None when a period has no denominator).
    pub change: Option<f64>,
    /// The segment's contribution to the KPI change. Additive: num1 − num0.
    /// Ratio: mix_effect + rate_effect with w = den_s/den_total, r = num_s/den_s, R0 = total baseline ratio:
    /// mix = (w1 − w0)(r0 − R0), rate = w1 (r1 − r0); a segment with a zero denominator in one period takes its ratio from the other period.
    pub contribution: f64,
    /// contribution / KPI change (None when the KPI change is 0).
    pub share_of_change: Option<f64>,
    /// Ratio only (None for additive).
    pub mix_effect: Option<f64>,
    pub rate_effect: Option<f64>,
}

/// The additive components of a segment (or of the total) in both periods.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub num0: f64,
    pub num1: f64,
    pub den0: f64,
    pub den1: f64,
}

/// A segment's share of the KPI change (see [`contribution`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// Additive: num1 − num0. Ratio: r1 − r0 (None when a period has no denominator).
    pub change: Option<f64>,
    /// Additive: num1 − num0. Ratio: mix_effect + rate_effect.
    pub contribution: f64,
    /// Ratio only.
    pub mix_effect: Option<f64>,
    /// Ratio only.
    pub rate_effect: Option<f64>,
}

/// The KPI's change between the periods: Additive num1 − num0, Ratio R1 − R0
/// (None when a period's denominator is 0 or a value is not finite).
pub fn kpi_change(shape: Shape, total: &Sums) -> Option<f64> {
    let change = match shape {
        Shape::Additive => total.num1 - total.num0,
        Shape::Ratio => divide(total.num1, total.den1)? - divide(total.num0, total.den0)?,
    };
    change.is_finite().then_some(change)
}

/// A segment's contribution to the KPI change, by the rules of SPEC §7
/// "Breakdowns": contributions of the members of one dimension sum exactly to
/// the KPI change. Ratio: with w = den_s / den_total, r = num_s / den_s and
/// R0 the total's baseline ratio, mix = (w1 − w0)(r0 − R0) and
/// rate = w1 (r1 − r0); a segment without denominator in one period takes its
/// ratio from the other period. Non-finite results become 0 / None.
pub fn contribution(shape: Shape, segment: &Sums, total: &Sums) -> Contribution {
    match shape {
        Shape::Additive => {
            let change = finite_or_zero(segment.num1 - segment.num0);
            Contribution {
                change: Some(change),
                contribution: change,
                mix_effect: None,
                rate_effect: None,
            }
        }
        Shape::Ratio => {
            let r0 = divide(segment.num0, segment.den0);
            let r1 = divide(segment.num1, segment.den1);
            let change = match (r0, r1) {
                (Some(r0), Some(r1)) => Some(r1 - r0).filter(|c| c.is_finite()),
                _ => None,
            };
            // A period without denominator borrows the other period's ratio
            // (no rate effect); without either, the segment weighs nothing.
            let (r0, r1) = match (r0, r1) {
                (Some(r0), Some(r1)) => (r0, r1),
                (Some(r), None) | (None, Some(r)) => (r, r),
                (None, None) => (0.0, 0.0),
            };
            let kpi0 = divide(total.num0, total.den0).unwrap_or(0.0);
            let w0 = divide(segment.den0, total.den0).unwrap_or(0.0);
            let w1 = divide(segment.den1, total.den1).unwrap_or(0.0);
            let mix = finite_or_zero((w1 - w0) * (r0 - kpi0));
            let rate = finite_or_zero(w1 * (r1 - r0));
            Contribution {
                change,
                contribution: finite_or_zero(mix + rate),
                mix_effect: Some(mix),
                rate_effect: Some(rate),
            }
        }
    }
}

/// Finds the smallest set of segments that together explain the KPI's change,
/// most important first. Never panics, whatever the input.
pub fn localize(cube: &Cube, options: &SearchOptions) -> Vec<RootCause> {
    localize_tuned(cube, options, &Tuning::default())
}

#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Tuning {
    pub z_min: f64,
    pub min_share: f64,
    pub min_rel: f64,
    pub fit_min: f64,
    pub spec_min: f64,
    pub trend_rounds: usize,
    pub trace: bool,
    pub refined_candidates: usize,
    pub trend_weight: f64,
    pub unexplained_weight: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            z_min: 6.0,
            min_share: 0.01,
            min_rel: 0.1,
            fit_min: 0.7,
            spec_min: 0.3,
            trend_rounds: 3,
            trace: false,
            refined_candidates: 2,
            trend_weight: 5.0,
            unexplained_weight: 10.0,
        }
    }
}

#[doc(hidden)]
pub fn localize_tuned(cube: &Cube, options: &SearchOptions, tuning: &Tuning) -> Vec<RootCause> {
    localize_evidence(cube, options, tuning)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

#[doc(hidden)]
pub fn localize_evidence(
    cube: &Cube,
    options: &SearchOptions,
    tuning: &Tuning,
) -> Vec<(RootCause, [f64; 5])> {
    if options.max_causes == 0 || options.max_depth == 0 {
        return Vec::new();
    }
    let Some(lattice) = Lattice::build(cube, options.max_depth) else {
        return Vec::new();
    };
    let mut found = lattice.search(options.max_causes, tuning);
    found.sort_by(|x, y| y.explained.abs().total_cmp(&x.explained.abs()));
    let total = lattice.sums[lattice.total];
    let kpi = kpi_change(cube.shape, &total);
    found
        .iter()
        .map(|f| {
            (
                lattice.root_cause(f.row, cube.shape, &total, kpi),
                f.evidence,
            )
        })
        .collect()
}

/// Unions of more constrained dimensions than this are not enumerated.
const MAX_ENUMERATED_DIMS: usize = 16;

/// The noise is read at this quantile of the cell-vs-parent deviations: low,
/// because before they are found, causes inflate the upper part.
const NOISE_QUANTILE: f64 = 0.25;

/// The same quantile of |N(0, 1)|.
const NOISE_QUANTILE_OF_NORMAL: f64 = 0.318_6;

/// Cuboids up to this depth propose trend candidates.
const CANDIDATE_DEPTH: usize = 2;

/// Trend candidates closer than this (in log) are searched once.
const CANDIDATE_TOLERANCE: f64 = 0.02;

/// Relative change of the trend estimate that makes the search replay its causes.
const TREND_TOLERANCE: f64 = 1e-3;

/// A cause folded into the predictions: its row, its deviation at that
/// moment, and the predictions just before (to recompute overlaps).
struct Accepted {
    row: usize,
    excess: f64,
    before: Vec<f64>,
}

/// How much of a cause lies in a segment (see [`Lattice::overlap`]).
#[derive(Debug, Clone, Copy)]
struct Overlap {
    estimate: f64,
    upper: f64,
}

impl Overlap {
    fn exact(value: f64) -> Self {
        Overlap {
            estimate: value,
            upper: value,
        }
    }
}

/// The noise of the finest cells, relative to their size.
#[derive(Debug, Clone, Copy)]
struct Noise {
    relative: f64,
}

impl Noise {
    /// The standard deviation of a segment's deviation, from its spread
    /// factor (see [`Lattice::spread`]) and its prediction.
    fn sd(&self, spread: f64, pred: f64) -> f64 {
        self.relative * spread * pred.abs()
    }
}

/// Reusable key buffers, so that probing the index does not allocate.
struct KeyScratch {
    union: Vec<u32>,
    common: Vec<u32>,
    probe: Vec<u32>,
}

impl KeyScratch {
    fn new(n_dims: usize) -> Self {
        KeyScratch {
            union: vec![0; n_dims],
            common: vec![0; n_dims],
            probe: vec![0; n_dims],
        }
    }
}

/// A segment the search accepted, with the deviation it explained.
#[derive(Debug, Clone, Copy)]
struct Found {
    row: usize,
    explained: f64,
    evidence: [f64; 5],
}

/// The cube in a form the search can walk: interned keys, a key → row index,
/// the children of every row, and per row the value the search compares.
struct Lattice<'a> {
    n_dims: usize,
    /// Per row, per dimension: 0 = not constrained, m + 1 = `members[dim][m]`.
    keys: Vec<Vec<u32>>,
    depth: Vec<usize>,
    index: HashMap<Vec<u32>, usize>,
    members: Vec<Vec<&'a Member>>,
    sums: Vec<Sums>,
    /// What the search explains: the value (additive) or the numerator (ratio) of the current period.
    actual: Vec<f64>,
    /// What `actual` would be without any change: the baseline value, or for
    /// a ratio the baseline rate applied to the current denominator.
    base: Vec<f64>,
    /// Ratio segments without a baseline denominator: no rate to compare, never a cause.
    rate_unknown: Vec<bool>,
    total: usize,
    /// The deepest level present (the finest cells the search sees).
    finest: usize,
    /// Per row: (refining dimension, child row), sorted by dimension.
    children: Vec<Vec<(usize, usize)>>,
    /// Per row: how much of the finest cells' relative noise survives in the
    /// row. Independent noise adds in variance, so a segment of n equal
    /// cells keeps 1/√n of it; heavy-tailed cells keep more. 1 for the finest cells.
    spread: Vec<f64>,
}

impl<'a> Lattice<'a> {
    fn build(cube: &'a Cube, max_depth: usize) -> Option<Self> {
        let n_dims = cube.dims.len();
        let mut member_ids: Vec<HashMap<&'a Member, u32>> = vec![HashMap::new(); n_dims];
        let mut members: Vec<Vec<&'a Member>> = vec![Vec::new(); n_dims];
        let mut keys = Vec::new();
        let mut sums = Vec::new();
        let mut index = HashMap::new();
        for row in &cube.rows {
            if row.key.len() != n_dims {
                continue;
            }
            let depth = row.key.iter().filter(|k| k.is_some()).count();
            if depth > max_depth {
                continue;
            }
            let mut key = Vec::with_capacity(n_dims);
            for ((constraint, ids), names) in row.key.iter().zip(&mut member_ids).zip(&mut members)
            {
                key.push(match constraint {
                    None => 0,
                    Some(member) => *ids.entry(member).or_insert_with(|| {
                        names.push(member);
                        u32::try_from(names.len()).unwrap_or(u32::MAX)
                    }),
                });
            }
            if index.contains_key(&key) {
                continue; // a duplicated row: the first one wins
            }
            index.insert(key.clone(), keys.len());
            keys.push(key);
            sums.push(Sums {
                num0: finite_or_zero(row.num0),
                num1: finite_or_zero(row.num1),
                den0: finite_or_zero(row.den0),
                den1: finite_or_zero(row.den1),
            });
        }
        let total_key = vec![0; n_dims];
        let total = match index.get(&total_key) {
            Some(&row) => row,
            None => {
                let sum = synthesized_total(&keys, &sums, n_dims)?;
                index.insert(total_key.clone(), keys.len());
                keys.push(total_key);
                sums.push(sum);
                keys.len() - 1
            }
        };
        let depth: Vec<usize> = keys
            .iter()
            .map(|k| k.iter().filter(|&&m| m != 0).count())
            .collect();
        let finest = depth.iter().copied().max().unwrap_or(0);
        if finest == 0 {
            return None;
        }
        let (actual, base, rate_unknown): (Vec<f64>, Vec<f64>, Vec<bool>) = match cube.shape {
            Shape::Additive => (
                sums.iter().map(|s| s.num1).collect(),
                sums.iter().map(|s| s.num0).collect(),
                vec![false; sums.len()],
            ),
            Shape::Ratio => {
                let base = sums
                    .iter()
                    .map(|s| {
                        if s.den0 > 0.0 && s.den1 > 0.0 {
                            finite_or_zero(s.num0 / s.den0 * s.den1)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let unknown = sums
                    .iter()
                    .map(|s| !(s.den0 > 0.0) && s.den1 > 0.0)
                    .collect();
                (sums.iter().map(|s| s.num1).collect(), base, unknown)
            }
        };
        let mut children = vec![Vec::new(); keys.len()];
        let mut parent_key = vec![0; n_dims];
        for (row, key) in keys.iter().enumerate() {
            for dim in 0..n_dims {
                if key[dim] == 0 {
                    continue;
                }
                parent_key.copy_from_slice(key);
                parent_key[dim] = 0;
                if let Some(&parent) = index.get(&parent_key) {
                    children[parent].push((dim, row));
                }
            }
        }
        for list in &mut children {
            list.sort_unstable();
        }
        let spread = noise_spread(&base, &depth, &children, finest);
        Some(Lattice {
            n_dims,
            keys,
            depth,
            index,
            members,
            sums,
            actual,
            base,
            rate_unknown,
            total,
            finest,
            children,
            spread,
        })
    }

    fn rows(&self) -> usize {
        self.keys.len()
    }

    /// The whole search: greedy forward selection of causes, re-estimating
    /// the trend without the causes found so far after every step, then a
    /// final check that every cause still stands under the final trend.
    fn search(&self, max_causes: usize, tuning: &Tuning) -> Vec<Found> {
        let reference = self.deviation_scale(&self.prior(self.aggregate_trend()));
        let cost = |found: &[Found], unexplained: f64, trend: f64| {
            found.len() as f64
                + tuning.unexplained_weight * share(unexplained, reference)
                + tuning.trend_weight * trend.ln().abs()
        };
        // A quick search from every candidate trend (one round), then the
        // full search from the most promising ones.
        let mut quick: Vec<(f64, f64)> = self
            .trend_candidates()
            .into_iter()
            .map(|trend| {
                let (found, unexplained, _) = self.search_from(trend, max_causes, 1, tuning);
                let c = cost(&found, unexplained, trend);
                if tuning.trace {
                    eprintln!("quick trend {trend:.4}: {} causes, unexplained {unexplained:.1} / {reference:.1}, cost {c:.3}", found.len());
                }
                (c, trend)
            })
            .collect();
        quick.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut best: Option<(f64, Vec<Found>)> = None;
        for &(_, start) in quick.iter().take(tuning.refined_candidates) {
            let (found, unexplained, trend) =
                self.search_from(start, max_causes, tuning.trend_rounds, tuning);
            let c = cost(&found, unexplained, trend);
            if tuning.trace {
                eprintln!(
                    "refined trend {start:.4} -> {trend:.4}: {} causes, cost {c:.3}",
                    found.len()
                );
            }
            if best.as_ref().is_none_or(|(b, _)| c < *b) {
                best = Some((c, found));
            }
        }
        best.map(|(_, found)| found).unwrap_or_default()
    }

    /// Searches with the trend starting at `trend`: a greedy search at a
    /// fixed trend, then the trend re-estimated outside the causes found and
    /// the greedy search again, until the trend settles. Returns the causes,
    /// the deviation left unexplained and the final trend.
    fn search_from(
        &self,
        mut trend: f64,
        max_causes: usize,
        rounds: usize,
        tuning: &Tuning,
    ) -> (Vec<Found>, f64, f64) {
        let mut rows = Vec::new();
        for round in 0..rounds.max(1) {
            rows = self.greedy(trend, max_causes, tuning);
            if round + 1 == rounds.max(1) {
                break;
            }
            let (accepted, pred) = self.replay(trend, &rows, None);
            let refit = self.refit_trend(trend, &pred, &accepted);
            if (refit - trend).abs() <= TREND_TOLERANCE * trend.abs() {
                break;
            }
            trend = refit;
        }
        let (accepted, pred) = self.replay(trend, &rows, None);
        let noise = self.noise(&pred);
        let scale = self.deviation_scale(&self.prior(trend));
        if rounds > 1 {
            rows = self.prune(trend, rows, &noise, scale, tuning);
        }
        let (accepted, pred) = if accepted.is_empty() {
            (accepted, pred)
        } else {
            self.replay(trend, &rows, Some((&noise, scale, tuning)))
        };
        let mut scratch = KeyScratch::new(self.n_dims);
        let found = accepted
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let certain = self.certain_residual(a.row, &a.before, &accepted[..i], &mut scratch);
                Found {
                    row: a.row,
                    explained: a.excess,
                    evidence: [
                        certain.abs() / noise.sd(self.spread[a.row], a.before[a.row]),
                        certain / a.before[a.row],
                        self.ripple_fit(a.row, a.excess, &a.before, &noise),
                        self.specificity(a.row, certain, &a.before, &mut scratch),
                        certain.abs() / scale,
                    ],
                }
            })
            .collect();
        (found, self.deviation_scale(&pred), trend)
    }

    /// Greedy forward selection at a fixed trend: accept the best candidate,
    /// fold its effect into the predictions, repeat. Returns the causes' rows.
    fn greedy(&self, trend: f64, max_causes: usize, tuning: &Tuning) -> Vec<usize> {
        let mut pred = self.prior(trend);
        let scale = self.deviation_scale(&pred);
        let mut accepted: Vec<Accepted> = Vec::new();
        while accepted.len() < max_causes {
            let noise = self.noise(&pred);
            let Some(best) = self.best_candidate(&pred, &noise, scale, &accepted, tuning) else {
                break;
            };
            if tuning.trace {
                let excess = self.actual[best] - pred[best];
                let mut scratch = KeyScratch::new(self.n_dims);
                let certain = self.certain_residual(best, &pred, &accepted, &mut scratch);
                eprintln!(
                    "trend {trend:.4} noise {:.4} scale {scale:.1}: accept {:?} actual {:.1} pred {:.1} certain {:.1} z {:.2} rel {:.3} fit {:.3} spec {:.3}",
                    noise.relative,
                    self.keys[best],
                    self.actual[best],
                    pred[best],
                    certain,
                    certain.abs() / noise.sd(self.spread[best], pred[best]),
                    certain / pred[best],
                    self.ripple_fit(best, excess, &pred, &noise),
                    self.specificity(best, certain, &pred, &mut scratch),
                );
            }
            let cause = Accepted {
                row: best,
                excess: self.actual[best] - pred[best],
                before: pred.clone(),
            };
            self.apply(&cause, &mut pred);
            accepted.push(cause);
        }
        accepted.iter().map(|a| a.row).collect()
    }

    /// Backward elimination: a cause must stay significant given all the
    /// others, not only the ones accepted before it (a coarse segment taken
    /// early can be made redundant by finer causes found later). Drops the
    /// weakest redundant cause and repeats.
    fn prune(
        &self,
        trend: f64,
        mut rows: Vec<usize>,
        noise: &Noise,
        scale: f64,
        tuning: &Tuning,
    ) -> Vec<usize> {
        let mut scratch = KeyScratch::new(self.n_dims);
        while rows.len() > 1 {
            let mut weakest: Option<(usize, f64)> = None;
            for (i, &row) in rows.iter().enumerate() {
                let mut others = rows.clone();
                others.remove(i);
                let (accepted, pred) = self.replay(trend, &others, None);
                let certain = self.certain_residual(row, &pred, &accepted, &mut scratch);
                if self.significant(certain, row, pred[row], noise, scale, tuning) {
                    continue;
                }
                let z =
                    certain.abs() / noise.sd(self.spread[row], pred[row]).max(f64::MIN_POSITIVE);
                if weakest.is_none_or(|(_, w)| z < w) {
                    weakest = Some((i, z));
                }
            }
            let Some((i, _)) = weakest else {
                break;
            };
            if tuning.trace {
                eprintln!("prune {:?}", self.keys[rows[i]]);
            }
            rows.remove(i);
        }
        rows
    }

    /// The predictions without any cause: the baseline scaled by the trend.
    fn prior(&self, trend: f64) -> Vec<f64> {
        (0..self.rows())
            .map(|r| {
                if self.rate_unknown[r] {
                    self.actual[r]
                } else {
                    trend * self.base[r]
                }
            })
            .collect()
    }

    /// Folds the causes `rows` into the predictions, in order. With `verify`,
    /// a cause whose own deviation is no longer significant is left out.
    fn replay(
        &self,
        trend: f64,
        rows: &[usize],
        verify: Option<(&Noise, f64, &Tuning)>,
    ) -> (Vec<Accepted>, Vec<f64>) {
        let mut pred = self.prior(trend);
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut scratch = KeyScratch::new(self.n_dims);
        for &row in rows {
            if let Some((noise, scale, tuning)) = verify {
                let certain = self.certain_residual(row, &pred, &accepted, &mut scratch);
                let keep = self.significant(certain, row, pred[row], noise, scale, tuning);
                if tuning.trace {
                    eprintln!(
                        "verify {:?} depth {} certain {:.1} z {:.2} rel {:.3} share {:.4} fit {:.3} spec {:.3} keep {keep}",
                        self.keys[row],
                        self.depth[row],
                        certain,
                        certain.abs() / noise.sd(self.spread[row], pred[row]),
                        certain / pred[row],
                        certain.abs() / scale,
                        self.ripple_fit(row, self.actual[row] - pred[row], &pred, noise),
                        self.specificity(row, certain, &pred, &mut scratch),
                    );
                }
                if !keep {
                    continue;
                }
            }
            let cause = Accepted {
                row,
                excess: self.actual[row] - pred[row],
                before: pred.clone(),
            };
            self.apply(&cause, &mut pred);
            accepted.push(cause);
        }
        (accepted, pred)
    }

    /// Is a deviation large enough to be a cause: against the whole change,
    /// against the segment's own size, and against the noise?
    fn significant(
        &self,
        deviation: f64,
        row: usize,
        pred: f64,
        noise: &Noise,
        scale: f64,
        tuning: &Tuning,
    ) -> bool {
        let size = deviation.abs();
        if !(size >= tuning.min_share * scale) {
            return false;
        }
        if pred > 0.0 && size < tuning.min_rel * pred {
            return false;
        }
        size >= tuning.z_min * noise.sd(self.spread[row], pred)
    }

    /// current / baseline of the total.
    fn aggregate_trend(&self) -> f64 {
        divide(self.actual[self.total], self.base[self.total])
            .filter(|t| *t > 0.0)
            .unwrap_or(1.0)
    }

    /// Starting points for the trend. A dimension that holds a cause splits
    /// into unaffected members, which agree on the trend, and the cause's
    /// members; in every other dimension each member carries a slice of the
    /// cause. Which dimension holds the cause is not known beforehand, so
    /// every dimension proposes its centre (the middle of its tightest half
    /// and its weighted median), and the search keeps the trend that needs
    /// the fewest causes.
    fn trend_candidates(&self) -> Vec<f64> {
        let mut per_cuboid: BTreeMap<Vec<usize>, Vec<(f64, f64)>> = BTreeMap::new();
        let mut finest: Vec<(f64, f64)> = Vec::new();
        for r in 0..self.rows() {
            if self.rate_unknown[r] || !(self.base[r] > 0.0 && self.actual[r] > 0.0) {
                continue;
            }
            let item = ((self.actual[r] / self.base[r]).ln(), self.base[r]);
            if self.depth[r] == self.finest {
                finest.push(item);
            }
            if (1..=CANDIDATE_DEPTH).contains(&self.depth[r]) {
                let dims = self.keys[r]
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m != 0)
                    .map(|(d, _)| d)
                    .collect();
                per_cuboid.entry(dims).or_default().push(item);
            }
        }
        let mut candidates = vec![self.aggregate_trend().ln()];
        candidates.extend(weighted_median(&mut finest));
        for cells in per_cuboid.values_mut() {
            candidates.extend(shortest_half(cells).map(|(centre, _)| centre));
        }
        candidates.retain(|c| c.is_finite());
        candidates.sort_by(f64::total_cmp);
        candidates.dedup_by(|x, y| (*x - *y).abs() < CANDIDATE_TOLERANCE);
        candidates.into_iter().map(f64::exp).collect()
    }

    /// The trend re-estimated on the finest cells outside the found causes,
    /// against the model's predictions (which already include the causes'
    /// diluted effect on cells of other cuboids).
    fn refit_trend(&self, trend: f64, pred: &[f64], accepted: &[Accepted]) -> f64 {
        let mut ratios: Vec<(f64, f64)> = (0..self.rows())
            .filter(|&r| self.depth[r] == self.finest && !self.rate_unknown[r] && pred[r] > 0.0)
            .filter(|&r| !accepted.iter().any(|a| self.refines(r, a.row)))
            .map(|r| (self.actual[r] / pred[r], pred[r]))
            .collect();
        match weighted_median(&mut ratios) {
            Some(m) if (trend * m).is_finite() && trend * m > 0.0 => trend * m,
            _ => trend,
        }
    }

    /// Does segment `row` lie inside segment `of` (constrain all of its dims the same way)?
    fn refines(&self, row: usize, of: usize) -> bool {
        self.keys[row]
            .iter()
            .zip(&self.keys[of])
            .all(|(&k, &o)| o == 0 || k == o)
    }

    /// The size of the change to explain, up and down counted apart: the
    /// largest sum of absolute deviations over the members of one dimension.
    fn deviation_scale(&self, pred: &[f64]) -> f64 {
        let mut per_dim = vec![0.0; self.n_dims];
        for r in 0..self.rows() {
            if self.depth[r] != 1 {
                continue;
            }
            if let Some(dim) = self.keys[r].iter().position(|&m| m != 0) {
                per_dim[dim] += (self.actual[r] - pred[r]).abs();
            }
        }
        let total = (self.actual[self.total] - pred[self.total]).abs();
        per_dim.into_iter().fold(total, f64::max)
    }

    /// The relative noise of the finest cells, measured against their
    /// parents: |a_c/p_c − a_p/p_p| over every finest cell c and parent p,
    /// median scaled to a standard deviation. Comparing a cell with its
    /// parent cancels whatever moved the parent as a whole (a wrong trend, a
    /// cause in another dimension), so the estimate stays clean before the
    /// causes are found.
    fn noise(&self, pred: &[f64]) -> Noise {
        let ratio = |r: usize| {
            divide(self.actual[r], pred[r]).filter(|_| pred[r] > 0.0 && !self.rate_unknown[r])
        };
        let mut deviations = Vec::new();
        for (parent, list) in self.children.iter().enumerate() {
            let Some(parent_ratio) = ratio(parent) else {
                continue;
            };
            for &(_, child) in list {
                if self.depth[child] != self.finest {
                    continue;
                }
                if let Some(child_ratio) = ratio(child) {
                    deviations.push((child_ratio - parent_ratio).abs());
                }
            }
        }
        if deviations.is_empty() {
            return Noise { relative: 0.0 };
        }
        let q = ((deviations.len() as f64 * NOISE_QUANTILE) as usize).min(deviations.len() - 1);
        let (_, quantile, _) = deviations.select_nth_unstable_by(q, f64::total_cmp);
        Noise {
            relative: *quantile / NOISE_QUANTILE_OF_NORMAL,
        }
    }

    fn best_candidate(
        &self,
        pred: &[f64],
        noise: &Noise,
        scale: f64,
        accepted: &[Accepted],
        tuning: &Tuning,
    ) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        let mut scratch = KeyScratch::new(self.n_dims);
        for r in 0..self.rows() {
            if self.depth[r] == 0 || self.rate_unknown[r] || accepted.iter().any(|a| a.row == r) {
                continue;
            }
            let res = self.actual[r] - pred[r];
            if !(res.abs() >= tuning.min_share * scale) {
                continue;
            }
            let certain = self.certain_residual(r, pred, accepted, &mut scratch);
            if !self.significant(certain, r, pred[r], noise, scale, tuning) {
                continue;
            }
            let fit = self.ripple_fit(r, res, pred, noise);
            if !(fit >= tuning.fit_min) {
                continue;
            }
            let specificity = self.specificity(r, certain, pred, &mut scratch);
            if !(specificity >= tuning.spec_min) {
                continue;
            }
            let gain = certain.abs() * fit * specificity;
            let better = match best {
                None => true,
                Some((b, g)) => gain > g || (gain == g && self.depth[r] < self.depth[b]),
            };
            if better {
                best = Some((r, gain));
            }
        }
        best.map(|(r, _)| r)
    }

    /// Is `row` more than a proportional slice of its parents? For each
    /// parent (drop one constraint), compare the relative deviation of the
    /// rest of the parent with the row's own: a rest that moved as much in
    /// the same direction means the split does not localize the change.
    /// 1 = the rest did not move; 0 = it moved as much. Parents of depth 0
    /// (the total) do not count: the trend absorbs its change.
    fn specificity(
        &self,
        row: usize,
        deviation: f64,
        pred: &[f64],
        scratch: &mut KeyScratch,
    ) -> f64 {
        let own = match divide(deviation, pred[row]) {
            Some(own) if own != 0.0 => own,
            _ => return 1.0,
        };
        let mut worst: f64 = 1.0;
        if self.depth[row] < 2 {
            return worst;
        }
        for dim in 0..self.n_dims {
            if self.keys[row][dim] == 0 {
                continue;
            }
            scratch.probe.copy_from_slice(&self.keys[row]);
            scratch.probe[dim] = 0;
            let Some(&parent) = self.index.get(&scratch.probe) else {
                continue;
            };
            let rest_actual = self.actual[parent] - self.actual[row];
            let rest_pred = pred[parent] - pred[row];
            let Some(rest) = divide(rest_actual - rest_pred, rest_pred) else {
                continue;
            };
            worst = worst.min(1.0 - (rest / own).clamp(0.0, 1.0));
        }
        worst
    }

    /// How well "segment `row` moved as a whole" explains its children:
    /// 1 − (error of the uniform ripple beyond noise) / |deviation|, the worst
    /// over the refining dimensions. 1 when the cube has no children.
    fn ripple_fit(&self, row: usize, res: f64, pred: &[f64], noise: &Noise) -> f64 {
        let size = res.abs();
        let mut worst: f64 = 1.0;
        let list = &self.children[row];
        let mut start = 0;
        while start < list.len() {
            let dim = list[start].0;
            let end = list[start..]
                .iter()
                .position(|&(d, _)| d != dim)
                .map_or(list.len(), |p| start + p);
            let mut error = 0.0;
            let mut expected_noise = 0.0;
            for &(_, child) in &list[start..end] {
                let share = share(pred[child], pred[row]);
                error += (self.actual[child] - pred[child] - res * share).abs();
                expected_noise += noise.sd(self.spread[child], pred[child]);
            }
            // E|N(0, σ²)| = σ·√(2/π)
            let excess = (error - expected_noise * 0.797_884_6).max(0.0);
            worst = worst.min(1.0 - excess / size);
            start = end;
        }
        worst
    }

    /// Folds the accepted cause into the predictions: the cause's segment now
    /// predicts its actual value, its sub-segments move by the same factor
    /// (ripple), and every other overlapping segment by the cause's deviation
    /// times the part of the cause it contains.
    fn apply(&self, cause: &Accepted, pred: &mut [f64]) {
        let whole = cause.before[cause.row];
        let mut scratch = KeyScratch::new(self.n_dims);
        for (r, p) in pred.iter_mut().enumerate() {
            if let Some(overlap) = self.overlap(r, cause, &mut scratch, false) {
                *p += cause.excess * share(overlap.estimate, whole);
            }
        }
    }

    /// The part of `cause` (in predicted current value, before the cause was
    /// applied) that lies in segment `row`; None when they are disjoint.
    /// When the intersection is deeper than the cube, the estimate assumes
    /// that within the constraints both share the cause is spread like the
    /// rest, and (with `bound`) `upper` is the smallest in-cube segment that
    /// contains the intersection: the overlap can be anything in [0, upper].
    fn overlap(
        &self,
        row: usize,
        cause: &Accepted,
        scratch: &mut KeyScratch,
        bound: bool,
    ) -> Option<Overlap> {
        let key = &self.keys[row];
        let cause_key = &self.keys[cause.row];
        let before = &cause.before;
        let mut inside = true;
        let mut union_depth = 0;
        for (d, (&k, &c)) in key.iter().zip(cause_key).enumerate() {
            if k != 0 && c != 0 && k != c {
                return None;
            }
            scratch.union[d] = if k != 0 { k } else { c };
            scratch.common[d] = if c != 0 { k } else { 0 };
            inside &= c == 0 || k != 0;
            union_depth += usize::from(k != 0 || c != 0);
        }
        if inside {
            return Some(Overlap::exact(before[row]));
        }
        if union_depth <= self.finest {
            // In the cube, or empty (the cube lists every non-empty segment).
            let value = self.index.get(&scratch.union).map_or(0.0, |&u| before[u]);
            return Some(Overlap::exact(value));
        }
        let common = self
            .index
            .get(&scratch.common)
            .map_or(before[self.total], |&x| before[x]);
        let estimate = before[cause.row] * share(before[row], common);
        let upper = if bound {
            self.smallest_container(scratch, before)
                .min(before[row])
                .min(before[cause.row])
                .max(0.0)
        } else {
            estimate
        };
        Some(Overlap { estimate, upper })
    }

    /// The smallest predicted value among the in-cube segments (of the finest
    /// depth) that contain the segment `scratch.union`; 0 when one is absent
    /// from the cube (then the union is empty).
    fn smallest_container(&self, scratch: &mut KeyScratch, before: &[f64]) -> f64 {
        let constrained: Vec<usize> = (0..self.n_dims)
            .filter(|&d| scratch.union[d] != 0)
            .collect();
        if constrained.len() > MAX_ENUMERATED_DIMS {
            return f64::INFINITY;
        }
        let mut smallest = f64::INFINITY;
        for mask in 0u32..(1 << constrained.len()) {
            if mask.count_ones() as usize != self.finest {
                continue;
            }
            scratch.probe.fill(0);
            for (bit, &d) in constrained.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    scratch.probe[d] = scratch.union[d];
                }
            }
            let value = self.index.get(&scratch.probe).map_or(0.0, |&v| before[v]);
            smallest = smallest.min(value);
        }
        smallest
    }

    /// The deviation of `row` that no accepted cause can explain: the central
    /// residual widened by the uncertainty of every overlap deeper than the
    /// cube, then the point of that interval closest to 0.
    fn certain_residual(
        &self,
        row: usize,
        pred: &[f64],
        accepted: &[Accepted],
        scratch: &mut KeyScratch,
    ) -> f64 {
        let residual = self.actual[row] - pred[row];
        let (mut low, mut high) = (residual, residual);
        for cause in accepted {
            let Some(overlap) = self.overlap(row, cause, scratch, true) else {
                continue;
            };
            if overlap.upper == overlap.estimate {
                continue;
            }
            let rate = divide(cause.excess, cause.before[cause.row]).unwrap_or(0.0);
            // residual(x) = residual + rate · (estimate − x) for x in [0, upper]
            let a = rate * overlap.estimate;
            let b = rate * (overlap.estimate - overlap.upper);
            low += a.min(b);
            high += a.max(b);
        }
        if low > 0.0 {
            low
        } else if high < 0.0 {
            high
        } else {
            0.0
        }
    }

    fn root_cause(&self, row: usize, shape: Shape, total: &Sums, kpi: Option<f64>) -> RootCause {
        let key = self.keys[row]
            .iter()
            .enumerate()
            .filter_map(|(dim, &id)| {
                let member = self.members.get(dim)?.get((id as usize).checked_sub(1)?)?;
                Some((dim, (*member).clone()))
            })
            .collect();
        let sums = self.sums[row];
        let c = contribution(shape, &sums, total);
        RootCause {
            key,
            num0: sums.num0,
            num1: sums.num1,
            den0: sums.den0,
            den1: sums.den1,
            change: c.change,
            contribution: c.contribution,
            share_of_change: kpi
                .filter(|k| *k != 0.0)
                .map(|k| c.contribution / k)
                .filter(|s| s.is_finite()),
            mix_effect: c.mix_effect,
            rate_effect: c.rate_effect,
        }
    }
}

/// Per row, the relative noise left after aggregating independent noise of
/// the finest cells: √(Σ b_c²) / b over the finest cells under the row,
/// computed level by level (the mean over the refining dimensions).
fn noise_spread(
    base: &[f64],
    depth: &[usize],
    children: &[Vec<(usize, usize)>],
    finest: usize,
) -> Vec<f64> {
    // Root of the summed squared sizes of the finest cells under each row.
    let mut root_square = vec![0.0; base.len()];
    let mut order: Vec<usize> = (0..base.len()).collect();
    order.sort_by_key(|&r| std::cmp::Reverse(depth[r]));
    for r in order {
        let list = &children[r];
        if depth[r] >= finest || list.is_empty() {
            root_square[r] = base[r].abs();
            continue;
        }
        let mut dims = 0usize;
        let mut sum = 0.0;
        let mut previous = None;
        for &(dim, child) in list {
            if previous != Some(dim) {
                dims += 1;
                previous = Some(dim);
            }
            sum += root_square[child] * root_square[child];
        }
        root_square[r] = (sum / dims.max(1) as f64).sqrt();
    }
    root_square
        .iter()
        .zip(base)
        .map(|(&root, &b)| {
            if b.abs() > 0.0 {
                (root / b.abs()).min(1.0)
            } else {
                1.0
            }
        })
        .collect()
}

/// The total when the cube lacks it: the sum of the depth-1 rows of the
/// dimension that carries the most.
fn synthesized_total(keys: &[Vec<u32>], sums: &[Sums], n_dims: usize) -> Option<Sums> {
    let mut per_dim = vec![Sums::default(); n_dims];
    let mut seen = vec![false; n_dims];
    for (key, s) in keys.iter().zip(sums) {
        let mut constrained = key.iter().enumerate().filter(|(_, m)| **m != 0);
        if let (Some((dim, _)), None) = (constrained.next(), constrained.next()) {
            let t = &mut per_dim[dim];
            t.num0 += s.num0;
            t.num1 += s.num1;
            t.den0 += s.den0;
            t.den1 += s.den1;
            seen[dim] = true;
        }
    }
    let weight = |s: &Sums| s.num0.abs() + s.num1.abs() + s.den0.abs() + s.den1.abs();
    per_dim
        .into_iter()
        .zip(seen)
        .filter(|(_, seen)| *seen)
        .map(|(s, _)| s)
        .max_by(|x, y| weight(x).total_cmp(&weight(y)))
}

/// `part / whole` clamped to [0, 1]; 0 when `whole` is not positive.
fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part > 0.0 {
        (part / whole).min(1.0)
    } else {
        0.0
    }
}

/// `num / den`, None when `den` is 0 (as SQL division in kpic) or the result is not finite.
fn divide(num: f64, den: f64) -> Option<f64> {
    if den == 0.0 {
        return None;
    }
    Some(num / den).filter(|q| q.is_finite())
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// The shortest interval of values holding at least half of the weight and
/// at least two items: (weighted median inside it, its width). None with
/// fewer than three usable items.
fn shortest_half(items: &mut [(f64, f64)]) -> Option<(f64, f64)> {
    items.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let usable: Vec<(f64, f64)> = items
        .iter()
        .copied()
        .filter(|(v, w)| v.is_finite() && w.is_finite() && *w > 0.0)
        .collect();
    if usable.len() < 3 {
        return None;
    }
    let total: f64 = usable.iter().map(|(_, w)| w).sum();
    let mut best: Option<(usize, usize, f64)> = None;
    let mut end = 0;
    let mut weight = 0.0;
    for start in 0..usable.len() {
        if end < start {
            end = start;
            weight = 0.0;
        }
        while end < usable.len() && (weight < total / 2.0 || end < start + 2) {
            weight += usable[end].1;
            end += 1;
        }
        if weight < total / 2.0 || end < start + 2 {
            break;
        }
        let width = usable[end - 1].0 - usable[start].0;
        if best.is_none_or(|(_, _, w)| width < w) {
            best = Some((start, end, width));
        }
        weight -= usable[start].1;
    }
    let (start, end, width) = best?;
    let mut inside = usable.get(start..end)?.to_vec();
    weighted_median(&mut inside).map(|centre| (centre, width))
}

/// The weighted median of (value, weight) pairs; None without positive weight.
fn weighted_median(items: &mut [(f64, f64)]) -> Option<f64> {
    items.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let total: f64 = items
        .iter()
        .filter(|(v, w)| v.is_finite() && w.is_finite() && *w > 0.0)
        .map(|(_, w)| w)
        .sum();
    if !(total > 0.0) {
        return None;
    }
    let mut cumulative = 0.0;
    for &(value, weight) in items.iter() {
        if !(value.is_finite() && weight.is_finite() && weight > 0.0) {
            continue;
        }
        cumulative += weight;
        if cumulative >= total / 2.0 {
            return Some(value);
        }
    }
    None
}
