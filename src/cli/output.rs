//! Printing of command results: the KPI table (terminal table, CSV, JSON),
//! the `list` listing, and CSV exports.
//!
//! Text that comes from data or YAML (labels, owners, formulas) is printed
//! to people through [`visible`], so a value holding ESC, BEL or a bidi
//! override cannot drive the terminal; CSV and JSON keep exact values.

use std::io::Write;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::RunFormat;
use crate::diagnostics::render::visible;
use crate::exec::KpiRow;
use crate::model::{Format, MetricKind, Relation};
use crate::semantic::SemanticModel;

/// Formats a number for people (see [`Format::display`]).
pub fn format_number(v: Option<f64>, format: Format) -> String {
    format.display(v)
}

pub(super) fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:+.1}%", v * 100.0),
        _ => "–".into(),
    }
}

pub(super) fn metric_format(model: &SemanticModel, metric: &str) -> Format {
    model
        .project
        .metric(metric)
        .map(|m| m.format)
        .unwrap_or(Format::Number)
}

pub fn print_results(model: &SemanticModel, rows: &[KpiRow], format: RunFormat, color: bool) {
    let mut stdout = std::io::stdout().lock();
    match format {
        RunFormat::Json => {
            let text = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into());
            let _ = writeln!(stdout, "{text}");
        }
        RunFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                let _ = w.serialize(r);
            }
            if rows.is_empty() {
                let _ = w.write_record(["kpi"]);
            }
            let bytes = w.into_inner().unwrap_or_default();
            let _ = stdout.write_all(&bytes);
        }
        RunFormat::Table => {
            let mut table = Table::new();
            table
                .load_style(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(vec![
                    "KPI",
                    "Period",
                    "Actual",
                    "Target",
                    "Attain.",
                    "Status",
                    "Projected",
                    "vs prev",
                    "vs last year",
                ]);
            if !color {
                table.force_no_tty();
            } else {
                table.enforce_styling();
            }
            // One row per KPI: its latest period (the one containing as_of).
            let mut latest: Vec<&KpiRow> = Vec::new();
            for r in rows {
                match latest.iter_mut().find(|l| l.kpi == r.kpi) {
                    Some(l) if l.period_start < r.period_start => *l = r,
                    Some(_) => {}
                    None => latest.push(r),
                }
            }
            // In the order the KPIs are defined.
            latest.sort_by_key(|r| {
                model
                    .project
                    .kpis
                    .iter()
                    .position(|k| k.name.value == r.kpi)
            });
            for r in latest {
                let f = metric_format(model, &r.metric);
                let status_color = match r.status.as_str() {
                    "on_track" => Color::Green,
                    "at_risk" => Color::Yellow,
                    "off_track" => Color::Red,
                    _ => Color::Grey,
                };
                let mut status = Cell::new(r.status.replace('_', " "));
                if color {
                    status = status.fg(status_color);
                }
                let period = if r.is_complete {
                    visible(&r.period)
                } else {
                    format!("{} (to date)", visible(&r.period))
                };
                table.add_row(vec![
                    Cell::new(visible(r.label.as_deref().unwrap_or(&r.kpi))),
                    Cell::new(period),
                    Cell::new(format_number(r.actual, f)),
                    Cell::new(format_number(r.target, f)),
                    Cell::new(
                        r.attainment
                            .map_or("–".into(), |a| format!("{:.0}%", a * 100.0)),
                    ),
                    status,
                    Cell::new(format_number(r.projected, f)),
                    Cell::new(pct(r.change_pct)),
                    Cell::new(pct(r.yoy_change_pct)),
                ]);
            }
            let _ = writeln!(stdout, "{table}");
        }
    }
}

/// Writes kpi_results as `DIR/kpi_results.csv`.
pub fn list(model: &SemanticModel, json: bool) {
    let p = &model.project;
    let relation = |r: &Relation| match r {
        Relation::Path { .. } => "path",
        Relation::Table(_) => "table",
        Relation::Sql(_) => "sql",
        Relation::DbtRef(_) => "ref",
    };
    let metric_kind = |k: &MetricKind| match k {
        MetricKind::Measure { .. } => "measure",
        MetricKind::Derived { .. } => "derived",
    };
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "sources": p.sources.iter().map(|s| serde_json::json!({
                "name": s.name.value,
                "kind": relation(&s.relation),
                "time": s.time.as_ref().map(|t| t.text.clone()),
                "dimensions": s.dimensions.iter().map(|d| d.name.value.clone()).collect::<Vec<_>>(),
                "joins": s.joins.iter().map(|j| j.source.value.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "metrics": p.metrics.iter().map(|m| {
                let info = model.metrics.get(&m.name.value);
                serde_json::json!({
                    "name": m.name.value,
                    "kind": metric_kind(&m.kind),
                    "source": match &m.kind { MetricKind::Measure { source, .. } => Some(source.value.clone()), _ => None },
                    "additive": info.is_some_and(|i| i.additive),
                    "format": m.format.as_str(),
                })
            }).collect::<Vec<_>>(),
            "kpis": p.kpis.iter().map(|k| serde_json::json!({
                "name": k.name.value,
                "metric": k.metric.value,
                "grain": k.grain.as_str(),
                "direction": k.direction.as_str(),
                "owner": k.owner.as_ref().map(|o| o.value.clone()),
                "has_target": k.target.is_some(),
            })).collect::<Vec<_>>(),
        });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return;
    }
    let _ = writeln!(out, "Sources ({})", p.sources.len());
    for s in &p.sources {
        let dims: Vec<&str> = s.dimensions.iter().map(|d| d.name.value.as_str()).collect();
        let _ = writeln!(
            out,
            "  {:<24} {:<6} dimensions: {}",
            s.name.value,
            relation(&s.relation),
            dims.join(", ")
        );
    }
    let _ = writeln!(out, "Metrics ({})", p.metrics.len());
    for m in &p.metrics {
        let detail = match &m.kind {
            MetricKind::Measure {
                source, measure, ..
            } => format!("{} on {}", measure.text, source.value),
            MetricKind::Derived { expr } => expr.text.clone(),
        };
        let detail = visible(&detail);
        let _ = writeln!(
            out,
            "  {:<24} {:<8} {}",
            m.name.value,
            metric_kind(&m.kind),
            detail
        );
    }
    let _ = writeln!(out, "KPIs ({})", p.kpis.len());
    for k in &p.kpis {
        let _ = writeln!(
            out,
            "  {:<24} {:<8} {} ({}, {})",
            k.name.value,
            k.grain.as_str(),
            k.metric.value,
            k.direction.as_str(),
            visible(k.owner.as_ref().map_or("no owner", |o| o.value.as_str()))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(
            format_number(Some(1234567.4), Format::Currency),
            "$1,234,567"
        );
        assert_eq!(format_number(Some(0.0312), Format::Percent), "3.12%");
        assert_eq!(format_number(Some(-1234.0), Format::Number), "-1,234");
        assert_eq!(format_number(Some(12.345), Format::Number), "12.35");
        assert_eq!(format_number(None, Format::Number), "–");
    }
}
