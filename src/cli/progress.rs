//! The progress line of long commands on stderr: redrawn in place on a terminal (at most every
//! 200 ms), one plain line every 5 s otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct ProgressLine {
    interactive: bool,
    every: Duration,
    last: Instant,
    shown: bool,
}

impl ProgressLine {
    pub fn new() -> ProgressLine {
        let interactive = std::io::stderr().is_terminal();
        let every = if interactive { Duration::from_millis(200) } else { Duration::from_secs(5) };
        ProgressLine { interactive, every, last: Instant::now(), shown: false }
    }

    /// Shows the line `line` makes, unless one was shown less than the interval ago (`last`:
    /// the final state, shown whenever).
    pub fn show(&mut self, last: bool, line: impl FnOnce() -> String) {
        if !last && self.last.elapsed() < self.every {
            return;
        }
        let line = line();
        if self.interactive {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
        self.last = Instant::now();
        self.shown = true;
    }

    /// Ends a line redrawn in place.
    pub fn finish(&self) {
        if self.interactive && self.shown {
            eprintln!();
        }
    }
}
