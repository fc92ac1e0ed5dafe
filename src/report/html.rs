//! Renders a [`Report`] as one self-contained HTML page: inline CSS,
//! inline SVG, no script, and a Content-Security-Policy that forbids the
//! browser any load (so a page that slipped in a URL would still fetch
//! nothing).
//!
//! Every text from YAML or data (labels, owners, plans, members) goes
//! through [`esc`]. Elements tests and readers rely on:
//! `.kpi-card[data-kpi][data-status]` with `td[data-role][data-field]
//! [data-value]` cells (`data-value` is the exact number of kpi_results),
//! `svg.trend`, `figure.metric-chart[data-metric][data-grain]`,
//! `article.why[data-kpi]` with `.what`, `.so-what`, `.now-what`, and
//! `.empty-state` wherever there is nothing to show.

use std::fmt::Write as _;

use super::svg::{TrendPoint, metric_line, trend};
use super::{KpiReport, MAX_POINTS, MetricGroup, Report, Why};
use crate::exec::KpiRow;
use crate::model::Format;

/// HTML-escapes text for element content and quoted attributes; control
/// characters (other than newline and tab) become U+FFFD.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A number for people, as `kpic run` prints it (see [`Format::display`]).
pub fn format_value(v: Option<f64>, format: Format) -> String {
    format.display(v)
}

/// A ratio as a signed percentage (`+3.1%`).
pub fn signed_pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:+.1}%", v * 100.0),
        _ => "–".into(),
    }
}

/// A ratio as a percentage (`92.3%`).
pub fn ratio_pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "–".into(),
    }
}

fn signed_value(v: Option<f64>, format: Format) -> String {
    match v {
        Some(x) if x > 0.0 => format!("+{}", format_value(Some(x), format)),
        _ => format_value(v, format),
    }
}

fn status_words(status: &str) -> String {
    status.replace('_', " ")
}

/// The exact number for `data-value` (empty for NULL).
fn raw(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or(String::new(), |v| v.to_string())
}

/// `good` / `bad` for a change, given the KPI's direction.
fn change_class(v: Option<f64>, direction: &str) -> &'static str {
    let lower_is_better = direction == "lower_is_better";
    match v {
        Some(x) if x > 0.0 => {
            if lower_is_better {
                "bad"
            } else {
                "good"
            }
        }
        Some(x) if x < 0.0 => {
            if lower_is_better {
                "good"
            } else {
                "bad"
            }
        }
        _ => "flat",
    }
}

