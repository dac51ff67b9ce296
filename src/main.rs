//! The `tally` command: the whole pipeline on one machine, no cloud account needed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand};
use serde::Serialize;

use tally::ingest::{self, IngestSummary};
use tally::model::{Receipt, DEFAULT_MAX_EVENT_AGE_DAYS};
use tally::rollup::Catalog;
use tally::rollup::{run_job, Job, JobReport};
use tally::runtime::parse_reporting_tz;
use tally::runtime::Local;
use tally::serve::{self, ApiOptions, CorsOrigin, SignIn};
use tally::serve::{QueryOptions, QueryParams, DEFAULT_MAX_RANGE_DAYS};
use tally::tools::demo::{self, DemoSpec};

#[derive(Parser)]
#[command(
    name = "tally",
    version,
    about = "Product events in, admin-dashboard numbers out."
)]
struct Cli {
    /// Directory holding the event lake and the period store.
    #[arg(
        long,
        global = true,
        env = "TALLY_DATA_DIR",
        default_value = "tally-data"
    )]
    data: PathBuf,
    /// Zone whose days and months the rollup stores (whole-hour offsets only).
    #[arg(
        long = "reporting-tz",
        global = true,
        env = "TALLY_REPORTING_TZ",
        default_value = "UTC"
    )]
    reporting_tz: String,
    /// The working copy of metric SQL files for the `sql` commands (default: `./sql` when it
    /// exists, else the definitions built into this binary). Everything else reads the catalog
    /// deployed into the lake with `tally sql deploy`.
    #[arg(long, global = true, env = "TALLY_SQL_DIR")]
    sql: Option<PathBuf>,
    /// MiB of event files one piece of rollup work reads: its memory is about ten times that.
    /// A larger hour is computed in shards (default 32).
    #[arg(long = "shard-mb", global = true, env = "TALLY_SHARD_MB", value_parser = tally::runtime::parse_mib)]
    shard_mb: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest NDJSON events from files, or from standard input when none are given.
    Ingest {
        files: Vec<PathBuf>,
        /// Events that happened more than this many days before they arrive are quarantined.
        #[arg(long, env = "TALLY_MAX_EVENT_AGE_DAYS", default_value_t = DEFAULT_MAX_EVENT_AGE_DAYS)]
        max_event_age_days: i64,
        /// Chunks of 32 MiB parsed and written at once (default: one per core).
        #[arg(long, env = "TALLY_INGEST_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
    },
    /// Recompute the hours touched since the last run, and their days and months.
    Rollup {
        /// Recompute every hour that has events, in place (after events reached the lake without
        /// touched-hour markers). A changed metric or reporting zone needs no flag: it rebuilds itself.
        #[arg(long)]
        full: bool,
    },
    /// Merge the small files of closed hours into one per hour; no number changes.
    Compact {
        /// Hours younger than this stay open for late events.
        #[arg(long, default_value_t = 2)]
        grace_hours: i64,
    },
    /// Answer a metric query with the API's JSON.
    Query {
        metric: String,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Serve the metrics API and the admin console (http://ADDR/).
    Serve(ServeArgs),
    /// Send NDJSON events (files, or standard input) to an SQS queue, several events per message.
    Send {
        #[arg(long, env = "TALLY_QUEUE_URL")]
        queue_url: String,
        files: Vec<PathBuf>,
    },
    /// Work with the metric SQL files: check, test, compare with what is deployed, deploy.
    Sql {
        /// The S3 bucket whose deployed catalog `deploy`, `status` and `diff` work on; the local
        /// --data directory when absent.
        #[arg(long, env = "TALLY_BUCKET")]
        bucket: Option<String>,
        #[command(subcommand)]
        command: SqlCommand,
    },
    /// Write realistic demo events (duplicates, late and malformed lines included) as NDJSON, in
    /// delivery order; the same seed and end give the same bytes.
    Generate {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 20_000)]
        events_per_day: u32,
        #[arg(long, default_value_t = 5_000)]
        users: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Events occur before this UTC time (RFC 3339); the current hour when absent.
        #[arg(long)]
        end: Option<String>,
        /// Output file; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Generate realistic events, ingest, roll up, print a sample answer and serve.
    Demo {
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Fewer than `generate`'s default: the first run of a debug build is over in seconds.
        #[arg(long, default_value_t = 5_000)]
        events_per_day: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Stop after printing the sample answer instead of serving.
        #[arg(long)]
        no_serve: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// A query's range and options, as the API takes them.
#[derive(clap::Args)]
struct RangeArgs {
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long)]
    tz: Option<String>,
    #[arg(long)]
    interval: Option<String>,
    /// dimension=value, repeatable.
    #[arg(long = "filter")]
    filters: Vec<String>,
    #[arg(long = "group-by")]
    group_by: Option<String>,
    #[arg(long)]
    limit: Option<String>,
    /// previous_period (the default) or previous_year.
    #[arg(long)]
    compare: Option<String>,
}

