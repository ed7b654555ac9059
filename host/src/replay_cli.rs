//! `powerplug replay`: reads a recording, replays it through one or two
//! strategies with a progress bar, prints the comparison, draws the chart.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::replay::{compare, recording, replay};
use crate::strategy::{GridStrategy, Loaded, Runtime};

pub struct Options {
    pub strategy: PathBuf,
    pub against: Option<PathBuf>,
    pub input: PathBuf,
    pub slot: String,
    pub top: usize,
    pub chart: Option<PathBuf>,
}

fn load(runtime: &Runtime, path: &PathBuf, flag: &str) -> anyhow::Result<GridStrategy> {
    let bytes = std::fs::read(path).with_context(|| format!("{flag}: {}", path.display()))?;
    match runtime
        .load(&bytes)
        .with_context(|| format!("{flag}: {}", path.display()))?
    {
        Loaded::Grid(g) => Ok(g),
        Loaded::Producer(_) => anyhow::bail!("{flag}: {} is a producer strategy", path.display()),
    }
}

/// A progress bar on a terminal, a line per tenth otherwise.
struct Bar {
    label: String,
    total: usize,
    started: Instant,
    tty: bool,
    shown: usize,
}

impl Bar {
    fn new(label: &str, total: usize) -> Self {
        Self {
            label: label.to_owned(),
            total: total.max(1),
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            shown: 0,
        }
    }

    fn set(&mut self, done: usize) {
        let tenth = done * 10 / self.total;
        if !self.tty && tenth == self.shown && done < self.total {
            return;
        }
        self.shown = tenth;
        let filled = done * 30 / self.total;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "{} [{}{}] {done}/{} ticks, {rate:.0} ticks/s",
            self.label,
            "#".repeat(filled),
            ".".repeat(30 - filled),
            self.total
        );
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
        if self.tty && done >= self.total {
            let _ = writeln!(err);
        }
    }
}

pub fn run(options: &Options, runtime: &Runtime) -> anyhow::Result<()> {
    let o = options;
    let (records, known) = recording::read_named(&o.input, &o.slot)?;
    anyhow::ensure!(
        !records.is_empty(),
        "--input: no recorded grid ticks in slot `{}` of {}",
        o.slot,
        o.input.display()
    );
    let a = load(runtime, &o.strategy, "--strategy")?;
    let b = o
        .against
        .as_ref()
        .map(|p| load(runtime, p, "--against"))
        .transpose()?;
    let mut bar = Bar::new("A", records.len());
    let ra = replay(&a, &records, None, &mut |n| bar.set(n))?;
    let rb = match &b {
        Some(b) => {
            let mut bar = Bar::new("B", records.len());
            Some(replay(b, &records, None, &mut |n| bar.set(n))?)
        }
        None => None,
    };
    println!(
        "A = {} ({}…){}",
        o.strategy.display(),
        &ra.sha256.short(),
        rb.as_ref().map_or(String::new(), |r| format!(
            "\nB = {} ({}…)",
            o.against
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            &r.sha256.short()
        ))
    );
    let mut names = compare::names(&records);
    names.extend(known);
    print!("{}", compare::table(&ra, rb.as_ref(), &names, o.top));
    for (label, r) in [("A", Some(&ra)), ("B", rb.as_ref())] {
        let Some(r) = r.filter(|r| r.comparable > r.reproduced) else {
            continue;
        };
        if r.comparable == r.ticks {
            // It was live throughout: it must decide as it did.
            eprintln!(
                "warning: {label} was live for the whole recording but decided {} of {} ticks differently (first: tick {})",
                r.comparable - r.reproduced,
                r.comparable,
                r.first_mismatch.unwrap_or(0)
            );
        } else {
            eprintln!(
                "note: {label} was live for {} of {} ticks, on books another version had built; replayed from the start on its own books, it decides differently",
                r.comparable, r.ticks
            );
        }
    }
    if let Some(path) = &o.chart {
        let mut runs = vec![("A", &ra)];
        if let Some(rb) = &rb {
            runs.push(("B", rb));
        }
        std::fs::write(path, compare::chart(&runs))
            .with_context(|| format!("--chart: {}", path.display()))?;
        eprintln!("chart: {}", path.display());
    }
    Ok(())
}
