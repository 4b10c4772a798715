//! Progress of long phases: a bar on a terminal, tracing events otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use proofs::sdr::layers::Progress;
use std::io::IsTerminal;

/// Turns the proof core's progress callbacks into something an operator sees.
pub struct Reporter {
    bar: Option<ProgressBar>,
    current: Option<(proofs::sdr::layers::ProgressPhase, Option<u32>)>,
    last_percent: u64,
}

impl Reporter {
    /// A bar when stderr is a terminal, else log lines every 10%.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, current: None, last_percent: 0 }
    }

    /// Reports one progress event.
    pub fn report(&mut self, p: Progress) {
        let key = (p.phase, p.layer);
        let label = match p.layer {
            Some(l) => format!("{} {l}", p.phase),
            None => p.phase.to_string(),
        };
        if self.current != Some(key) {
            self.current = Some(key);
            self.last_percent = 0;
            if let Some(bar) = &self.bar {
                bar.reset();
                bar.set_length(p.total);
                bar.set_message(label.clone());
            }
        }
        match &self.bar {
            Some(bar) => bar.set_position(p.done),
            None => {
                let percent = p.done * 100 / p.total.max(1);
                if percent >= self.last_percent + 10 || p.done == p.total {
                    self.last_percent = percent;
                    tracing::info!(
                        phase = p.phase.name(),
                        layer = p.layer,
                        done = p.done,
                        total = p.total,
                        "{label}: {percent}%"
                    );
                }
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}