impl RangeArgs {
    fn params(self, metric: String) -> Result<QueryParams> {
        let mut filters = Vec::new();
        for f in self.filters {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("--filter takes dimension=value, got {f:?}"))?;
            filters.push((k.to_string(), v.to_string()));
        }
        Ok(QueryParams {
            metric,
            from: Some(self.from),
            to: Some(self.to),
            tz: self.tz,
            interval: self.interval,
            group_by: self.group_by,
            limit: self.limit,
            compare: self.compare,
            filters,
        })
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080", env = "TALLY_ADDR")]
    addr: SocketAddr,
    /// Bearer token required on /v1 when set.
    #[arg(long, env = "TALLY_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Origin allowed by CORS (scheme, host and port, as https://admin.example.com), or * for any.
    #[arg(long, env = "TALLY_CORS_ORIGIN")]
    cors_origin: Option<CorsOrigin>,
    /// Longest range a query may ask for, in days.
    #[arg(long, env = "TALLY_MAX_RANGE_DAYS", default_value_t = DEFAULT_MAX_RANGE_DAYS)]
    max_range_days: i64,
    /// The console signs admins in with this OpenID Connect authorization endpoint (with the
    /// token URL and client id; authorization code with PKCE).
    #[arg(long, env = "TALLY_OIDC_AUTHORIZE_URL")]
    oidc_authorize_url: Option<String>,
    /// The provider's token endpoint.
    #[arg(long, env = "TALLY_OIDC_TOKEN_URL")]
    oidc_token_url: Option<String>,
    /// The console's client id at the provider.
    #[arg(long, env = "TALLY_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// Scopes to ask for (space-separated); openid by default.
    #[arg(long, env = "TALLY_OIDC_SCOPE")]
    oidc_scope: Option<String>,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum SqlCommand {
    /// Plan every metric against the event schema; fail naming any file that cannot be stored.
    Check,
    /// Run the tests beside the SQL (`tests/*.toml` in the --sql directory, `sql/tests` when absent)
    /// through ingest, rollup and query on a temporary lake; exit non-zero when any fails.
    Test,
    /// What a deploy of the working copy would change: metrics added, changed and removed, and
    /// the event hours the rollup would read again to build them.
    Diff,
    /// Check the working copy and publish it as the deployed catalog. The rollup then builds each
    /// new or changed metric beside the old numbers and switches when done; a refused deploy
    /// changes nothing.
    Deploy,
    /// Each deployed metric's version and state: ready, or building with its progress.
    Status,
    /// Run one working-copy definition (a file, or a metric's name) over the real lake and print
    /// the JSON the API will answer once it is deployed and built; nothing is stored.
    Preview {
        metric: String,
        #[command(flatten)]
        range: RangeArgs,
    },
}

/// Prints a command's JSON outcome. A reader that has gone (`tally ingest F | head`) ends it
/// quietly: the work is done and durable; only the rest of its summary goes unread.
fn print_json(v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// The working copy of the metric SQL: `--sql DIR`, else `./sql`, else the built-in files; with
/// the folder its tests are in.
fn working_copy(sql: &Option<PathBuf>) -> Result<(Catalog, PathBuf)> {
    match sql {
        Some(dir) => Ok((Catalog::from_dir(dir)?, dir.join("tests"))),
        None if Path::new("sql").is_dir() => {
            Ok((Catalog::from_dir(Path::new("sql"))?, "sql/tests".into()))
        }
        None => Ok((Catalog::builtin(), "sql/tests".into())),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tally=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // `ingest --threads N` is N cores of work: the runtime gets N workers, not one per core.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Ingest {
        threads: Some(n), ..
    } = cli.command
    {
        runtime.worker_threads(n.into());
    }
    runtime.enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let reporting_tz =
        parse_reporting_tz("--reporting-tz (TALLY_REPORTING_TZ)", &cli.reporting_tz)?;
    if let Command::Sql { bucket, command } = cli.command {
        let (working, tests) = working_copy(&cli.sql)?;
        if let SqlCommand::Check = command {
            return sql_check(&working).await;
        }
        if let SqlCommand::Test = command {
            return sql_test(&working, &tests).await;
        }
        let storage = match bucket {
            Some(bucket) => tally::runtime::aws::s3_storage(&bucket)?,
            None => Local::open(&cli.data, Catalog::builtin(), reporting_tz)?.storage,
        };
        if let SqlCommand::Preview { metric, range } = command {
            let def = preview_definition(&working, &metric)?;
            let params = range.params(def.name.clone())?;
            let answer =
                tally::tools::sql_preview::preview(&storage, &working, def, reporting_tz, &params)
                    .await?;
            return print_json(&answer);
        }
        return sql_catalog(&storage, &command, &working, reporting_tz).await;
    }
    if cli.sql.is_some() {
        bail!("--sql (TALLY_SQL_DIR) names the working copy for the `tally sql` commands; everything else reads the catalog deployed into the lake: publish the working copy with `tally sql deploy`");
    }
    let catalog = Catalog::builtin();
    if let Command::Send { queue_url, files } = &cli.command {
        return send(queue_url, files).await;
    }
    if let Command::Generate {
        days,
        events_per_day,
        users,
        seed,
        end,
        out,
    } = &cli.command
    {
        let end = match end {
            None => tally::model::floor_hour(Utc::now()),
            Some(text) => tally::model::DateOrTime::parse(text)
                .map(|t| t.in_zone(chrono_tz::UTC))
                .with_context(|| {
                    format!("--end must be a date (UTC midnight) or an RFC 3339 time, got {text:?}")
                })?,
        };
        let spec = DemoSpec {
            events_per_day: *events_per_day,
            users: *users,
            seed: *seed,
            ..DemoSpec::new(*days, end)
        };
        return generate(&spec, out.as_deref());
    }
    let mut local = Local::open(&cli.data, catalog, reporting_tz)?;
    if let Some(bytes) = cli.shard_mb {
        local.shard_bytes = bytes;
    }
    match cli.command {
        Command::Ingest {
            files,
            max_event_age_days,
            threads,
        } => {
            let threads = threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            );
            print_json(&ingest_files(&local, &files, max_event_age_days, threads).await?)
        }
        Command::Rollup { full } => print_json(&local_job(&local, Job::Rollup { full }).await?),
        Command::Compact { grace_hours } => {
            print_json(&local_job(&local, Job::Compact { grace_hours }).await?)
        }
        Command::Query { metric, range } => {
            let params = range.params(metric)?;
            let service = local.query_service(QueryOptions::default());
            print_json(&service.answer(&params, Utc::now()).await?)
        }
        Command::Serve(args) => serve(&local, args).await,
        Command::Sql { .. } | Command::Send { .. } | Command::Generate { .. } => {
            unreachable!("handled above")
        }
        Command::Demo {
            days,
            events_per_day,
            seed,
            no_serve,
            serve: args,
        } => {
            run_demo(&local, days, events_per_day, seed).await?;
            if no_serve {
                Ok(())
            } else {
                serve(&local, args).await
            }
        }
    }
}

async fn ingest_files(
    local: &Local,
    files: &[PathBuf],
    max_age_days: i64,
    threads: usize,
) -> Result<IngestSummary> {
    if max_age_days <= 0 {
        bail!("--max-event-age-days must be a positive number of days, got {max_age_days}");
    }
    let receipt = || Receipt::new(Utc::now(), max_age_days);
    if files.is_empty() {
        let stdin = std::io::stdin().lock();
        return Ok(ingest::ingest_ndjson_parallel(
            &local.storage,
            stdin,
            receipt(),
            threads,
            ingest::CHUNK_BYTES,
        )
        .await?);
    }
    let mut summary = IngestSummary::default();
    for f in files {
        summary.add(ingest_one(local, f, receipt(), threads).await?);
    }
    Ok(summary)
}

async fn send(queue_url: &str, files: &[PathBuf]) -> Result<()> {
    let mut input = Vec::new();
    if files.is_empty() {
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut input)?;
    }
    for f in files {
        input.extend(std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?);
        input.push(b'\n');
    }
    let client = aws_sdk_sqs::Client::new(&tally::runtime::aws::sdk_config().await);
    print_json(&tally::tools::send::send_ndjson(&client, queue_url, &input).await?)
}

