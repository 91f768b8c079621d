//! Network namespaces and child processes removed when dropped, even when a test fails: the
//! guards of the `testbed` crate, which panic here instead of returning errors.

use std::ops::Deref;

pub use testbed::Child;

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    testbed::cmd::sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace with a name of its own (`PREFIX-PID-N`), deleted on drop.
pub struct Netns(testbed::Netns);

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        Netns(testbed::Netns::unique(prefix).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Runs `args` inside the namespace and returns its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        self.0.exec(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Deref for Netns {
    type Target = testbed::Netns;

    fn deref(&self) -> &testbed::Netns {
        &self.0
    }
}
