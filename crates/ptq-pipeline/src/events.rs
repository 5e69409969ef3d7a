//! What the stages say while they run. The library only reports; a front end (the CLI's
//! progress bars and warnings, or nothing in a test) decides what to show.

/// Progress and warnings of the running stages. Called from worker threads, hence `Sync`.
pub trait Events: Sync {
    /// Something the user should know that does not stop the run.
    fn warn(&self, message: &str);
    /// A stage over `total` samples starts (`what`: "calibrating", "simulating").
    fn started(&self, _what: &str, _total: usize) {}
    /// One more sample of the current stage is done.
    fn advanced(&self) {}
    /// The current stage is done.
    fn finished(&self) {}
    /// A stage took `elapsed`.
    fn timed(&self, _stage: &str, _elapsed: std::time::Duration) {}
}

/// Events nobody listens to.
pub struct Silent;

impl Events for Silent {
    fn warn(&self, _message: &str) {}
}
