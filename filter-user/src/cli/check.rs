//! `dnsfilter check`: validates lists without touching the kernel.

use std::process::ExitCode;

use super::{EXIT_DATAERR, ListArgs};

/// Validate lists without touching the kernel: exit 0 when clean, 65 with `file:line: reason`
/// for every problem.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    lists: ListArgs,
    /// Capacity the lists must fit in.
    #[arg(long, default_value_t = 10_000_000)]
    capacity: usize,
}

pub fn run(a: Args) -> ExitCode {
    match a.lists.load() {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_DATAERR)
        }
        Ok(rules) => match crate::table::build(&rules, crate::table::random_seed(), 0, a.capacity) {
            Ok(b) => {
                println!("ok: {} entries from {} file(s)", b.header.entries, a.lists.lists.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_DATAERR)
            }
        },
    }
}
