//! Query-latency probes for `make bench` (driven by bench/run.py): the same dashboard queries
//! in-process against the embedded store, and over HTTP against `tally serve` from this separate
//! process on one keep-alive connection. Prints one JSON object per query shape.

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
    }
    Ok(())
}