async fn sql_check(catalog: &Catalog) -> Result<()> {
    let mut failed = 0;
    for m in catalog.listed() {
        if let Some(f) = &m.formula {
            if m.sql.is_empty() {
                println!(
                    "ok    {:<16} ratio {} / {} by [{}]  ({})",
                    m.name,
                    f.numerator,
                    f.denominator,
                    m.dimensions.join(", "),
                    m.source
                );
                continue;
            }
            // An average: both of its stored parts must pass.
            let mut failed_part = false;
            for part in [&f.numerator, &f.denominator] {
                if let Err(e) =
                    tally::rollup::check_metric(catalog.get(part).expect("its part")).await
                {
                    failed += 1;
                    failed_part = true;
                    println!("FAIL  {e}");
                }
            }
            if !failed_part {
                println!(
                    "ok    {:<16} Average by [{}]  ({})",
                    m.name,
                    m.dimensions.join(", "),
                    m.source
                );
            }
            continue;
        }
        match tally::rollup::check_metric(m).await {
            Ok(kind) => println!(
                "ok    {:<16} {:?} by [{}]  ({})",
                m.name,
                kind,
                m.dimensions.join(", "),
                m.source
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} metric definition(s) failed the check");
    }
    Ok(())
}

/// `tally sql diff|deploy|status` against the catalog deployed in `storage`.
async fn sql_catalog(
    storage: &tally::lake::Storage,
    command: &SqlCommand,
    working: &Catalog,
    reporting_tz: chrono_tz::Tz,
) -> Result<()> {
    let deployed = tally::rollup::deployed_catalog(storage).await?;
    match command {
        SqlCommand::Deploy => {
            let before = deployed.map(|d| d.catalog);
            let done = tally::rollup::deploy(storage, working).await?;
            print_changes(storage, before.as_ref(), working, reporting_tz).await?;
            println!("deployed catalog version {}; the next rollup builds what changed (`tally sql status` shows its progress)", done.id);
        }
        SqlCommand::Diff => {
            let before = deployed.as_ref().map(|d| &d.catalog);
            print_changes(storage, before, working, reporting_tz).await?;
        }
        SqlCommand::Status => {
            let Some(deployed) = deployed else {
                println!("nothing deployed yet: the first rollup deploys the built-in definitions");
                return Ok(());
            };
            println!("deployed catalog version {}", deployed.id);
            let live = tally::rollup::Live::load(storage)
                .await?
                .unwrap_or_default();
            for def in deployed.catalog.metrics() {
                if let (Some(f), true) = (&def.formula, def.sql.is_empty()) {
                    println!(
                        "{:<16} ratio   {} / {}, computed when asked",
                        def.name, f.numerator, f.denominator
                    );
                    continue;
                }
                if def.formula.is_some() {
                    continue; // an average: its two parts are listed
                }
                let ready = live.ready.get(&def.name).map(|b| b.version.as_str());
                let state = match (ready, live.building.get(&def.name)) {
                    (_, Some(b)) => format!(
                        "building v{} ({} of {} hours){}",
                        b.version,
                        b.hours_done,
                        b.hours_total,
                        ready.map_or(String::new(), |v| format!("; answers from v{v}"))
                    ),
                    (Some(v), None) => format!("ready    v{v}"),
                    (None, None) => "waiting for the next rollup".to_string(),
                };
                println!("{:<16} {state}", def.name);
            }
            for r in &live.retired {
                println!(
                    "{:<16} retired {}: its rows are deleted by a coming rollup",
                    "", r.key
                );
            }
        }
        SqlCommand::Check | SqlCommand::Test | SqlCommand::Preview { .. } => {
            unreachable!("handled by the caller")
        }
    }
    Ok(())
}

/// The definition `tally sql preview` runs: a file's, or the working copy's metric of that name.
fn preview_definition(working: &Catalog, what: &str) -> Result<tally::rollup::MetricDef> {
    let path = Path::new(what);
    if what.ends_with(".sql") || path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {what}"))?;
        return Ok(tally::rollup::MetricDef::parse(what, &text)?);
    }
    match working.get(what) {
        Some(def) => Ok(def.as_ref().clone()),
        None => bail!("{what} is neither a .sql file nor a metric of the working copy"),
    }
}

