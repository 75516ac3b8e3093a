//! Load mode: many virtual UEs run the scenario's steps concurrently, started at a rate for a
//! duration, each with its own subscriber (IMSI start + i). Reports attempts, successes,
//! failures by reason and per-step latency percentiles, as a table and as JSON.
//!
//! A scenario with several UEs and no `load.ue` runs as virtual *groups*: group i plays every
//! UE, each with its own IMSI + i (so a caller and a callee per group, for calls).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::Error;
use crate::capture::Capture;
use crate::runner::{ReplayOptions, ReplayReport, Runner, start_ues};
use crate::scenario::Scenario;
use crate::scenario::model::UeSpec;
use crate::ue::EspHubs;

/// Load settings from the command line: `--ues N --rate R --duration D`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSettings {
    /// Most virtual UEs at once.
    pub ues: u32,
    /// Virtual UEs started per second.
    pub rate: f64,
    /// How long to keep starting them.
    pub duration: Duration,
}

/// Latency percentiles of one step, milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepLatency {
    /// The step (`1 register`).
    pub step: String,
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    /// Virtual UEs started.
    pub attempts: u64,
    /// Virtual UEs whose every step passed.
    pub successes: u64,
    /// Failed virtual UEs by reason (the first failed expectation, or a setup error).
    pub failures: BTreeMap<String, u64>,
    /// Per-step latency over the passed steps, in step order.
    pub latency: Vec<StepLatency>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Successful virtual UEs per second.
    pub rate_achieved: f64,
}

