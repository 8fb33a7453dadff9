//! Colours for text meant for the operator: severities (BLOCK, WARN, INFO) and what a step does
//! (reads, changes, destroys). On only when the text goes to a terminal, never with `NO_COLOR`;
//! `CLICOLOR_FORCE=1` forces them (for a pager that understands them, and for tests).
//!
//! `anstyle` (the clap project's style type) builds the escape codes and `anstyle-query` reads
//! the environment's conventions, so krun colours exactly when clap's own help does.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

/// Paints text, or leaves it plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    pub enabled: bool,
}

/// What a piece of text is, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Stops the run: a block finding, a failure, a destructive step.
    Danger,
    /// Needs attention: a warning, a change the run would make.
    Caution,
    /// For information.
    Note,
    /// Went well.
    Good,
    /// Less important: ids, positions, reads.
    Faint,
    /// Headings and names.
    Strong,
}

impl Paint {
    pub const PLAIN: Paint = Paint { enabled: false };

    /// Colours for text written to stdout.
    pub fn stdout() -> Self {
        Self::wanted(std::io::stdout().is_terminal())
    }

    /// Colours for text written to stderr.
    pub fn stderr() -> Self {
        Self::wanted(std::io::stderr().is_terminal())
    }

    fn wanted(terminal: bool) -> Self {
        let enabled = if anstyle_query::no_color() {
            false
        } else if anstyle_query::clicolor_force() {
            true
        } else {
            terminal && anstyle_query::clicolor() != Some(false)
        };
        Paint { enabled }
    }

    /// `text` in the colour of `tone`.
    pub fn paint(self, tone: Tone, text: impl std::fmt::Display) -> String {
        if !self.enabled {
            return text.to_string();
        }
        let style = style(tone);
        format!("{style}{text}{style:#}")
    }
}

fn style(tone: Tone) -> Style {
    let color = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match tone {
        Tone::Danger => color(AnsiColor::Red).bold(),
        Tone::Caution => color(AnsiColor::Yellow),
        Tone::Note => color(AnsiColor::Cyan),
        Tone::Good => color(AnsiColor::Green),
        Tone::Faint => Style::new().dimmed(),
        Tone::Strong => Style::new().bold(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_stays_plain() {
        assert_eq!(Paint::PLAIN.paint(Tone::Danger, "BLOCK"), "BLOCK");
        let red = Paint { enabled: true }.paint(Tone::Danger, "BLOCK");
        assert_eq!(red, "\u{1b}[1m\u{1b}[31mBLOCK\u{1b}[0m");
    }
}
