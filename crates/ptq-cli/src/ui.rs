//! What goes to the terminal: messages on stderr at the chosen verbosity (DESIGN.md Decision 14).

use std::io::IsTerminal;

pub struct Ui {
    pub verbose: u8,
    pub quiet: bool,
}

impl Ui {
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            eprintln!("warning: {msg}");
        }
    }

    /// Whether progress bars may be drawn (never when stderr is not a terminal).
    pub fn bars(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}
