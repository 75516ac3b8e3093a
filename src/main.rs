//! The `imslab` binary: command line, configuration loading and wiring of the functions.
//! It holds no protocol logic of its own.
#![forbid(unsafe_code)]

mod cli;
mod http;
mod lab;
mod logging;
mod replay;
mod subscriber;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the CSCFs and the HSS allocate and free many small buffers per message, across
/// threads; the system allocator cost about 14 % of registration CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("imslab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
