//! Voice menus (IVR) as a sans-IO library.
//!
//! - [`load`] reads a line's menu files (TOML under `config/ivr/`), checks them and the prompts
//!   they name, and gives a [`Menu`]; [`check`] gives only the problems, each as
//!   `path:line:col: message`.
//! - [`IvrSession`] walks one caller through a [`Menu`]: it takes digits, "playback finished" and
//!   timeouts with the current [`std::time::Instant`], and hands out [`Action`]s for the call path
//!   to carry out (play, stop, queue, transfer, callback, record, hang up) and to write to the
//!   call's appeal (path steps, category, variables). It never reads the clock.
//! - [`simulate`] drives a session on virtual time, as `hotlined simulate` does.
//!
//! Nothing here knows about sockets, RTP or SQL; the only I/O is reading the menu files and the
//! WAV prompts when a menu is loaded.

pub mod menu;
pub mod schedule;
pub mod session;
pub mod simulate;

use std::fmt;

pub use menu::{check, load, Context, Menu, Node, PromptRef};
pub use session::{Action, IvrSession, Outcome};

/// One problem in a menu file, located where the admin has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as it was given to [`load`].
    pub path: String,
    /// 1-based line (0 when the problem is about the whole file).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// Line and column (1-based) of a byte offset in a configuration text; the column counts
/// characters (what an editor shows for Cyrillic text too). Never panics, whatever the offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}
