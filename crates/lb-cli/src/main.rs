//! `lb`: the admin client, offline tools and the RESP ring server. Parsing and dispatch
//! live in the library's [`cmd`](lb_cli::cmd) module.

use std::process::ExitCode;

use clap::Parser;
use lb_cli::cmd::{run, Cli};

fn main() -> ExitCode {
    run(Cli::parse())
}
