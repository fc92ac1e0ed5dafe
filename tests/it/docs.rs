//! `docs/diagnostics.md` is generated from `src/diagnostics/codes.rs`; this
//! test fails when it is stale. Regenerate with
//! `KPIC_UPDATE_DOCS=1 cargo test --release --test it docs`.

use kpic::diagnostics::{Code, Severity};

fn render() -> String {
    let mut out = String::from(
        "# kpic diagnostic codes\n\n\
         Generated from `src/diagnostics/codes.rs`; `kpic check --explain-code CODE` prints the same text.\n\
         KPI1xx: loading; KPI2xx: semantic errors; KPI25x: hygiene warnings; KPI3xx: planning and dialects; KPI4xx: execution.\n",
    );
    for code in Code::ALL {
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "\n## {} — {} ({severity})\n\n",
            code.as_str(),
            code.title()
        ));
        for line in code.doc().lines() {
            out.push_str(line);
            out.push_str("  \n");
        }
    }
    out
}

#[test]
fn diagnostics_doc_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let expected = render();
    if std::env::var_os("KPIC_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/diagnostics.md is stale: run KPIC_UPDATE_DOCS=1 cargo test --release --test it docs"
    );
}

#[test]
fn codes_are_unique_and_in_their_range() {
    let mut seen = std::collections::BTreeSet::new();
    for code in Code::ALL {
        assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        let n: u32 = code.as_str()[3..].parse().unwrap();
        let warning = code.severity() == Severity::Warning;
        assert_eq!(
            warning,
            (250..300).contains(&n),
            "{} severity vs range",
            code.as_str()
        );
        // KPI5xx: integrations (issue 6).
        assert!((100..600).contains(&n));
    }
}
