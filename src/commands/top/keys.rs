//! What `top`'s keys do to the view: py-spy 0.4's keys (`1`–`4` sort, `L` lines, `R` reset,
//! `?` help, `Q`/Ctrl-C quit) and ours (`T` thread, `P` pause, `/` filter). Kept apart from
//! the terminal so each key's effect is plain state.

use crate::analyze::live::{LiveQuery, LiveSort};

/// A key, as far as `top` tells keys apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Backspace,
    /// Control-C (in raw mode it arrives as a key, not as a signal).
    Interrupt,
    Other,
}

/// What the screen must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Draw again with the new view.
    Redraw,
    /// Forget every count, then draw.
    Reset,
    /// Pausing starts (freeze what is shown) or ends.
    Pause(bool),
    Quit,
}

/// The view's state.
#[derive(Debug, Clone)]
pub struct ViewState {
    pub query: LiveQuery,
    pub paused: bool,
    pub help: bool,
    /// The filter being typed, while `/` is active.
    pub editing: Option<String>,
}

impl ViewState {
    pub fn new(lines: bool) -> ViewState {
        ViewState {
            query: LiveQuery {
                lines,
                sort: Some(LiveSort::OverallOwn),
                ..LiveQuery::default()
            },
            paused: false,
            help: false,
            editing: None,
        }
    }

    /// Apply `key`; `threads` is how many threads are known (for `T`).
    pub fn key(&mut self, key: Key, threads: usize) -> Action {
        if key == Key::Interrupt {
            return Action::Quit;
        }
        if let Some(text) = &mut self.editing {
            match key {
                Key::Char(c) if !c.is_control() => text.push(c),
                Key::Backspace => {
                    text.pop();
                }
                Key::Enter => {
                    self.query.filter = self.editing.take().unwrap_or_default();
                }
                Key::Esc => {
                    self.editing = None;
                    self.query.filter.clear();
                }
                _ => return Action::Nothing,
            }
            return Action::Redraw;
        }
        let Key::Char(c) = key else {
            return if key == Key::Esc && self.help {
                self.help = false;
                Action::Redraw
            } else {
                Action::Nothing
            };
        };
        match c.to_ascii_lowercase() {
            'q' => return Action::Quit,
            '1' => self.query.sort = Some(LiveSort::CurrentOwn),
            '2' => self.query.sort = Some(LiveSort::CurrentTotal),
            '3' => self.query.sort = Some(LiveSort::OverallOwn),
            '4' => self.query.sort = Some(LiveSort::OverallTotal),
            'l' => self.query.lines = !self.query.lines,
            'r' => return Action::Reset,
            '?' => self.help = !self.help,
            'x' => self.help = false,
            't' => {
                self.query.thread = match self.query.thread {
                    None if threads > 0 => Some(0),
                    Some(i) if i + 1 < threads => Some(i + 1),
                    _ => None,
                }
            }
            'p' => {
                self.paused = !self.paused;
                return Action::Pause(self.paused);
            }
            '/' => self.editing = Some(self.query.filter.clone()),
            _ => return Action::Nothing,
        }
        Action::Redraw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_the_view() {
        let mut v = ViewState::new(false);
        assert_eq!(v.key(Key::Char('1'), 2), Action::Redraw);
        assert_eq!(v.query.sort, Some(LiveSort::CurrentOwn));
        v.key(Key::Char('L'), 2);
        assert!(v.query.lines);
        // T: all, each thread, all again.
        let seen: Vec<Option<usize>> = (0..3)
            .map(|_| {
                v.key(Key::Char('t'), 2);
                v.query.thread
            })
            .collect();
        assert_eq!(seen, [Some(0), Some(1), None]);
        // A filter is typed, edited and kept; Esc while typing drops it.
        v.key(Key::Char('/'), 2);
        for c in "spinx".chars() {
            v.key(Key::Char(c), 2);
        }
        v.key(Key::Backspace, 2);
        assert_eq!(
            v.key(Key::Char('q'), 2),
            Action::Redraw,
            "q is text while typing"
        );
        v.key(Key::Backspace, 2);
        v.key(Key::Enter, 2);
        assert_eq!(
            (v.query.filter.as_str(), v.editing.is_none()),
            ("spin", true)
        );
        v.key(Key::Char('/'), 2);
        v.key(Key::Esc, 2);
        assert!(v.query.filter.is_empty());
        assert_eq!(v.key(Key::Char('p'), 2), Action::Pause(true));
        assert_eq!(v.key(Key::Char('P'), 2), Action::Pause(false));
        assert_eq!(v.key(Key::Char('r'), 2), Action::Reset);
        v.key(Key::Char('?'), 2);
        assert!(v.help);
        assert_eq!(v.key(Key::Char('Q'), 2), Action::Quit);
        assert_eq!(v.key(Key::Interrupt, 2), Action::Quit);
    }
}
