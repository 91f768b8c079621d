//! Running commands: their output as text, a failure as a message that names the command.

use std::{
    fs::OpenOptions,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Command, Output, Stdio},
};

use crate::Result;

/// The command as a shell-like string, for headers and errors.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| {
            let s = s.to_string_lossy();
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", s.replace('\'', r"'\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` (stdin closed, in a process group of its own, so that Ctrl-C reaches only the
/// caller) and returns what it printed, whatever its exit status; fails only when it cannot be
/// started.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).process_group(0).output().map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))
}

/// Runs `cmd` and returns its stdout; fails, with its output, unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = capture(cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}{}",
            display(cmd),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(stdout)
}

/// Runs `args[0]` with the other arguments, as [`run`].
pub fn sh(args: &[&str]) -> Result<String> {
    let (program, rest) = args.split_first().ok_or("sh: no command")?;
    run(Command::new(program).args(rest))
}

/// Appends stdout and stderr of `cmd` to `log`, stdin closed.
pub fn log_to(cmd: &mut Command, log: &Path) -> Result<()> {
    let file =
        OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("open {}: {e}", log.display()))?;
    let copy = file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(copy).stderr(file);
    Ok(())
}