impl LoadReport {
    /// Total failures.
    pub fn failures_total(&self) -> u64 {
        self.failures.values().sum()
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "attempts {}  successes {}  failures {}  ({:.1} s, {:.1} successful UEs/s)\n",
            self.attempts,
            self.successes,
            self.failures_total(),
            self.seconds,
            self.rate_achieved
        );
        s.push_str(&format!(
            "{:<28} {:>8} {:>10} {:>10} {:>10}\n",
            "step", "count", "p50 ms", "p90 ms", "p99 ms"
        ));
        for l in &self.latency {
            s.push_str(&format!(
                "{:<28} {:>8} {:>10.1} {:>10.1} {:>10.1}\n",
                l.step, l.count, l.p50_ms, l.p90_ms, l.p99_ms
            ));
        }
        for (reason, n) in &self.failures {
            s.push_str(&format!("failure x{n}: {reason}\n"));
        }
        s
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

fn failure_class(msg: &str) -> String {
    // Group by the step keyword and the expectation, without per-UE details (timestamps,
    // Call-IDs, SPIs).
    let m = msg.split(" (line").next().unwrap_or(msg);
    let kw = m
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(':');
    let why = msg.split("failed: ").nth(1).unwrap_or(msg);
    let why: String = why.chars().take(120).collect();
    format!("{kw}: {why}")
        .split(" (registered for")
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn add_imsi(start: &str, i: u64) -> Option<String> {
    let width = start.len();
    let v: u64 = start.parse().ok()?;
    Some(format!("{:0width$}", v + i))
}

type Outcome = (Result<(), String>, Vec<(String, f64)>);

#[derive(Default)]
struct Agg {
    successes: u64,
    failures: BTreeMap<String, u64>,
    samples: BTreeMap<String, Vec<f64>>,
    order: Vec<String>,
}

impl Agg {
    fn add(&mut self, done: Result<Outcome, tokio::task::JoinError>) {
        let Ok((outcome, timings)) = done else {
            *self.failures.entry("task panicked".into()).or_default() += 1;
            return;
        };
        let passed = outcome.is_ok();
        match outcome {
            Ok(()) => self.successes += 1,
            Err(reason) => *self.failures.entry(reason).or_default() += 1,
        }
        let n = timings.len();
        for (k, (step, secs)) in timings.into_iter().enumerate() {
            // The failed step's time is not a latency sample.
            if !passed && k + 1 == n {
                continue;
            }
            if !self.order.contains(&step) {
                self.order.push(step.clone());
            }
            self.samples.entry(step).or_default().push(secs * 1000.0);
        }
    }
}

/// Runs the scenario in load mode.
pub async fn run_load(sc: Scenario, opts: &ReplayOptions) -> Result<ReplayReport, Error> {
    let spec = sc.load.clone();
    let settings = match (opts.load, &spec) {
        (Some(s), _) => s,
        (None, Some(l)) => LoadSettings {
            ues: l.ues,
            rate: l.rate,
            duration: l.duration,
        },
        (None, None) => {
            return Err(Error::Invalid {
                path: opts.scenario.clone(),
                line: 0,
                message: "load mode needs --ues/--rate/--duration or a `load` section".into(),
            });
        }
    };
    // The UEs each virtual run plays, with the IMSI its subscribers start at.
    let players: Vec<(String, UeSpec, Option<String>)> =
        match spec.as_ref().and_then(|l| l.ue.clone()) {
            Some(name) => {
                let template = sc.ues.get(&name).cloned().ok_or_else(|| Error::Invalid {
                    path: opts.scenario.clone(),
                    line: 0,
                    message: format!("load.ue {name:?} is not a UE of the scenario"),
                })?;
                let start = spec
                    .as_ref()
                    .and_then(|l| l.imsi_start.clone())
                    .or_else(|| template.imsi.clone());
                vec![(name, template, start)]
            }
            None if sc.ues.len() == 1 => sc
                .ues
                .iter()
                .map(|(n, u)| {
                    let start = spec
                        .as_ref()
                        .and_then(|l| l.imsi_start.clone())
                        .or_else(|| u.imsi.clone());
                    (n.clone(), u.clone(), start)
                })
                .collect(),
            None => sc
                .ues
                .iter()
                .map(|(n, u)| (n.clone(), u.clone(), u.imsi.clone()))
                .collect(),
        };
    let subscribers = u64::from(
        spec.as_ref()
            .and_then(|l| l.subscribers)
            .unwrap_or(settings.ues)
            .max(1),
    );
    let capture = match &opts.pcap {
        Some(p) => Some(Capture::create(p)?),
        None => None,
    };
    let hubs = Arc::new(EspHubs::new(capture.clone()));
    let sc = Arc::new(sc);
    let sem = Arc::new(Semaphore::new(settings.ues as usize));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / settings.rate.max(0.001));
    let mut next = Instant::now();
    let mut attempts: u64 = 0;
    let mut agg = Agg::default();
    while started.elapsed() < settings.duration {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let Ok(permit) = Arc::clone(&sem).acquire_owned().await else {
            break;
        };
        if started.elapsed() >= settings.duration {
            break;
        }
        let i = attempts;
        attempts += 1;
        let ues: BTreeMap<String, UeSpec> = players
            .iter()
            .map(|(name, template, imsi_start)| {
                let mut spec = template.clone();
                if let Some(start) = imsi_start {
                    spec.imsi = add_imsi(start, i % subscribers);
                    if template.impi.is_some() || template.impu.is_some() {
                        spec.impi = None;
                        spec.impu = None;
                    }
                }
                (name.clone(), spec)
            })
            .collect();
        let (sc, hubs, lab, store, capture) = (
            Arc::clone(&sc),
            Arc::clone(&hubs),
            opts.lab.clone(),
            opts.store.clone(),
            capture.clone(),
        );
        let group = players.len() as u32;
        tasks.spawn(async move {
            let _permit = permit;
            let slots = match start_ues(
                &ues,
                &lab,
                store.as_ref(),
                &hubs,
                capture.as_ref(),
                (i as u32).wrapping_mul(group),
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed,
            )
            .await
            {
                Ok(s) => s,
                Err(e) => return (Err(format!("setup: {e}")), Vec::new()),
            };
            let runner = Runner::new(lab, slots, sc.timeout, false);
            let r = runner.run_steps(&sc.steps, String::new()).await;
            let timings = runner
                .timings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            runner.shutdown().await;
            (r.map_err(|e| failure_class(&e.to_string())), timings)
        });
        while let Some(done) = tasks.try_join_next() {
            agg.add(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        agg.add(done);
    }
    let Agg {
        successes,
        failures,
        mut samples,
        order,
    } = agg;
    let latency = order
        .iter()
        .map(|step| {
            let mut v = samples.remove(step).unwrap_or_default();
            v.sort_by(f64::total_cmp);
            StepLatency {
                step: step.clone(),
                count: v.len(),
                p50_ms: percentile(&v, 50.0),
                p90_ms: percentile(&v, 90.0),
                p99_ms: percentile(&v, 99.0),
            }
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let report = LoadReport {
        attempts,
        successes,
        failures,
        latency,
        seconds,
        rate_achieved: successes as f64 / seconds.max(1e-9),
    };
    if opts.print_log {
        print!("{}", report.table());
    }
    let esp_keys = match &capture {
        Some(c) => c.finish()?,
        None => None,
    };
    let out = ReplayReport {
        name: sc.name.clone(),
        steps: Vec::new(),
        failure: (report.failures_total() > 0).then(|| {
            format!(
                "{} of {} virtual UEs failed",
                report.failures_total(),
                report.attempts
            )
        }),
        seconds,
        log: report.table().lines().map(str::to_owned).collect(),
        load: Some(report),
        pcap: opts.pcap.clone(),
        esp_keys,
    };
    if let Some(j) = &opts.junit {
        crate::runner::junit::write(j, &out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 90.0), 90.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn imsi_arithmetic_keeps_leading_zeros() {
        assert_eq!(
            add_imsi("001010000000009", 3).as_deref(),
            Some("001010000000012")
        );
    }
}
