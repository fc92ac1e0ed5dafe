//! No input may make kpic panic: the example's definitions, mutated at
//! random (deterministically seeded), go through load → model → semantic
//! and, when they are still valid, plan → SQL. A panic fails the test and
//! prints the seed and the mutated text.

use std::path::{Path, PathBuf};

use kpic::semantic::NoCatalog;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const NOISE: &[&str] = &[
    "",
    "~",
    "null",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "&a",
    "*a",
    "'",
    "\"",
    "{{",
    "}}",
    "{% if %}",
    "sum(",
    ")",
    "count(distinct x)",
    "1=1; drop table x",
    "\u{0}",
    "\u{1F600}",
    "é",
    "\t",
    "2026-W53",
    "2026-Q5",
    "-10%",
    "1e309",
    "window: all",
    "to_date: year",
    "grain: week",
    "expr: a / b",
    "metric: nope",
    "source: nope",
    "filter: amount + 1",
    "target: {change: x}",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Replace the value after the first colon.
                if let Some(c) = lines[i].find(':') {
                    let noise = NOISE[rng.below(NOISE.len())];
                    lines[i] = format!("{}: {noise}", &lines[i][..c]);
                }
            }
            4 => {
                let noise = NOISE[rng.below(NOISE.len())];
                let at = rng.below(lines[i].len() + 1);
                if lines[i].is_char_boundary(at) {
                    lines[i].insert_str(at, noise);
                }
            }
            5 => {
                // Re-indent: YAML structure errors.
                let spaces = " ".repeat(rng.below(6));
                lines[i] = format!("{spaces}{}", lines[i].trim_start());
            }
            _ => {
                let cut = rng.below(lines[i].len() + 1);
                if lines[i].is_char_boundary(cut) {
                    lines[i].truncate(cut);
                }
            }
        }
    }
    lines.join("\n")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|e| e == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Runs the compile path in-process; returns whether it produced SQL.
fn compile(root: &Path) -> bool {
    let (model, diags) = kpic::analyze_project(root, &mut NoCatalog);
    if diags.has_errors() {
        // Rendering the diagnostics must not panic either.
        let _ = kpic::diagnostics::render::human(&diags, &model.sources, false);
        let _ = kpic::diagnostics::render::json(&diags, &model.sources);
        return false;
    }
    let options = kpic::plan::PlanOptions {
        as_of: None,
        select: vec![],
        local_files: true,
    };
    match kpic::plan::plan_kpis(&model, &options) {
        Ok(plan) => {
            let sql = kpic::sql::plan_to_sql(&plan, &model, &kpic::sql::dialect::DuckDb);
            for t in kpic::sql::OUTPUT_TABLES {
                let q = sql.standalone(t).expect("every output table has a query");
                let text = q.to_string();
                sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::DuckDbDialect {}, &text)
                    .unwrap_or_else(|e| panic!("compiled SQL does not re-parse: {e}\n{text}"));
            }
            true
        }
        Err(_) => false,
    }
}

#[test]
fn mutated_definitions_never_panic() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli/init_template");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    copy_tree(&template, &root);
    let files = yaml_files(&root.join("models"));
    let originals: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(compile(&root), "the unmutated template compiles");
    let mut compiled = 0;
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let which = rng.below(files.len());
        for (f, text) in files.iter().zip(&originals) {
            std::fs::write(f, text).unwrap();
        }
        let mutated = mutate(&originals[which], &mut rng);
        std::fs::write(&files[which], &mutated).unwrap();
        let result = std::panic::catch_unwind(|| compile(&root));
        match result {
            Ok(true) => compiled += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "seed {seed}: kpic panicked on this {}:\n{mutated}",
                files[which].display()
            ),
        }
    }
    // Mutations keep some projects valid, so planning and SQL are exercised too.
    assert!(compiled > 10, "only {compiled} mutated projects compiled");
}