/// Prints how `working` differs from `deployed`, metric by metric, and what the rollup would read.
async fn print_changes(
    storage: &tally::lake::Storage,
    deployed: Option<&Catalog>,
    working: &Catalog,
    reporting_tz: chrono_tz::Tz,
) -> Result<()> {
    let hours = storage.hours_with_data().await?.len();
    let old_version = |name: &str| {
        deployed
            .and_then(|c| c.get(name))
            .map(|d| d.version(reporting_tz))
    };
    for def in working.listed() {
        let version = def.version(reporting_tz);
        let what = if def.formula.is_some() && def.sql.is_empty() {
            "a ratio, computed when asked".to_string()
        } else {
            format!("v{version}")
        };
        match old_version(&def.name) {
            None => println!("added      {:<16} {what}", def.name),
            Some(old) if old != version => {
                println!("changed    {:<16} v{old} -> {what}", def.name)
            }
            Some(_) => println!("unchanged  {}", def.name),
        }
    }
    for old in deployed.into_iter().flat_map(|c| c.listed()) {
        if working.get(&old.name).is_none() {
            println!(
                "removed    {:<16} answers 404 at once; its rows are deleted",
                old.name
            );
        }
    }
    // What the rollup builds: every stored metric (an average's two parts) new or changed, each
    // beside its old numbers, from every event hour.
    let builds = working
        .computed()
        .filter(|d| old_version(&d.name) != Some(d.version(reporting_tz)))
        .count();
    println!(
        "{builds} metric(s) to build: {} event hours to read",
        builds * hours
    );
    Ok(())
}

