//! Snapshot tests of both renderers (reviewed by eye, like code).

use std::path::Path;

use super::{clamp, human, json, visible};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::source::{FileId, SourceMap, Span};

/// `models/kpis.yml`; line 12 is `    metric: revnue`.
const KPIS: &str = "\
kpis:
  - name: monthly_revenue
    metric: revenue
    description: Revenue per month
    owner: finance
    target: 100000
    breakdowns:
      - region
      - channel
    action_plan: review pricing
  - name: revenue_growth
    metric: revnue
    owner: sales
";

const METRICS: &str = "\
metrics:
  - name: revenue
    source: orders
    sql: sum(amount)
";

fn project() -> (SourceMap, FileId, FileId) {
    let mut sources = SourceMap::new();
    let kpis = sources.add(
        Path::new("/p/models/kpis.yml"),
        "models/kpis.yml".into(),
        KPIS.into(),
    );
    let metrics = sources.add(
        Path::new("/p/models/metrics.yml"),
        "models/metrics.yml".into(),
        METRICS.into(),
    );
    (sources, kpis, metrics)
}

/// The span of the `nth` (0-based) occurrence of `needle` in `file`.
fn find(sources: &SourceMap, file: FileId, needle: &str, nth: usize) -> Span {
    let text = &sources.get(file).text;
    let (start, _) = text.match_indices(needle).nth(nth).expect("needle");
    Span::new(file, start, start + needle.len())
}

fn unknown_metric(sources: &SourceMap, kpis: FileId) -> Diagnostic {
    Diagnostic::new(Code::UnknownMetric, "unknown metric `revnue`")
        .at(find(sources, kpis, "revnue", 0), "did you mean `revenue`?")
}

#[test]
fn spec_example_byte_for_byte() {
    let (sources, kpis, _) = project();
    let diags = Diagnostics::from(unknown_metric(&sources, kpis));
    let out = human(&diags, &sources, false);
    assert_eq!(
        out,
        "error[KPI203]: unknown metric `revnue`\n  \
         --> models/kpis.yml:12:13\n   \
         |\n\
         12 |     metric: revnue\n   \
         |             ^^^^^^ did you mean `revenue`?\n\
         \n\
         error: 1 error emitted\n"
    );
    insta::assert_snapshot!(out, @r"
    error[KPI203]: unknown metric `revnue`
      --> models/kpis.yml:12:13
       |
    12 |     metric: revnue
       |             ^^^^^^ did you mean `revenue`?

    error: 1 error emitted
    ");
}

#[test]
fn help_notes_secondary_in_another_file_and_summary() {
    let (sources, kpis, metrics) = project();
    let mut diags = Diagnostics::new();
    diags.push(
        unknown_metric(&sources, kpis)
            .with_secondary(
                find(&sources, metrics, "revenue", 0),
                "`revenue` is defined here",
            )
            .with_secondary(find(&sources, kpis, "revenue_growth", 0), "in this KPI")
            .with_help("write `metric: revenue`")
            .with_note("metrics are defined under `metrics:` in any model file"),
    );
    diags.push(
        Diagnostic::new(Code::KpiWithoutTarget, "KPI `revenue_growth` has no target")
            .at(find(&sources, kpis, "revenue_growth", 0), "")
            .with_help("add `target: <number>`"),
    );
    diags.push(Diagnostic::new(Code::DuplicateName, "duplicate KPI `x`"));
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI203]: unknown metric `revnue`
      --> models/kpis.yml:12:13
       |
    11 |   - name: revenue_growth
       |           -------------- in this KPI
    12 |     metric: revnue
       |             ^^^^^^ did you mean `revenue`?
       |
      ::: models/metrics.yml:2:11
       |
     2 |   - name: revenue
       |           ------- `revenue` is defined here
       |
       = help: write `metric: revenue`
       = note: metrics are defined under `metrics:` in any model file

    warning[KPI252]: KPI `revenue_growth` has no target
      --> models/kpis.yml:11:11
       |
    11 |   - name: revenue_growth
       |           ^^^^^^^^^^^^^^
       |
       = help: add `target: <number>`

    error[KPI202]: duplicate KPI `x`

    error: 2 errors and 1 warning emitted
    ");
}

