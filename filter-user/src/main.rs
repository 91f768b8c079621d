//! `dnsfilter`: the XDP DNS filter's command-line tool.
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`dnsfilter status | head`), as command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    filter_user::cli::Cli::parse().run()
}