const CSS: &str = r#"
:root{--on:#15803d;--risk:#b45309;--off:#b91c1c;--none:#6b7280;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f3f4f6;--card:#fff;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}
header.page{padding:20px 32px 12px;background:var(--card);border-bottom:1px solid var(--line)}
header.page h1{margin:0;font-size:22px}
header.page p{margin:4px 0 0;color:var(--muted)}
.summary{display:flex;gap:8px;flex-wrap:wrap;margin-top:10px}
main{padding:20px 32px 40px;max-width:1600px}
h2.section{font-size:16px;margin:28px 0 12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.kpi-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.kpi-card{background:var(--card);border-radius:10px;border-top:6px solid var(--none);padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.kpi-card.status-on_track{border-top-color:var(--on)}
.kpi-card.status-at_risk{border-top-color:var(--risk)}
.kpi-card.status-off_track{border-top-color:var(--off)}
.kpi-card header{display:flex;justify-content:space-between;align-items:flex-start;gap:8px}
.kpi-card h3{margin:0;font-size:16px}
.kpi-meta{margin:2px 0 8px;color:var(--muted);font-size:12px}
.badge{display:inline-block;padding:2px 8px;border-radius:999px;font-size:12px;font-weight:600;color:#fff;background:var(--none);white-space:nowrap}
.badge.status-on_track{background:var(--on)}
.badge.status-at_risk{background:var(--risk)}
.badge.status-off_track{background:var(--off)}
.badge.status-no_data{background:#9ca3af}
table.kpi-periods{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
table.kpi-periods th,table.kpi-periods td{padding:3px 4px;text-align:right;border-bottom:1px solid var(--line)}
table.kpi-periods th[scope=row]{text-align:left;font-weight:normal;color:var(--muted)}
table.kpi-periods thead th{font-size:12px;color:var(--muted)}
table.kpi-periods td[data-field=actual]{font-size:18px;font-weight:600}
.good{color:var(--on)}.bad{color:var(--off)}.flat{color:var(--muted)}
svg{display:block;width:100%;height:auto;margin-top:8px}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis{font-size:9px;fill:var(--muted)}
svg .actual-line,svg .metric-line{stroke:var(--accent);stroke-width:2}
svg .target-line{stroke:var(--ink);stroke-width:1.2;stroke-dasharray:4 3;opacity:.55}
svg circle.target-line{fill:var(--ink);opacity:.55}
svg .actual-dot,svg .metric-dot,svg circle.actual-line,svg circle.metric-line{fill:var(--accent)}
svg .projected-line{stroke:var(--accent);stroke-width:2;stroke-dasharray:2 3}
svg .projected-dot{fill:#fff;stroke:var(--accent);stroke-width:2}
.legend{font-size:11px;color:var(--muted);margin-top:2px}
.legend .sw{display:inline-block;width:14px;height:0;border-top:2px solid var(--accent);vertical-align:middle;margin:0 3px 0 8px}
.legend .sw.t{border-top:2px dashed var(--ink);opacity:.55}
.metric-group h3{font-size:14px;margin:16px 0 8px}
.metric-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}
figure.metric-chart{margin:0;background:var(--card);border-radius:8px;padding:10px 12px}
figure.metric-chart figcaption{display:flex;justify-content:space-between;gap:6px;font-size:13px}
figure.metric-chart .latest{font-weight:600;font-variant-numeric:tabular-nums}
figure.metric-chart .grain{color:var(--muted);font-size:11px}
article.why{background:var(--card);border-radius:10px;border-left:6px solid var(--none);padding:14px 18px;margin-bottom:16px}
article.why.status-at_risk{border-left-color:var(--risk)}
article.why.status-off_track{border-left-color:var(--off)}
article.why h3{margin:0 0 8px;font-size:16px}
.why-grid{display:grid;grid-template-columns:1fr 1fr 1.4fr;gap:18px}
@media (max-width:900px){.why-grid{grid-template-columns:1fr}}
.why-grid h4{margin:0 0 4px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.why-grid h5{margin:8px 0 2px;font-size:13px}
.why-grid ol{margin:0;padding-left:20px}
.action-plan{white-space:pre-wrap;background:var(--bg);border-radius:6px;padding:6px 8px;margin:0;font:inherit}
.note{color:var(--muted);font-size:12px}
.empty-state{background:var(--card);border:1px dashed #cbd5e1;border-radius:10px;padding:18px;color:var(--muted)}
footer{padding:0 32px 24px;color:var(--muted);font-size:12px}
"#;

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("{} — KPI report", report.project);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"kpic {}\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    let _ = write!(
        out,
        "<header class=\"page\"><h1>{}</h1><p>KPI report as of <time id=\"as-of\">{}</time> · {} KPI{}</p>",
        esc(&report.project),
        esc(&report.as_of),
        report.kpis.len(),
        if report.kpis.len() == 1 { "" } else { "s" }
    );
    out.push_str("<div class=\"summary\" id=\"summary\">");
    for status in ["off_track", "at_risk", "on_track", "no_target", "no_data"] {
        let n = report
            .kpis
            .iter()
            .filter(|k| k.headline_status() == status)
            .count();
        if n > 0 {
            let _ = write!(
                out,
                "<span class=\"badge status-{status}\" data-status=\"{status}\">{n} {}</span>",
                status_words(status)
            );
        }
    }
    out.push_str("</div></header>\n<main>\n");

    out.push_str("<section id=\"kpis\"><h2 class=\"section\">KPIs</h2>\n");
    if report.kpis.is_empty() {
        out.push_str(
            "<p class=\"empty-state\" id=\"no-kpis\">This project defines no KPIs yet. \
             Add one under <code>kpis:</code> in a model file (see <code>kpic init</code>'s example), \
             then run <code>kpic report</code> again.</p>\n",
        );
    } else {
        out.push_str("<div class=\"kpi-grid\">\n");
        for k in &report.kpis {
            card(&mut out, k);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"metrics\"><h2 class=\"section\">Diagnostic metrics</h2>\n");
    if report.metric_groups.is_empty() {
        out.push_str(
            "<p class=\"empty-state\" id=\"no-metrics\">No diagnostic metrics: give the KPIs \
             <code>drivers:</code> to chart what moves them.</p>\n",
        );
    }
    for g in &report.metric_groups {
        metric_group(&mut out, g);
    }
    out.push_str("</section>\n");

    out.push_str(
        "<section id=\"whys\"><h2 class=\"section\">Off track and at risk: what, so what, now what</h2>\n",
    );
    if report.whys.is_empty() && !report.kpis.is_empty() {
        out.push_str(
            "<p class=\"empty-state\" id=\"no-whys\">No KPI is off track or at risk.</p>\n",
        );
    }
    for w in &report.whys {
        if let Some(k) = report.kpis.iter().find(|k| k.name == w.kpi) {
            why(&mut out, k, w);
        }
    }
    out.push_str("</section>\n</main>\n");
    let _ = write!(
        out,
        "<footer>Generated by kpic {} from the output tables of <code>kpic run</code>{}. \
         Incomplete periods are judged on their projection; changes of an incomplete period are like for like.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        report
            .computed_at
            .as_deref()
            .map_or(String::new(), |c| format!(" (computed at {})", esc(c)))
    );
    out
}

fn card(out: &mut String, k: &KpiReport) {
    let status = k.headline_status();
    let name = esc(&k.name);
    let _ = write!(
        out,
        "<article class=\"kpi-card status-{status}\" id=\"kpi-{name}\" data-kpi=\"{name}\" data-status=\"{status}\">\
         <header><h3 class=\"kpi-label\">{}</h3><span class=\"badge status-{status}\">{}</span></header>",
        esc(&k.label),
        status_words(status)
    );
    let mut meta = vec![k.grain.clone(), k.direction.replace('_', " ")];
    if let Some(o) = &k.owner {
        meta.push(format!("owner {o}"));
    }
    let _ = write!(out, "<p class=\"kpi-meta\">{}</p>", esc(&meta.join(" · ")));
    let columns: Vec<(&str, &KpiRow)> = [
        ("latest_complete", k.latest_complete()),
        ("current", k.current()),
    ]
    .into_iter()
    .filter_map(|(role, p)| p.map(|p| (role, p)))
    .collect();
    if columns.is_empty() {
        out.push_str(
            "<p class=\"empty-state no-data\">No data yet: kpi_results has no period for this KPI \
             (its sources have no rows up to the as_of date).</p>",
        );
        out.push_str(&trend(&[], k.format, &k.label));
        out.push_str("</article>\n");
        return;
    }
    out.push_str("<table class=\"kpi-periods\"><thead><tr><th></th>");
    for (role, p) in &columns {
        let _ = write!(
            out,
            "<th scope=\"col\" data-role=\"{role}\" data-period=\"{}\">{}{}</th>",
            esc(&p.period),
            esc(&p.period),
            if p.is_complete {
                ""
            } else {
                " <small>(in progress)</small>"
            }
        );
    }
    out.push_str("</tr></thead><tbody>");
    type Cellf = fn(&KpiReport, &KpiRow) -> (Option<f64>, String, &'static str);
    let rows: [(&str, &str, Cellf); 7] = [
        ("actual", "Actual", |k, p| {
            (p.actual, format_value(p.actual, k.format), "")
        }),
        ("target", "Target", |k, p| {
            (p.target, format_value(p.target, k.format), "")
        }),
        ("attainment", "Attainment", |_, p| {
            (p.attainment, ratio_pct(p.attainment), "")
        }),
        ("projected", "Projected", |k, p| {
            let v = p.projected.filter(|_| !p.is_complete);
            (v, format_value(v, k.format), "")
        }),
        ("pacing", "Pacing (projected / target)", |_, p| {
            let v = match (p.is_complete, p.projected, p.target) {
                (false, Some(x), Some(t)) if t != 0.0 => Some(x / t),
                _ => None,
            };
            (v, ratio_pct(v), "")
        }),
        ("change_pct", "vs previous", |k, p| {
            (
                p.change_pct,
                signed_pct(p.change_pct),
                change_class(p.change_pct, &k.direction),
            )
        }),
        ("yoy_change_pct", "vs last year", |k, p| {
            (
                p.yoy_change_pct,
                signed_pct(p.yoy_change_pct),
                change_class(p.yoy_change_pct, &k.direction),
            )
        }),
    ];
    for (field, title, value) in rows {
        // Projection and pacing only mean something for a running period.
        if matches!(field, "projected" | "pacing") && columns.iter().all(|(_, p)| p.is_complete) {
            continue;
        }
        let _ = write!(out, "<tr><th scope=\"row\">{title}</th>");
        for (role, p) in &columns {
            let (v, text, class) = value(k, p);
            let _ = write!(
                out,
                "<td data-role=\"{role}\" data-field=\"{field}\" data-value=\"{}\" class=\"{class}\">{}</td>",
                raw(v),
                esc(&text)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("<tr><th scope=\"row\">Status</th>");
    for (role, p) in &columns {
        let s = esc(&p.status);
        let _ = write!(
            out,
            "<td data-role=\"{role}\" data-field=\"status\" data-value=\"{s}\"><span class=\"badge status-{s}\">{}</span></td>",
            esc(&status_words(&p.status))
        );
    }
    out.push_str("</tr></tbody></table>");
    let start = k.periods.len().saturating_sub(MAX_POINTS);
    let points: Vec<TrendPoint> = k.periods[start..]
        .iter()
        .map(|p| TrendPoint {
            label: &p.period,
            actual: p.actual,
            target: p.target,
            projected: p.projected,
            complete: p.is_complete,
        })
        .collect();
    out.push_str(&trend(
        &points,
        k.format,
        &format!("{}: actual against target", k.label),
    ));
    out.push_str(
        "<div class=\"legend\"><span class=\"sw\"></span>actual<span class=\"sw t\"></span>target</div>",
    );
    out.push_str("</article>\n");
}

fn metric_group(out: &mut String, g: &MetricGroup) {
    let _ = write!(
        out,
        "<div class=\"metric-group\"><h3>{}</h3><div class=\"metric-grid\">",
        esc(&g.title)
    );
    for s in &g.series {
        let start = s.points.len().saturating_sub(MAX_POINTS);
        let points = &s.points[start..];
        // The caption shows the latest complete period (a running one is partial).
        let latest = points
            .iter()
            .rev()
            .filter(|p| p.complete)
            .find_map(|p| p.value);
        let _ = write!(
            out,
            "<figure class=\"metric-chart\" data-metric=\"{}\" data-grain=\"{}\"><figcaption>\
             <span>{} <span class=\"grain\">by {}</span></span><span class=\"latest\">{}</span></figcaption>{}</figure>",
            esc(&s.metric),
            esc(&s.grain),
            esc(&s.label),
            esc(&s.grain),
            esc(&format_value(latest, s.format)),
            metric_line(points, s.format, &format!("{} by {}", s.label, s.grain))
        );
    }
    out.push_str("</div></div>\n");
}

fn why(out: &mut String, k: &KpiReport, w: &Why) {
    let f = k.format;
    let p = &w.period;
    let status = esc(&p.status);
    let _ = write!(
        out,
        "<article class=\"why status-{status}\" id=\"why-{}\" data-kpi=\"{}\" data-period=\"{}\" data-status=\"{status}\">\
         <h3>{}: {} in {}</h3><div class=\"why-grid\">",
        esc(&k.name),
        esc(&k.name),
        esc(&p.period),
        esc(&k.label),
        status_words(&p.status),
        esc(&p.period)
    );

    // What: the change.
    out.push_str("<div class=\"what\"><h4>What</h4><p>");
    let baseline = w
        .baseline_label
        .as_deref()
        .map_or("the previous period".to_string(), esc);
    let _ = write!(
        out,
        "{} in {}{}, against {} in {}: <span class=\"{}\">{} ({})</span>.",
        esc(&format_value(w.actual, f)),
        esc(&p.period),
        if p.is_complete { "" } else { " so far" },
        esc(&format_value(w.previous, f)),
        baseline,
        change_class(w.change, &k.direction),
        esc(&signed_value(w.change, f)),
        esc(&signed_pct(w.change_pct))
    );
    if !p.is_complete {
        out.push_str(
            " <span class=\"note\">(like for like: the same number of days of both periods)</span>",
        );
    }
    out.push_str("</p></div>");

    // So What: against the target, and why it matters.
    out.push_str("<div class=\"so-what\"><h4>So What</h4><p>");
    let judged = if p.is_complete {
        format!("{} reached", esc(&format_value(p.actual, f)))
    } else {
        format!("{} projected", esc(&format_value(p.projected, f)))
    };
    let _ = write!(
        out,
        "{judged} against a target of {}: <strong>{}</strong>",
        esc(&format_value(p.target, f)),
        status_words(&p.status)
    );
    let basis = if p.is_complete { p.actual } else { p.projected };
    if let (Some(v), Some(t)) = (basis, p.target)
        && t != 0.0
    {
        let _ = write!(out, " ({} of target)", ratio_pct(Some(v / t)));
    }
    out.push('.');
    if let Some(tol) = k.tolerance {
        let _ = write!(
            out,
            " <span class=\"note\">At risk within {} of the target.</span>",
            ratio_pct(Some(tol))
        );
    }
    out.push_str("</p>");
    for (class, text) in [("objective", &k.objective), ("rationale", &k.rationale)] {
        if let Some(t) = text {
            let _ = write!(out, "<p class=\"{class}\">{}</p>", esc(t.trim()));
        }
    }
    out.push_str("</div>");

    // Now What: drivers, segments, the plan.
    out.push_str("<div class=\"now-what\"><h4>Now What</h4>");
    let attributed: Vec<_> = w
        .drivers
        .iter()
        .filter(|d| d.driver.method != "none")
        .collect();
    let diagnostic: Vec<_> = w
        .drivers
        .iter()
        .filter(|d| d.driver.method == "none")
        .collect();
    if !attributed.is_empty() || !diagnostic.is_empty() {
        out.push_str("<h5>Top drivers</h5><ol class=\"drivers\">");
        for d in attributed.iter().chain(diagnostic.iter()).take(super::TOP) {
            let _ = write!(
                out,
                "<li class=\"driver\" data-metric=\"{}\">{}: {} → {} <span class=\"{}\">({})</span>",
                esc(&d.driver.metric),
                esc(&d.label),
                esc(&format_value(d.driver.previous, d.format)),
                esc(&format_value(d.driver.actual, d.format)),
                change_class(d.driver.change_pct, "higher_is_better"),
                esc(&signed_pct(d.driver.change_pct))
            );
            if d.driver.method != "none" {
                let _ = write!(
                    out,
                    ", contributed {}{}",
                    esc(&signed_value(d.driver.contribution, f)),
                    d.driver.share_of_change.map_or(String::new(), |s| format!(
                        " ({:.0}% of the change)",
                        s * 100.0
                    ))
                );
            } else {
                out.push_str(" <span class=\"note\">(diagnostic, not attributed)</span>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
    if w.segments.is_empty() {
        out.push_str("<p class=\"empty-state segments-none\">No segment stands out: the change is spread across the breakdowns.</p>");
    } else {
        out.push_str("<h5>Top segments</h5><ol class=\"segments\">");
        for s in &w.segments {
            let name = s
                .segment
                .iter()
                .map(|(d, m)| match m {
                    Some(m) => format!("{d} = {m}"),
                    None => format!("{d} is NULL"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                out,
                "<li class=\"segment\"><strong>{}</strong>: {} → {} <span class=\"{}\">({})</span>{}</li>",
                esc(&name),
                esc(&format_value(s.previous, f)),
                esc(&format_value(s.actual, f)),
                change_class(s.change, &k.direction),
                esc(&signed_value(s.change, f)),
                s.share_of_change.map_or(String::new(), |x| format!(
                    ", {:.0}% of the change",
                    x * 100.0
                ))
            );
        }
        out.push_str("</ol>");
    }
    out.push_str("<h5>Action plan</h5>");
    match &k.action_plan {
        Some(plan) => {
            let _ = write!(out, "<pre class=\"action-plan\">{}</pre>", esc(plan.trim_end()));
        }
        None => out.push_str(
            "<p class=\"empty-state action-plan-missing\">No action plan: add <code>action_plan:</code> to the KPI so the next reader knows what to do.</p>",
        ),
    }
    if let Some(o) = &k.owner {
        let _ = write!(out, "<p class=\"owner\">Owner: {}</p>", esc(o));
    }
    for n in &w.notes {
        let _ = write!(out, "<p class=\"note\">Note: {}.</p>", esc(n));
    }
    out.push_str("</div></div></article>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>\u{1b}"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;\u{FFFD}"
        );
    }

    #[test]
    fn formats_like_kpic_run() {
        assert_eq!(
            format_value(Some(1234567.4), Format::Currency),
            "$1,234,567"
        );
        assert_eq!(format_value(Some(-12.0), Format::Currency), "-$12");
        assert_eq!(format_value(Some(0.1234), Format::Percent), "12.34%");
        assert_eq!(format_value(Some(12.5), Format::Number), "12.50");
        assert_eq!(format_value(Some(-1234.0), Format::Number), "-1,234");
        assert_eq!(format_value(None, Format::Number), "–");
        assert_eq!(signed_pct(Some(0.031)), "+3.1%");
        assert_eq!(ratio_pct(Some(0.923)), "92.3%");
    }
}