async fn sql_test(catalog: &Catalog, dir: &Path) -> Result<()> {
    let mut out = String::new();
    let report = tally::tools::sql_test::run(catalog, dir, &mut out).await;
    print!("{out}");
    if report.failures > 0 {
        bail!("{} of the metric tests failed", report.failures);
    }
    Ok(())
}

async fn serve(local: &Local, args: ServeArgs) -> Result<()> {
    let options = QueryOptions {
        max_range_days: args.max_range_days,
        ..QueryOptions::default()
    };
    let service = Arc::new(local.query_service(options));
    let sign_in = SignIn::from_settings(
        args.oidc_authorize_url,
        args.oidc_token_url,
        args.oidc_client_id,
        args.oidc_scope,
        [
            "--oidc-authorize-url",
            "--oidc-token-url",
            "--oidc-client-id",
        ],
    )
    .map_err(|(name, message)| anyhow::anyhow!("{name}: {message}"))?;
    let app = serve::router(
        service,
        ApiOptions {
            token: args.token,
            cors_origin: args.cors_origin,
            sign_in,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    eprintln!("tally console on http://{addr}/  (the API: http://{addr}/v1/metrics)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}

fn generate(spec: &DemoSpec, out: Option<&Path>) -> Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut result = Ok(());
    demo::generate(spec, |_, bytes| {
        if result.is_ok() {
            result = sink.write_all(&bytes);
        }
    });
    result.and_then(|()| sink.flush())?;
    Ok(())
}

async fn run_demo(local: &Local, days: u32, events_per_day: u32, seed: u64) -> Result<()> {
    let incoming = local.data_dir.join("incoming");
    std::fs::create_dir_all(&incoming)?;
    let end = Utc::now() - Duration::minutes(1);
    let spec = DemoSpec {
        events_per_day,
        seed,
        ..DemoSpec::new(days, end)
    };
    eprintln!(
        "[1/3] generating {days} days of events into {}",
        incoming.display()
    );
    let mut files = Vec::new();
    demo::generate(&spec, |name, bytes| {
        let path = incoming.join(name);
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("cannot write {}: {e}", path.display());
        }
        files.push(path);
    });
    let mut summary = IngestSummary::default();
    for (i, f) in files.iter().enumerate() {
        summary.add(ingest_one(local, f, Utc::now().into(), 1).await?);
        eprint!(
            "\r[2/3] ingesting {}/{} files: {} accepted, {} rejected",
            i + 1,
            files.len(),
            summary.accepted,
            summary.rejected
        );
    }
    eprintln!();
    eprintln!(
        "[3/3] rolling up {} touched hours",
        summary.hours_touched.len()
    );
    let JobReport::Rollup(report) = local_job(local, Job::Rollup { full: false }).await? else {
        unreachable!("a rollup job reports a rollup")
    };
    eprintln!(
        "      {} hours, {} days, {} months, {} rows",
        report.hours_recomputed.len(),
        report.days_rebuilt,
        report.months_rebuilt,
        report.rows_written
    );
    let today = tally::model::day_start(local.reporting_tz, Utc::now());
    let from: DateTime<Utc> = today - Duration::days(7);
    let params = QueryParams {
        metric: "revenue".into(),
        from: Some(from.format("%Y-%m-%d").to_string()),
        to: Some(today.format("%Y-%m-%d").to_string()),
        ..Default::default()
    };
    let answer = local
        .query_service(QueryOptions::default())
        .query(&params, Utc::now())
        .await?;
    println!("Sample: revenue over the last 7 whole days vs the 7 before:");
    print_json(&answer)?;
    Ok(())
}

/// Runs a job as the rollup function's schedule does, without a deadline. Another job holding
/// the lease is an error here: someone asked for this run.
async fn local_job(local: &Local, job: Job) -> Result<JobReport> {
    match run_job(&local.rollup(), &job, None).await? {
        JobReport::Skipped(s) => bail!(
            "another rollup job is running ({}, its lease runs until {}); nothing was done: run again when it has finished",
            s.held_by,
            s.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        report => Ok(report),
    }
}

async fn ingest_one(
    local: &Local,
    f: &Path,
    receipt: Receipt,
    threads: usize,
) -> Result<IngestSummary> {
    let file = std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
    let reader = std::io::BufReader::new(file);
    Ok(ingest::ingest_ndjson_parallel(
        &local.storage,
        reader,
        receipt,
        threads,
        ingest::CHUNK_BYTES,
    )
    .await?)
}
