//! load → model → semantic on any bytes (a model file, or several files:
//! see the harness, `fuzz/src/lib.rs`): diagnostics, rendered both ways,
//! and never a panic, a hang or unbounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kpic_fuzz::analyze(data);
});
