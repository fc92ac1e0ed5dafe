mod cli;
mod common;
mod compile;
mod execute;
mod robustness;
mod diagnostics;
