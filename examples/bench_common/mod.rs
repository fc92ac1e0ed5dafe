//! Helpers the benchmark examples share (`explain_speed`, `run_speed`,
//! `metricflow_exec`): argument parsing of row counts, finding the cargo
//! target dir and the kpic binary, medians, and DuckDB profile reading.
//! Included by each with `#[path = "bench_common/mod.rs"] mod bench_common;`
//! (a directory without `main.rs` is not an example of its own).

// Each example uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

type Error = Box<dyn std::error::Error>;

pub fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    let (digits, scale) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1_000),
        'm' | 'M' => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

pub fn size_label(n: u64) -> String {
    if n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{}K", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The cargo target dir this example was built into (`<target>/release/
/// examples/<name>`), else `$CARGO_TARGET_DIR`, else the project's
/// fixed one.
pub fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(examples) = exe.parent()
        && examples.file_name().is_some_and(|n| n == "examples")
        && let Some(target) = examples.parent().and_then(Path::parent)
    {
        return target.to_path_buf();
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    home_cache_target()
}

pub fn home_cache_target() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/kpic-target")
}

pub fn find_kpic(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(std::path::absolute(p)?)
        } else {
            Err(format!("--kpic {}: no such file", p.display()).into())
        };
    }
    let mut candidates = Vec::new();
    // Next to this example: <target>/release/examples/<name>.
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile.join("kpic"));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release/kpic"));
    }
    candidates.push(home_cache_target().join("release/kpic"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no kpic binary among {}; run `cargo build --release` or pass --kpic PATH",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()
        })
}

pub fn sql_string(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "''"))
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn fmt_times(v: &[f64]) -> String {
    v.iter()
        .map(|s| format!("{s:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Top operators of the last profiled statement (DuckDB's JSON profile).
pub fn top_operators(profile: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(profile) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut ops: Vec<(f64, String)> = Vec::new();
    fn walk(node: &serde_json::Value, ops: &mut Vec<(f64, String)>) {
        let timing = node["timing"].as_f64().unwrap_or(0.0);
        let name = node["name"]
            .as_str()
            .or(node["type"].as_str())
            .unwrap_or("?");
        if timing > 0.0 {
            let rows = node["intermediate_rows"].as_u64().unwrap_or(0);
            let mut info = node["extra_info"].to_string();
            if info.len() > 140 {
                let cut = (0..=140)
                    .rev()
                    .find(|i| info.is_char_boundary(*i))
                    .unwrap_or(0);
                info.truncate(cut);
                info.push('…');
            }
            ops.push((timing, format!("{name} ({rows} rows) {info}")));
        }
        if let Some(children) = node["children"].as_array() {
            for c in children {
                walk(c, ops);
            }
        }
    }
    if let Some(roots) = json["operator"].as_array() {
        for r in roots {
            walk(r, &mut ops);
        }
    } else {
        walk(&json, &mut ops);
    }
    ops.sort_by(|a, b| b.0.total_cmp(&a.0));
    ops.into_iter()
        .take(n)
        .map(|(t, s)| format!("{t:>7.3} s  {s}"))
        .collect()
}

pub fn kpic_error(d: &kpic::diagnostics::Diagnostics) -> Error {
    format!(
        "kpic failed: {:?}",
        d.iter().map(|x| x.message.clone()).collect::<Vec<_>>()
    )
    .into()
}

/// `--flag=value` → (`--flag`, Some(`value`)); anything else → (it, None).
pub fn split_flag(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
        _ => (arg.to_string(), None),
    }
}
