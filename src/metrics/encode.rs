//! A [`Snapshot`] → the text of one scrape, through prometheus-client's encoders: the
//! Prometheus text format (0.0.4), or OpenMetrics 1.0 for a scraper that asks for it.
//! Values are taken at the scrape (a collector of constant metrics), not kept in the
//! crate's registry between scrapes: the supervisor already holds every figure.

use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Snapshot;
use crate::protocol::RestartCauses;

/// The two text formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// Prometheus text 0.0.4: what `curl` gets, and any scraper that does not ask.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper whose Accept prefers it (Prometheus does).
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it names it with a
    /// weight above 0 and not below text/plain's.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let weight = |wanted: &str| -> Option<f32> {
            accept
                .split(',')
                .filter_map(|range| {
                    let mut params = range.split(';').map(str::trim);
                    let kind = params.next()?;
                    kind.eq_ignore_ascii_case(wanted).then(|| {
                        params
                            .find_map(|p| p.strip_prefix("q="))
                            .and_then(|q| q.parse::<f32>().ok())
                            .unwrap_or(1.0)
                    })
                })
                .reduce(f32::max)
        };
        match (weight("application/openmetrics-text"), weight("text/plain")) {
            (Some(open), plain) if open > 0.0 && open >= plain.unwrap_or(0.0) => {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }
}

/// What one scrape reports: the snapshot, each worker's open fds, the supervisor's own.
#[derive(Debug)]
pub(super) struct Scrape {
    pub snapshot: Snapshot,
    /// Open fds of each worker of the snapshot, in its order (0 without a process).
    pub open_fds: Vec<u64>,
    pub supervisor: Supervisor,
}

/// The supervisor process's own figures.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Supervisor {
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    pub open_fds: u64,
    pub started: Option<SystemTime>,
}

impl Scrape {
    pub fn encode(self, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        let encoded = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry),
        };
        // Writing to a String does not fail; an encoder error would be a bug here.
        if let Err(e) = encoded {
            tracing::error!("metrics: cannot encode: {e}");
        }
        text
    }
}

/// One family: name, help, type, and its samples (label set, value).
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
    M: EncodeMetric,
{
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn flag(b: bool) -> ConstGauge<i64> {
    ConstGauge::new(i64::from(b))
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let workers = &self.snapshot.workers;
        let worker = |w: &super::WorkerSample| {
            vec![
                ("app", w.app.to_string()),
                ("app_instance", w.instance.to_string()),
                ("id", w.id.to_string()),
            ]
        };
        let gauge = MetricType::Gauge;
        let counter = MetricType::Counter;
        family(
            &mut e,
            "drover_worker_up",
            "1 while the worker is online",
            gauge,
            workers.iter().map(|w| (worker(w), flag(w.up))),
        )?;
        family(
            &mut e,
            "drover_worker_ready",
            "1 while the worker takes new connections (ready, and not being replaced for its health)",
            gauge,
            workers.iter().map(|w| (worker(w), flag(w.ready))),
        )?;
        family(
            &mut e,
            "drover_worker_healthy",
            "1 while the worker has a process whose health check or watchdog has not failed",
            gauge,
            workers.iter().map(|w| (worker(w), flag(w.healthy))),
        )?;
        family(
            &mut e,
            "drover_worker_cpu_seconds",
            "CPU time of the worker's process tree, sampled every 5 s (every second with max_memory_restart); from 0 again for a new process",
            counter,
            workers
                .iter()
                .map(|w| (worker(w), ConstCounter::new(w.cpu_seconds))),
        )?;
        family(
            &mut e,
            "drover_worker_resident_memory_bytes",
            "Resident memory of the worker's whole process tree, sampled as its CPU time",
            gauge,
            workers
                .iter()
                .map(|w| (worker(w), ConstGauge::new(w.memory_bytes as i64))),
        )?;
        family(
            &mut e,
            "drover_worker_open_fds",
            "File descriptors the worker's process has open, counted at the scrape",
            gauge,
            workers
                .iter()
                .zip(&self.open_fds)
                .map(|(w, fds)| (worker(w), ConstGauge::new(*fds as i64))),
        )?;
        family(
            &mut e,
            "drover_worker_restarts",
            "Replacements of the worker by cause (their sum is the restarts drover list shows; drover reset sets them to 0)",
            counter,
            workers.iter().flat_map(|w| {
                let RestartCauses {
                    crash,
                    memory,
                    health,
                    reload,
                    restart,
                } = w.restarts;
                [
                    ("crash", crash),
                    ("memory", memory),
                    ("health", health),
                    ("reload", reload),
                    ("restart", restart),
                ]
                .map(|(cause, n)| {
                    let mut labels = worker(w);
                    labels.push(("cause", cause.to_owned()));
                    (labels, ConstCounter::new(u64::from(n)))
                })
            }),
        )?;
        let apps = &self.snapshot.apps;
        family(
            &mut e,
            "drover_app_log_lines",
            "Lines the app's workers wrote, by stream (out, err), as the supervisor read them",
            counter,
            apps.iter().flat_map(|a| {
                [("out", a.lines_out), ("err", a.lines_err)].map(|(stream, n)| {
                    (
                        vec![("app", a.name.to_string()), ("stream", stream.to_owned())],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut e,
            "drover_app_log_lines_dropped",
            "Lines that could not be written to the app's log files (disk full and the like)",
            counter,
            apps.iter().map(|a| {
                (
                    vec![("app", a.name.to_string())],
                    ConstCounter::new(a.lines_dropped),
                )
            }),
        )?;
        let own = self.supervisor;
        let none: Vec<(&str, String)> = Vec::new();
        family(
            &mut e,
            "process_cpu_seconds",
            "CPU time of the drover supervisor itself",
            counter,
            [(none.clone(), ConstCounter::new(own.cpu_seconds))],
        )?;
        family(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory of the drover supervisor itself",
            gauge,
            [(none.clone(), ConstGauge::new(own.memory_bytes as i64))],
        )?;
        family(
            &mut e,
            "process_open_fds",
            "File descriptors the drover supervisor has open",
            gauge,
            [(none.clone(), ConstGauge::new(own.open_fds as i64))],
        )?;
        if let Some(since) = own
            .started
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        {
            family(
                &mut e,
                "process_start_time_seconds",
                "When the drover supervisor started, in seconds since the epoch",
                gauge,
                [(none.clone(), ConstGauge::new(since.as_secs_f64()))],
            )?;
        }
        family(
            &mut e,
            "drover_build_info",
            "1, labelled with the version of drover serving these metrics",
            gauge,
            [(
                vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
                ConstGauge::new(1i64),
            )],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_the_scraper_prefers_it() {
        let cases: &[(Option<&str>, Format)] = &[
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            // Prometheus 2.x's default.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.2, text/plain;q=0.5"),
                Format::Prometheus,
            ),
            (
                Some("application/openmetrics-text; q=0"),
                Format::Prometheus,
            ),
            (Some("APPLICATION/OPENMETRICS-TEXT"), Format::OpenMetrics),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::from_accept(*accept), *want, "{accept:?}");
        }
    }
}
