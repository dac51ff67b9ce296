//! Query-latency probes for `make bench` (driven by bench/run.py): the same dashboard queries
//! in-process against the embedded store, and over HTTP against `tally serve` from this separate
//! process on one keep-alive connection. Prints one JSON object per query shape.
//!
//! `ceiling` measures the physical limit of ingest's work on this machine: reading an NDJSON file
//! and only splitting it into lines, or also parsing every line as JSON (serde_json, building
//! nothing), single-threaded; run.py divides the lines by the process's CPU time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand};
use tally::rollup::Catalog;
use tally::runtime::parse_reporting_tz;
use tally::runtime::Local;
use tally::serve::{QueryOptions, QueryParams};

#[derive(Parser)]
struct Cli {
    /// Last day of the ranges (exclusive), YYYY-MM-DD.
    #[arg(long)]
    end: NaiveDate,
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Queries through `QueryService` on the embedded store in `--data`.
    InProcess {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "UTC")]
        reporting_tz: String,
    },
    /// Queries over HTTP to a running `tally serve`.
    Http {
        #[arg(long)]
        addr: String,
    },
    /// Reads `file` as ingest does (32 MiB chunks) and only splits it into lines (`lines`), or also
    /// parses each line as JSON (`json`); prints the number of lines (and of JSON values).
    Ceiling {
        #[arg(value_parser = ["lines", "json"])]
        work: String,
        file: PathBuf,
    },
}

/// Lines of `file`, and how many parse as JSON when `parse` (the rest are the file's malformed lines).
fn ceiling(file: &std::path::Path, parse: bool) -> Result<(u64, u64)> {
    let mut input = std::fs::File::open(file).with_context(|| file.display().to_string())?;
    let mut buf = vec![0u8; 32 << 20];
    let (mut filled, mut lines, mut values) = (0, 0u64, 0u64);
    loop {
        let n = input.read(&mut buf[filled..])?;
        filled += n;
        let done = n == 0;
        if !done && filled < buf.len() {
            continue;
        }
        // Whole lines only, until the end of the file.
        let cut = match memchr::memrchr(b'\n', &buf[..filled]) {
            Some(i) if !done => i + 1,
            _ => filled,
        };
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &buf[..cut]).chain([cut]) {
            let line = &buf[start..end.max(start)];
            start = end + 1;
            if line.is_empty() {
                continue;
            }
            lines += 1;
            if parse && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
                values += 1;
            }
        }
        buf.copy_within(cut..filled, 0);
        filled -= cut;
        if done {
            return Ok((lines, values));
        }
    }
}

/// A dashboard query: revenue by day over `days`, plain, filtered, or grouped.
struct Shape {
    days: i64,
    kind: &'static str,
    params: QueryParams,
}

fn shapes(end: NaiveDate) -> Vec<Shape> {
    let mut out = Vec::new();
    for days in [7, 30, 90] {
        let from = end - chrono::Duration::days(days);
        let base = QueryParams {
            metric: "revenue".into(),
            from: Some(from.to_string()),
            to: Some(end.to_string()),
            interval: Some("day".into()),
            ..Default::default()
        };
        out.push(Shape {
            days,
            kind: "plain",
            params: base.clone(),
        });
        out.push(Shape {
            days,
            kind: "filter country=KR",
            params: QueryParams {
                filters: vec![("country".into(), "KR".into())],
                ..base.clone()
            },
        });
        out.push(Shape {
            days,
            kind: "group_by item_id",
            params: QueryParams {
                group_by: Some("item_id".into()),
                ..base
            },
        });
    }
    out
}

fn path_of(p: &QueryParams) -> String {
    let mut q = format!(
        "/v1/metrics/{}?from={}&to={}&interval={}",
        p.metric,
        p.from.as_deref().unwrap_or_default(),
        p.to.as_deref().unwrap_or_default(),
        p.interval.as_deref().unwrap_or_default()
    );
    for (k, v) in &p.filters {
        q.push_str(&format!("&{k}={v}"));
    }
    if let Some(g) = &p.group_by {
        q.push_str(&format!("&group_by={g}"));
    }
    q
}

fn report(where_: &str, shape: &Shape, mut samples: Vec<Duration>) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{}",
        serde_json::json!({
            "where": where_,
            "range_days": shape.days,
            "shape": shape.kind,
            "n": samples.len(),
            "p50_us": at(0.50).as_micros() as u64,
            "p99_us": at(0.99).as_micros() as u64,
        })
    );
}

/// One GET on a keep-alive HTTP/1.1 connection; returns the status and body length.
fn get(conn: &mut BufReader<TcpStream>, path: &str) -> Result<(u16, usize)> {
    write!(
        conn.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"
    )?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut length = None;
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.trim().parse::<usize>()?);
            }
        }
    }
    let length = length.context("the server sent no content-length")?;
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    Ok((status, length))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let warmup = (cli.iterations / 10).max(5);
    match cli.command {
        Command::InProcess { data, reporting_tz } => {
            let tz = parse_reporting_tz("--reporting-tz", &reporting_tz)?;
            let local = Local::open(&data, Catalog::builtin(), tz)?;
            let service = local.query_service(QueryOptions::default());
            let now = Utc::now();
            for shape in shapes(cli.end) {
                let mut samples = Vec::with_capacity(cli.iterations);
                for i in 0..warmup + cli.iterations {
                    let started = Instant::now();
                    let answer = service.query(&shape.params, now).await?;
                    let took = started.elapsed();
                    if answer.series.is_empty() {
                        bail!("{} gave an empty series", path_of(&shape.params));
                    }
                    if i >= warmup {
                        samples.push(took);
                    }
                }
                report("in-process", &shape, samples);
            }
        }
        Command::Http { addr } => {
            let stream =
                TcpStream::connect(&addr).with_context(|| format!("cannot connect to {addr}"))?;
            stream.set_nodelay(true)?;
            let mut conn = BufReader::new(stream);
            for shape in shapes(cli.end) {
                let path = path_of(&shape.params);
                let mut samples = Vec::with_capacity(cli.iterations);
                for i in 0..warmup + cli.iterations {
                    let started = Instant::now();
                    let (status, _) = get(&mut conn, &path)?;
                    let took = started.elapsed();
                    if status != 200 {
                        bail!("{path} answered {status}");
                    }
                    if i >= warmup {
                        samples.push(took);
                    }
                }
                report("http", &shape, samples);
            }
        }
        Command::Ceiling { work, file } => {
            let (lines, values) = ceiling(&file, work == "json")?;
            println!(
                "{}",
                serde_json::json!({"lines": lines, "json_values": values})
            );
        }
    }
    Ok(())
}
