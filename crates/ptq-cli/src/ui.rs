//! What goes to the terminal: messages on stderr at the chosen verbosity (DESIGN.md Decision 14).

use std::io::IsTerminal;
use std::sync::Mutex;

use ptq_pipeline::Events;

use crate::progress::Progress;

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

    /// A flag that was given but changes nothing in this run: `{flag} has no effect {why}`, where
    /// `why` starts with the reason ("with …", "without …") and says what happens instead.
    pub fn ignored(&self, flag: &str, why: &str) {
        self.warn(&format!("{flag} has no effect {why}"));
    }

    /// Whether progress bars may be drawn (never when stderr is not a terminal).
    pub fn bars(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// The pipeline's events on this terminal: warnings as `warning:` lines, stages as progress bars.
pub struct Terminal<'a> {
    ui: &'a Ui,
    bar: Mutex<Option<Progress>>,
}

impl<'a> Terminal<'a> {
    pub fn new(ui: &'a Ui) -> Self {
        Terminal { ui, bar: Mutex::new(None) }
    }
}

impl Events for Terminal<'_> {
    fn warn(&self, message: &str) {
        self.ui.warn(message);
    }

    fn started(&self, what: &str, total: usize) {
        *self.bar.lock().expect("no panic while drawing") = Some(Progress::new(self.ui, what, total));
    }

    fn advanced(&self) {
        if let Some(bar) = &*self.bar.lock().expect("no panic while drawing") {
            bar.inc();
        }
    }

    fn finished(&self) {
        if let Some(bar) = self.bar.lock().expect("no panic while drawing").take() {
            bar.finish();
        }
    }

    fn timed(&self, stage: &str, elapsed: std::time::Duration) {
        self.ui.detail(&format!("{stage}: {:.3} s", elapsed.as_secs_f64()));
    }
}
