//! `drover monit`: a live view of every worker (status, cpu, memory, restarts, health)
//! and the selected app's log tail, redrawn every second (ratatui + crossterm).
//!
//! What it costs: one `list` a second, and the log lines of one app, which a thread reads
//! from a follow stream into a bounded buffer. It sleeps in crossterm's event poll
//! between redraws, so an idle view wakes about once a second. q, Esc or Ctrl-C quit,
//! and the terminal is restored on every way out (also a panic).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::{DefaultTerminal, Frame};

use super::render;
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{Request, Response, Target, WorkerInfo, WorkerStatus};
use crate::sync::lock;

/// How often the view asks for the workers.
const REFRESH: Duration = Duration::from_secs(1);
/// Log lines kept for the selected app.
const LOG_LINES: usize = 500;

#[derive(Debug, Args)]
pub struct MonitArgs {}

pub fn run(_args: MonitArgs, home: &Path) -> Result<(), Error> {
    // Ask once before taking the terminal: no supervisor is an error on a normal screen.
    let first = workers(home)?;
    let mut terminal =
        ratatui::try_init().map_err(|e| Error::Failed(format!("cannot use the terminal: {e}")))?;
    let result = View::new(home, first).run(&mut terminal);
    ratatui::restore();
    result
}

fn workers(home: &Path) -> Result<Vec<WorkerInfo>, Error> {
    match Client::connect(home)?.call(&Request::List)? {
        Response::Workers { workers } => Ok(workers),
        other => Err(render::unexpected("workers", &other)),
    }
}

/// The log tail of one app, filled by a thread that follows its logs.
struct LogTail {
    app: String,
    lines: Arc<Mutex<VecDeque<String>>>,
    stop: Arc<AtomicBool>,
}

impl LogTail {
    fn follow(home: &Path, app: &str) -> LogTail {
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let stop = Arc::new(AtomicBool::new(false));
        let (home, name) = (home.to_path_buf(), app.to_owned());
        let (into, done) = (lines.clone(), stop.clone());
        std::thread::spawn(move || follow_logs(&home, &name, &into, &done));
        LogTail {
            app: app.to_owned(),
            lines,
            stop,
        }
    }
}

