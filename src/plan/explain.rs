//! Segment plan for `kpic explain`: which additive components of a KPI to
//! aggregate per segment (conjunction of breakdown members), over which
//! scans, grouped by which dimensions (SPEC §6).
//!
//! A rewrite of the KPI's planned [`BreakdownPlan`]: an additive KPI's
//! components are the leaves of its metric with their signs (`revenue −
//! refunds`: +revenue, −refunds); a ratio KPI's are its numerator and
//! denominator. Averaged leaf ratios never appear: the search rebuilds
//! every segment's value from summed components.
//!
//! In: a [`Plan`] holding the KPI (planned with its breakdowns). Out: a
//! [`SegmentPlan`], or the reason the KPI cannot be localized.

use super::breakdowns::signed_leaves;
use super::{AggColumn, BreakdownShape, Formula, MemberDim, Plan};

/// How a segment's value follows from the components.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentShape {
    /// value = Σ sign_i × component_i
    Additive { signs: Vec<f64> },
    /// value = component 0 / component 1
    Ratio,
}

/// The components one scan provides.
#[derive(Debug, Clone)]
pub struct SegmentSource {
    /// The scan's plan name (`scan_<source>`).
    pub scan: String,
    /// The KPI's breakdown dimensions over this scan, in the plan's order.
    pub dims: Vec<MemberDim>,
    /// (component index, its aggregate column).
    pub components: Vec<(usize, AggColumn)>,
}

#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub kpi: String,
    /// Breakdown dimensions as the KPI writes them.
    pub dims: Vec<String>,
    pub shape: SegmentShape,
    /// Number of components.
    pub components: usize,
    pub sources: Vec<SegmentSource>,
}

/// The segment plan of `kpi`, or why it has none.
pub fn segment_plan(plan: &Plan, kpi: &str) -> Result<SegmentPlan, String> {
    let k = plan
        .kpis
        .iter()
        .find(|k| k.name == kpi)
        .ok_or_else(|| format!("KPI `{kpi}` is not in the plan"))?;
    let b = k.breakdown.as_ref().ok_or_else(|| {
        format!("KPI `{kpi}` has no `breakdowns:`; explain localizes a change across them")
    })?;
    let mut leaves: Vec<(&Formula, f64)> = Vec::new();
    let shape = match (b.shape, &b.ratio) {
        (BreakdownShape::Ratio, Some((num, den))) => {
            leaves.push((num, 1.0));
            leaves.push((den, 1.0));
            SegmentShape::Ratio
        }
        (BreakdownShape::Additive, _) => {
            signed_leaves(&k.metric, 1.0, &b.formulas, &mut leaves, 0)?;
            SegmentShape::Additive {
                signs: leaves.iter().map(|(_, s)| *s).collect(),
            }
        }
        _ => {
            return Err(format!(
                "KPI `{kpi}`'s metric `{}` is neither additive (sums and counts) nor a ratio of \
                 them; explain splits only such changes among segments",
                k.metric
            ));
        }
    };
    let mut sources: Vec<SegmentSource> = Vec::new();
    for (i, (f, _)) in leaves.iter().enumerate() {
        let Formula::Leaf { agg, column, .. } = f else {
            return Err("internal: a component is not an aggregate column".into());
        };
        let node = plan
            .aggregates
            .iter()
            .find(|a| a.name == *agg)
            .ok_or_else(|| format!("internal: aggregate `{agg}` is not planned"))?;
        if node.kind != super::AggKind::Period {
            return Err(format!(
                "KPI `{kpi}` uses a rolling metric (`window`/`to_date`); explain compares \
                 periods of plain sums and counts"
            ));
        }
        let def = node
            .columns
            .iter()
            .find(|c| c.name == *column)
            .ok_or_else(|| format!("internal: column `{column}` is not planned"))?;
        let dims: Vec<MemberDim> = b
            .dims
            .iter()
            .map(|d| {
                node.by
                    .iter()
                    .find(|m| m.key == *d)
                    .cloned()
                    .ok_or_else(|| format!("internal: dimension `{d}` is not planned"))
            })
            .collect::<Result<_, _>>()?;
        match sources.iter_mut().find(|s| s.scan == node.scan) {
            Some(s) => s.components.push((i, def.clone())),
            None => sources.push(SegmentSource {
                scan: node.scan.clone(),
                dims,
                components: vec![(i, def.clone())],
            }),
        }
    }
    Ok(SegmentPlan {
        kpi: kpi.to_string(),
        dims: b.dims.clone(),
        shape,
        components: leaves.len(),
        sources,
    })
}
