//! The terminal `top` draws on, through crossterm (the Rust standard for terminal control:
//! raw keys, the alternate screen, resize events, styles; no C library needed). The screen
//! is redrawn whole, line by line, so it never scrolls; the terminal is restored when this
//! is dropped, on errors and panics included.

use anyhow::{bail, Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::style::{Attribute, Print, SetAttribute};
use crossterm::{cursor, execute, queue, terminal};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::keys::Key;
use crate::render::live::{Emphasis, ScreenLine};

/// What happened while waiting.
pub enum Input {
    Key(Key),
    Resized,
}

/// The terminal in raw mode on its alternate screen, cursor hidden.
pub struct Terminal {
    out: std::io::Stdout,
}

impl Terminal {
    /// Refuse early (before a program is started) when there is no terminal to draw on.
    pub fn check() -> Result<()> {
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            bail!(
                "top draws on a terminal, and its input or output is not one: run it in a \
                 terminal (`record` or `capture` profile without one)"
            );
        }
        Ok(())
    }

    pub fn open() -> Result<Terminal> {
        Terminal::check()?;
        terminal::enable_raw_mode().context("could not put the terminal in raw mode")?;
        let mut out = std::io::stdout();
        let term = Terminal {
            out: std::io::stdout(),
        };
        execute!(out, terminal::EnterAlternateScreen, cursor::Hide)
            .context("could not switch to the terminal's alternate screen")?;
        Ok(term)
    }

    /// Columns and rows.
    pub fn size(&self) -> (usize, usize) {
        terminal::size()
            .map(|(w, h)| (w as usize, h as usize))
            .unwrap_or((80, 24))
    }

    /// Draw `lines` from the top left, each line cleared to its end.
    pub fn draw(&mut self, lines: &[ScreenLine]) -> Result<()> {
        queue!(self.out, cursor::MoveTo(0, 0))?;
        for (i, line) in lines.iter().enumerate() {
            queue!(
                self.out,
                cursor::MoveTo(0, i as u16),
                terminal::Clear(terminal::ClearType::CurrentLine)
            )?;
            match line.emphasis {
                Emphasis::Plain => queue!(self.out, Print(&line.text))?,
                Emphasis::Heading => queue!(
                    self.out,
                    SetAttribute(Attribute::Reverse),
                    Print(&line.text),
                    SetAttribute(Attribute::Reset)
                )?,
                Emphasis::Warning => queue!(
                    self.out,
                    SetAttribute(Attribute::Bold),
                    Print(&line.text),
                    SetAttribute(Attribute::Reset)
                )?,
            }
        }
        queue!(
            self.out,
            terminal::Clear(terminal::ClearType::FromCursorDown)
        )?;
        self.out.flush()?;
        Ok(())
    }

    /// The next key or resize within `timeout`, if any.
    pub fn wait(&self, timeout: Duration) -> Result<Option<Input>> {
        if !event::poll(timeout)? {
            return Ok(None);
        }
        Ok(match event::read()? {
            Event::Resize(..) => Some(Input::Resized),
            Event::Key(k) if k.kind != KeyEventKind::Release => Some(Input::Key(match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
                KeyCode::Char(c) => Key::Char(c),
                KeyCode::Enter => Key::Enter,
                KeyCode::Esc => Key::Esc,
                KeyCode::Backspace => Key::Backspace,
                _ => Key::Other,
            })),
            _ => None,
        })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(
            self.out,
            SetAttribute(Attribute::Reset),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}