impl Drop for LogTail {
    fn drop(&mut self) {
        // The thread sees it at its next line; its connection closes with it.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn push(lines: &Mutex<VecDeque<String>>, line: String) {
    let mut lines = lock(lines);
    if lines.len() == LOG_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// The app's last lines from its files, then every new one, until `stop`.
fn follow_logs(home: &Path, app: &str, into: &Mutex<VecDeque<String>>, stop: &AtomicBool) {
    let Ok(mut client) = Client::connect(home) else {
        return;
    };
    let files = match client.call(&Request::Logs {
        target: Target::Name(app.to_owned()),
        more: Vec::new(),
        follow: true,
    }) {
        Ok(Response::LogFiles { files }) => files,
        _ => return,
    };
    for file in &files {
        if let Ok(Some(tail)) = super::logs::tail_file(&file.path, 20) {
            for line in tail {
                push(
                    into,
                    format!(
                        "{}#{} {}",
                        file.app,
                        file.instance,
                        String::from_utf8_lossy(&line)
                    ),
                );
            }
        }
    }
    // A timeout so a quiet app's thread still sees `stop`.
    let _ = client.set_timeout(Some(REFRESH));
    while !stop.load(Ordering::Relaxed) {
        match client.recv() {
            Ok(Some(Response::LogLine(line))) => {
                let mark = if line.stream == "err" { "!" } else { " " };
                push(
                    into,
                    format!("{}#{}{mark}{}", line.app, line.instance, line.message),
                );
            }
            Ok(Some(_)) | Ok(None) => return,
            Err(crate::ipc::client::ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

struct View {
    home: PathBuf,
    workers: Vec<WorkerInfo>,
    table: TableState,
    tail: Option<LogTail>,
    /// Why the last refresh failed (the supervisor went away), shown at the bottom.
    problem: Option<String>,
}

impl View {
    fn new(home: &Path, workers: Vec<WorkerInfo>) -> View {
        let mut table = TableState::default();
        if !workers.is_empty() {
            table.select(Some(0));
        }
        View {
            home: home.to_path_buf(),
            workers,
            table,
            tail: None,
            problem: None,
        }
    }

    fn run(mut self, terminal: &mut DefaultTerminal) -> Result<(), Error> {
        let mut next = Instant::now() + REFRESH;
        loop {
            self.follow_selected();
            terminal
                .draw(|frame| self.draw(frame))
                .map_err(|e| Error::Failed(format!("cannot draw: {e}")))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait).map_err(|e| Error::Failed(e.to_string()))? {
                match event::read().map_err(|e| Error::Failed(e.to_string()))? {
                    Event::Key(key) if key.kind == KeyEventKind::Press => {
                        let ctrl_c = key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL);
                        match key.code {
                            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                            _ if ctrl_c => return Ok(()),
                            KeyCode::Down | KeyCode::Char('j') => self.select(1),
                            KeyCode::Up | KeyCode::Char('k') => self.select(-1),
                            _ => {}
                        }
                    }
                    // A resize or another event: redraw now.
                    _ => {}
                }
                continue;
            }
            next = Instant::now() + REFRESH;
            match workers(&self.home) {
                Ok(workers) => {
                    self.problem = None;
                    self.workers = workers;
                    let last = self.workers.len().checked_sub(1);
                    let selected = self.table.selected().map(|i| last.map_or(0, |l| i.min(l)));
                    self.table.select(selected.or(last.map(|_| 0)));
                }
                Err(e) => self.problem = Some(e.to_string()),
            }
        }
    }

    fn select(&mut self, by: isize) {
        let Some(last) = self.workers.len().checked_sub(1) else {
            return;
        };
        let now = self.table.selected().unwrap_or(0) as isize;
        self.table
            .select(Some((now + by).clamp(0, last as isize) as usize));
    }

    fn selected_app(&self) -> Option<&str> {
        let i = self.table.selected()?;
        self.workers.get(i).map(|w| w.name.as_str())
    }

    /// Follows the selected app's logs (a new stream when the selection moved to
    /// another app).
    fn follow_selected(&mut self) {
        let app = self.selected_app().map(str::to_owned);
        if self.tail.as_ref().map(|t| &t.app) != app.as_ref() {
            self.tail = app.map(|app| LogTail::follow(&self.home, &app));
        }
    }

    fn draw(&mut self, frame: &mut Frame) {
        let [top, bottom, help] = Layout::vertical([
            Constraint::Percentage(55),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let header = Row::new([
            "id", "name", "mode", "pid", "status", "↺", "cpu", "mem", "health",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD));
        let rows = self.workers.iter().map(|w| {
            let status = Span::styled(w.status.to_string(), status_style(w.status));
            let health = match (&w.health, w.ready, w.status) {
                (Some(why), _, _) => Span::styled(why.clone(), Style::new().fg(Color::Red)),
                (None, true, _) => Span::styled("ready", Style::new().fg(Color::Green)),
                (None, false, WorkerStatus::Online | WorkerStatus::Launching) => {
                    Span::styled("not ready", Style::new().fg(Color::Yellow))
                }
                (None, false, _) => Span::raw("-"),
            };
            Row::new(vec![
                Line::from(w.id.to_string()),
                Line::from(format!("{}#{}", w.name, w.instance)),
                Line::from(w.mode.to_string()),
                Line::from(w.pid.map_or("-".into(), |p| p.to_string())),
                Line::from(status),
                Line::from(w.restarts.to_string()),
                Line::from(format!("{:.0}%", w.cpu)),
                Line::from(render::size(w.memory)),
                Line::from(health),
            ])
        });
        let widths = [
            Constraint::Length(4),
            Constraint::Min(10),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Min(8),
        ];
        let title = format!(" drover monit: {} workers ", self.workers.len());
        let table = Table::new(rows, widths)
            .header(header)
            .block(Block::new().borders(Borders::ALL).title(title))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
        frame.render_stateful_widget(table, top, &mut self.table);

        let (title, lines) = match &self.tail {
            Some(tail) => {
                let lines = lock(&tail.lines);
                let height = bottom.height.saturating_sub(2) as usize;
                let shown: Vec<Line> = lines
                    .iter()
                    .skip(lines.len().saturating_sub(height))
                    .map(|l| Line::from(l.clone()))
                    .collect();
                (format!(" {} logs ", tail.app), shown)
            }
            None => (" logs ".to_owned(), vec![Line::from("no app")]),
        };
        let logs = Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title));
        frame.render_widget(logs, bottom);
        let text = match &self.problem {
            Some(problem) => Span::styled(format!(" {problem}"), Style::new().fg(Color::Red)),
            None => Span::styled(
                " ↑/↓ select  q quit",
                Style::new().add_modifier(Modifier::DIM),
            ),
        };
        frame.render_widget(Paragraph::new(Line::from(text)), help);
    }
}

fn status_style(status: WorkerStatus) -> Style {
    let color = match status {
        WorkerStatus::Online => Color::Green,
        WorkerStatus::Launching | WorkerStatus::Waiting | WorkerStatus::Stopping => Color::Yellow,
        WorkerStatus::Errored => Color::Red,
        WorkerStatus::Stopped => Color::DarkGray,
    };
    Style::new().fg(color)
}
