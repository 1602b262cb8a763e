//! [`Skipped`]: what a file holds that drover reads past (PM2 keys of
//! [`super::keys::Policy::Skip`], PM2's `deploy:` section), for the file's one warning.

use std::path::{Path, PathBuf};

/// The skipped keys of one file, in the order they first appear, with their lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    file: PathBuf,
    /// Key as spelled → the lines it is on (empty when lines are unknown: a file
    /// evaluated by node).
    keys: Vec<(String, Vec<usize>)>,
    /// `deploy:` was there: its line, when known.
    deploy: Option<Option<usize>>,
}

impl Skipped {
    pub(crate) fn new(file: &Path) -> Self {
        Skipped {
            file: file.to_path_buf(),
            ..Skipped::default()
        }
    }

    pub(crate) fn key(&mut self, key: &str, line: Option<usize>) {
        let lines = match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some((_, lines)) => lines,
            None => {
                self.keys.push((key.to_owned(), Vec::new()));
                &mut self.keys.last_mut().expect("just pushed").1
            }
        };
        lines.extend(line);
    }

    pub(crate) fn deploy(&mut self, line: Option<usize>) {
        self.deploy = Some(line);
    }

    /// Forget the lines (they would be lines of node's JSON, not of the file).
    pub(crate) fn without_lines(mut self) -> Self {
        for (_, lines) in &mut self.keys {
            lines.clear();
        }
        if let Some(line) = &mut self.deploy {
            *line = None;
        }
        self
    }

    /// The skipped keys, as spelled.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }

    /// The one warning for the file, or None when nothing was skipped:
    /// `eco.yaml: skipped PM2 keys drover does not use: max (line 7), vizion (lines 9,
    /// 15); deploy: (line 20) is for pm2 deploy`.
    pub fn warning(&self) -> Option<String> {
        let at = |lines: &[usize]| match lines {
            [] => String::new(),
            [one] => format!(" (line {one})"),
            many => {
                let list: Vec<String> = many.iter().map(usize::to_string).collect();
                format!(" (lines {})", list.join(", "))
            }
        };
        let deploy = self
            .deploy
            .map(|line| format!("deploy:{}", at(&line.into_iter().collect::<Vec<_>>())));
        let file = self.file.display();
        if self.keys.is_empty() {
            return deploy.map(|d| format!("{file}: skipped {d}, which is for pm2 deploy"));
        }
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|(k, lines)| format!("{k}{}", at(lines)))
            .collect();
        let s = if keys.len() == 1 { "" } else { "s" };
        let mut text = format!(
            "{file}: skipped PM2 key{s} drover does not use: {}",
            keys.join(", ")
        );
        if let Some(d) = deploy {
            text.push_str(&format!("; {d} is for pm2 deploy"));
        }
        Some(text)
    }
}
