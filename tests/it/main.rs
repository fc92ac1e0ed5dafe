mod cli;
mod common;
mod compile;
mod diagnostics;
mod docs;
mod execute;
mod explain;
mod robustness;