#[test]
fn warning_only_summary() {
    let (sources, kpis, _) = project();
    let diags = Diagnostics::from(
        Diagnostic::new(Code::KpiWithoutOwner, "KPI `monthly_revenue` has no owner")
            .at(find(&sources, kpis, "monthly_revenue", 0), "this KPI"),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    warning[KPI253]: KPI `monthly_revenue` has no owner
     --> models/kpis.yml:2:11
      |
    2 |   - name: monthly_revenue
      |           ^^^^^^^^^^^^^^^ this KPI

    warning: 1 warning emitted
    ");
}

#[test]
fn no_span_renders_title_help_and_notes() {
    let sources = SourceMap::new();
    let diags = Diagnostics::from(
        Diagnostic::new(
            Code::FileUnreadable,
            "cannot read `kpic.yml`: permission denied",
        )
        .with_help("check the file's permissions")
        .with_note("kpic needs read access to every model file"),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI101]: cannot read `kpic.yml`: permission denied
     |
     = help: check the file's permissions
     = note: kpic needs read access to every model file

    error: 1 error emitted
    ");
}

#[test]
fn non_ascii_before_the_span() {
    let mut sources = SourceMap::new();
    let text = "kpis:\n  - name: umsatz\n    description: \"Umsätze € — 季度\" metric: revnue\n";
    let f = sources.add(Path::new("k.yml"), "k.yml".into(), text.into());
    let diags = Diagnostics::from(
        Diagnostic::new(Code::UnknownMetric, "unknown metric `revnue`")
            .at(find(&sources, f, "revnue", 0), "here"),
    );
    let out = human(&diags, &sources, false);
    // 42 characters (52 bytes) precede `revnue` on line 3: the column counts
    // characters; the caret is placed by display width (`季度` is 4 columns wide).
    assert!(out.contains("--> k.yml:3:43"), "{out}");
    insta::assert_snapshot!(out, @r#"
    error[KPI203]: unknown metric `revnue`
     --> k.yml:3:43
      |
    3 |     description: "Umsätze € — 季度" metric: revnue
      |                                             ^^^^^^ here

    error: 1 error emitted
    "#);
    let doc: serde_json::Value = serde_json::from_str(&json(&diags, &sources)).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!((&d["line"], &d["column"]), (&3.into(), &43.into()));
    assert_eq!((&d["end_line"], &d["end_column"]), (&3.into(), &49.into()));
}

#[test]
fn empty_span() {
    let (sources, kpis, _) = project();
    let at = find(&sources, kpis, "revnue", 0).start;
    let diags = Diagnostics::from(
        Diagnostic::new(Code::MissingKey, "expected a value")
            .at(Span::new(kpis, at, at), "value expected here"),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI105]: expected a value
      --> models/kpis.yml:12:13
       |
    12 |     metric: revnue
       |             ^ value expected here

    error: 1 error emitted
    ");
}

#[test]
fn span_past_end_of_file() {
    let (sources, kpis, _) = project();
    let diags = Diagnostics::from(
        Diagnostic::new(Code::YamlSyntax, "unexpected end of file").at(
            Span::new(kpis, KPIS.len() + 10, KPIS.len() + 50),
            "file ends here",
        ),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI102]: unexpected end of file
      --> models/kpis.yml:13:17
       |
    13 |     owner: sales
       |                 ^ file ends here

    error: 1 error emitted
    ");
    let doc: serde_json::Value = serde_json::from_str(&json(&diags, &sources)).unwrap();
    let d = &doc["diagnostics"][0];
    // the end of the last line, `    owner: sales`
    assert_eq!((&d["line"], &d["column"]), (&13.into(), &17.into()));
    assert_eq!((&d["end_line"], &d["end_column"]), (&13.into(), &17.into()));
}

#[test]
fn multi_line_span() {
    let (sources, kpis, _) = project();
    let start = find(&sources, kpis, "breakdowns", 0).start;
    let end = find(&sources, kpis, "channel", 0).end;
    let diags = Diagnostics::from(
        Diagnostic::new(Code::UnknownDimension, "unknown dimension `channel`")
            .at(Span::new(kpis, start, end + 1), "in these breakdowns"),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI205]: unknown dimension `channel`
     --> models/kpis.yml:7:5
      |
    7 | /     breakdowns:
    8 | |       - region
    9 | |       - channel
      | |_______________^ in these breakdowns

    error: 1 error emitted
    ");
    let doc: serde_json::Value = serde_json::from_str(&json(&diags, &sources)).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!((&d["line"], &d["column"]), (&7.into(), &5.into()));
    // the line break after `channel` is not part of the span
    assert_eq!((&d["end_line"], &d["end_column"]), (&9.into(), &16.into()));
}

#[test]
fn json_document() {
    let (sources, kpis, metrics) = project();
    let mut diags = Diagnostics::new();
    diags.push(
        unknown_metric(&sources, kpis)
            .with_secondary(find(&sources, metrics, "revenue", 0), "defined here")
            .with_help("write `metric: revenue`")
            .with_note("a note"),
    );
    diags.push(Diagnostic::new(
        Code::KpiWithoutTarget,
        "KPI `x` has no target",
    ));
    let out = json(&diags, &sources);
    insta::assert_snapshot!(out, @r#"
    {
      "diagnostics": [
        {
          "code": "KPI203",
          "severity": "error",
          "message": "unknown metric `revnue`",
          "file": "models/kpis.yml",
          "line": 12,
          "column": 13,
          "end_line": 12,
          "end_column": 19,
          "label": "did you mean `revenue`?",
          "help": "write `metric: revenue`",
          "notes": [
            "a note"
          ],
          "secondary": [
            {
              "file": "models/metrics.yml",
              "line": 2,
              "column": 11,
              "end_line": 2,
              "end_column": 18,
              "label": "defined here"
            }
          ]
        },
        {
          "code": "KPI252",
          "severity": "warning",
          "message": "KPI `x` has no target",
          "file": null,
          "line": null,
          "column": null,
          "end_line": null,
          "end_column": null,
          "label": null,
          "help": null,
          "notes": [],
          "secondary": []
        }
      ],
      "errors": 1,
      "warnings": 1
    }
    "#);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!(d["file"], "models/kpis.yml");
    assert_eq!((&d["line"], &d["column"]), (&12.into(), &13.into()));
    assert_eq!((&d["end_line"], &d["end_column"]), (&12.into(), &19.into()));
    let s = &d["secondary"][0];
    assert_eq!(s["file"], "models/metrics.yml");
    assert_eq!((&s["line"], &s["column"]), (&2.into(), &11.into()));
    assert_eq!((&s["end_line"], &s["end_column"]), (&2.into(), &18.into()));
    let w = &doc["diagnostics"][1];
    assert!(w["file"].is_null() && w["line"].is_null() && w["help"].is_null());
    assert_eq!((&doc["errors"], &doc["warnings"]), (&1.into(), &1.into()));
}

#[test]
fn empty_input() {
    let sources = SourceMap::new();
    assert_eq!(human(&Diagnostics::new(), &sources, true), "");
    insta::assert_snapshot!(json(&Diagnostics::new(), &sources), @r#"
    {
      "diagnostics": [],
      "errors": 0,
      "warnings": 0
    }
    "#);
}

#[test]
fn color_only_when_asked() {
    let (sources, kpis, metrics) = project();
    let diags = Diagnostics::from(
        unknown_metric(&sources, kpis)
            .with_secondary(find(&sources, metrics, "revenue", 0), "defined here")
            .with_help("help")
            .with_note("note \u{1b}[31mred\u{1b}[0m"),
    );
    let plain = human(&diags, &sources, false);
    assert!(!plain.contains('\u{1b}'), "{plain}");
    let styled = human(&diags, &sources, true);
    assert!(styled.contains('\u{1b}'));
    assert_eq!(anstream::adapter::strip_str(&styled).to_string(), plain);
}

#[test]
fn unknown_file_id_does_not_panic() {
    let (sources, _, _) = project();
    let ghost = Span::new(FileId(99), 0, 3);
    let diags = Diagnostics::from(
        Diagnostic::new(Code::UnknownMetric, "m")
            .at(ghost, "x")
            .with_secondary(ghost, "y"),
    );
    insta::assert_snapshot!(human(&diags, &sources, false), @r"
    error[KPI203]: m

    error: 1 error emitted
    ");
    let doc: serde_json::Value = serde_json::from_str(&json(&diags, &sources)).unwrap();
    assert!(doc["diagnostics"][0]["file"].is_null());
    assert!(doc["diagnostics"][0]["secondary"][0]["line"].is_null());
}

/// Every span over awkward texts (multi-byte characters, CRLF, tabs,
/// control characters, blank lines, no final newline, empty text), with a
/// secondary label too: no panic, and JSON positions within the text.
#[test]
fn no_panic_on_any_span() {
    let texts = [
        "",
        "\n",
        "a",
        "é",
        "a: b\r\nc: dé\r\n",
        "x:\n\n\t- \u{1b}[31m€\u{0}\n  y: 季度",
        "k: \u{202e}v\u{2066}\n\n\n",
    ];
    for text in texts {
        let mut sources = SourceMap::new();
        let f = sources.add(Path::new("t.yml"), "t.yml".into(), text.into());
        let n = text.len() + 3;
        for start in 0..n {
            for end in 0..n {
                // `Span::new` keeps end >= start; build reversed ones by hand too.
                let span = Span {
                    file: f,
                    start,
                    end,
                };
                let d = Diagnostic::new(Code::YamlSyntax, "m")
                    .at(span, "label")
                    .with_secondary(Span::new(f, end, start), "other");
                let diags = Diagnostics::from(d);
                let out = human(&diags, &sources, start % 2 == 0);
                let out = anstream::adapter::strip_str(&out).to_string();
                assert!(out.starts_with("error[KPI102]: m"), "{out}");
                let doc: serde_json::Value = serde_json::from_str(&json(&diags, &sources)).unwrap();
                let line = doc["diagnostics"][0]["line"].as_u64().unwrap();
                assert!(line >= 1 && line as usize <= text.lines().count().max(1));
            }
        }
    }
}

#[test]
fn clamp_rules() {
    let t = "ab\ncé\n";
    assert_eq!(clamp(t, 0, 2), 0..2);
    assert_eq!(clamp(t, 1, 1), 1..1);
    // inside `é` (bytes 4..6): start moves back, end forward
    assert_eq!(clamp(t, 5, 5), 4..4);
    assert_eq!(clamp(t, 3, 5), 3..6);
    // past the end: end of the last line
    assert_eq!(clamp(t, 100, 200), 6..6);
    assert_eq!(clamp(t, 7, 7), 6..6);
    // a trailing line break is not underlined
    assert_eq!(clamp(t, 0, 3), 0..2);
    assert_eq!(clamp(t, 0, 7), 0..6);
    // end before start
    assert_eq!(clamp(t, 2, 1), 2..2);
    assert_eq!(clamp("", 3, 9), 0..0);
    assert_eq!(clamp("x\r\n", 3, 3), 1..1);
}

#[test]
fn visible_shows_what_would_drive_a_terminal() {
    // ESC, BEL, a bidi override and CSI (C1) are all shown, never sent.
    let shown = visible("a\u{1b}[2J\u{7}b\u{202e}c\u{9b}31md\r\ne");
    assert_eq!(shown, "a␛[2J␇b�c\\u{9b}31md␍\ne");
    for c in shown.chars() {
        assert!(!c.is_control() || c == '\n', "{c:?} left in {shown:?}");
    }
    // Plain text, accents and emoji are untouched.
    assert_eq!(visible("Café ☕ – 2024-Q1"), "Café ☕ – 2024-Q1");
}

#[test]
fn human_output_shows_c1_controls_in_messages() {
    let sources = SourceMap::new();
    let diags: Diagnostics =
        Diagnostic::new(Code::UnknownMetric, "unknown metric `a\u{9b}2Jb`").into();
    let text = human(&diags, &sources, false);
    assert!(!text.contains('\u{9b}'), "{text:?}");
    assert!(text.contains("a\\u{9b}2Jb"), "{text}");
}
