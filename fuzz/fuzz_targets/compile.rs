//! The whole compile path on any bytes: diagnostics, or SQL for every
//! dialect in which every output table's SELECT and build.sql re-parse
//! with sqlparser's matching dialect (a statement that does not is a
//! panic, so a finding). Sources' files the input names but does not hold
//! are added empty (`analyze_with_data`), so mutated projects get as far
//! as SQL.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (model, diags) = kpic_fuzz::analyze_with_data(data);
    if !diags.has_errors() {
        kpic_fuzz::compile_all(&model);
    }
});
