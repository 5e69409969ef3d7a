use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::Ui;

/// A progress bar on stderr, hidden when stderr is not a terminal or with `-q`.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new(ui: &Ui, what: &str, total: usize) -> Progress {
        let bar = if ui.bars() {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} samples ({eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_owned());
        Progress(bar)
    }

    pub fn inc(&self) {
        self.0.inc(1);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
