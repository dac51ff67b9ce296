//! The `tally` binary as a user runs it: demo, ingest from stdin, rollup, query, compact, the
//! `sql` commands (check, test, diff, deploy, status) and serve, on a real data directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tally::store::PeriodStore;

fn tally(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
    c.arg("--data")
        .arg(data)
        .env_remove("TALLY_API_TOKEN")
        .env_remove("TALLY_SQL_DIR")
        .env_remove("TALLY_REPORTING_TZ");
    c
}

fn run_json(c: &mut Command) -> Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{c:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn ingest_from_stdin_rollup_query_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let hour_ago = (now - chrono::Duration::hours(30)).to_rfc3339();
    // Event "a" comes twice: the second copy must be dropped as a duplicate.
    let a = format!(
        r#"{{"event_id":"a","event_type":"purchase","occurred_at":"{hour_ago}","user_id":"u1","country":"KR","item_id":"i","price":"10.50","quantity":2}}"#
    );
    let b = format!(
        r#"{{"event_id":"b","event_type":"purchase","occurred_at":"{hour_ago}","user_id":"u2","country":"US","item_id":"i","price":1.25}}"#
    );
    let lines = format!("{a}\n{b}\n{a}\nnot json\n");
    let mut child = tally(dir.path())
        .arg("ingest")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["accepted"].as_u64(), summary["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    let quarantine = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantine, 1, "the malformed line went to quarantine");

    // While another rollup job holds the lease (a cron run, say), `tally rollup` does nothing and
    // says so; a lease whose holder crashed is taken once it has expired.
    let store = tally::store::SqliteStore::open(&dir.path().join("periods.sqlite")).unwrap();
    let lease = |holder: &'static str, until: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            store
                .claim_lease(tally::rollup::LEASE_NAME, holder, now, until)
                .await
                .unwrap()
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let claim = rt.block_on(lease("a cron run", now + chrono::Duration::minutes(2)));
    assert_eq!(claim, tally::store::Claim::Granted);
    let out = tally(dir.path()).arg("rollup").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("another rollup job is running (a cron run, its lease runs until"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path().join("_state/touched"))
            .unwrap()
            .count()
            > 0,
        "the skipped run consumed no touched-hour marker"
    );
    rt.block_on(store.release_lease(tally::rollup::LEASE_NAME, "a cron run"))
        .unwrap();
    let claim = rt.block_on(lease("a crashed run", now - chrono::Duration::seconds(1)));
    assert_eq!(claim, tally::store::Claim::Granted);

    let report = run_json(tally(dir.path()).arg("rollup"));
    assert_eq!(report["hours_recomputed"].as_array().unwrap().len(), 1);
    let claim = rt.block_on(lease("the next run", now + chrono::Duration::minutes(2)));
    assert_eq!(
        claim,
        tally::store::Claim::Granted,
        "a finished run releases its lease"
    );
    rt.block_on(store.release_lease(tally::rollup::LEASE_NAME, "the next run"))
        .unwrap();

    let from = (now - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let to = (now + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let answer =
        run_json(tally(dir.path()).args(["query", "revenue", "--from", &from, "--to", &to]));
    assert_eq!(
        answer["current_total"].to_string(),
        "22.25",
        "10.50 x 2 once (the duplicate is dropped) + 1.25"
    );
    let answer = run_json(tally(dir.path()).args([
        "query",
        "revenue",
        "--from",
        &from,
        "--to",
        &to,
        "--filter",
        "country=KR",
        "--group-by",
        "item_id",
    ]));
    assert_eq!(answer["current_total"].to_string(), "21");
    assert_eq!(answer["groups"][0]["group"], "i");

    let out = tally(dir.path())
        .args(["query", "revenue", "--from", &to, "--to", &from])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be before"));

    // Ingest writes uncompressed: the first compaction rewrites each closed hour once, the second
    // finds nothing to do.
    let compact = run_json(tally(dir.path()).arg("compact"));
    assert_eq!(
        compact["files_before"], compact["files_after"],
        "one file per hour already"
    );
    assert!(compact["partitions_compacted"].as_u64().unwrap() > 0);
    let again = run_json(tally(dir.path()).arg("compact"));
    assert_eq!(again["partitions_compacted"], 0);
}

#[test]
fn sql_check_passes_the_shipped_files_and_names_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = tally(dir.path()).args(["sql", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("ok"))
            .count(),
        7,
        "five stored metrics, a formula and an average"
    );

    let sql = dir.path().join("sql");
    std::fs::create_dir(&sql).unwrap();
    std::fs::write(sql.join("median_price.sql"), "-- name: median_price\n-- dimensions: country\nSELECT country, MEDIAN(price) AS value FROM events GROUP BY country\n").unwrap();
    let out = tally(dir.path())
        .arg("--sql")
        .arg(&sql)
        .args(["sql", "check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("median_price.sql: aggregate MEDIAN cannot merge"),
        "{stdout}"
    );
}

#[test]
fn demo_then_serve_answers_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = tally(dir.path())
        .args([
            "demo",
            "--days",
            "3",
            "--events-per-day",
            "1500",
            "--no-serve",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"metric\": \"revenue\""), "{stdout}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut server = tally(dir.path())
        .args(["serve", "--addr", &addr.to_string(), "--token", "tok"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                let today = chrono::Utc::now().format("%Y-%m-%d");
                let req = format!("GET /v1/metrics/visitors?from=2026-01-01&to={today} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).unwrap();
                let mut r = String::new();
                s.read_to_string(&mut r).unwrap();
                break r;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    server.kill().ok();
    server.wait().ok();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["current_total"].as_u64().unwrap() > 100, "{body}");
}

#[test]
fn a_summary_nobody_reads_ends_quietly() {
    // `tally ingest F | head -1`: the reader goes before the summary is written.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let line = r#"{"event_id":"e1","event_type":"sign-in","occurred_at":"2026-08-25T10:00:00Z"}"#;
    std::fs::write(&input, format!("{line}\n")).unwrap();
    let mut child = tally(&dir.path().join("data"))
        .arg("ingest")
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_reporting_zone_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = tally(dir.path())
        .args(["--reporting-tz", "Asia/Kolkata", "rollup"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TALLY_REPORTING_TZ"));
}

#[test]
fn sql_test_passes_the_shipped_tests_and_shows_what_differs() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = tally(dir.path())
        .arg("--sql")
        .arg(repo.join("sql"))
        .args(["sql", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every shipped metric has a test file, and each file checks something.
    for metric in [
        "average_order_value",
        "average_price",
        "content_views",
        "purchases",
        "revenue",
        "sign_ins",
        "visitors",
    ] {
        assert!(
            stdout.contains(&format!("tests/{metric}.toml  {metric}")),
            "{metric} has no test: {stdout}"
        );
    }
    assert!(stdout.contains("7 test files"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    // A working copy whose revenue forgets the quantity: the shipped revenue test catches it and
    // says where, with the expected and the computed numbers side by side.
    let sql = dir.path().join("sql");
    std::fs::create_dir_all(sql.join("tests")).unwrap();
    let revenue = std::fs::read_to_string(repo.join("sql/revenue.sql")).unwrap();
    std::fs::write(
        sql.join("revenue.sql"),
        revenue.replace("SUM(price * COALESCE(quantity, 1))", "SUM(price)"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("sql/tests/revenue.toml"),
        sql.join("tests/revenue.toml"),
    )
    .unwrap();
    let out = tally(dir.path())
        .arg("--sql")
        .arg(&sql)
        .args(["sql", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failing test fails the command: {stdout}"
    );
    // 1 August in Seoul: p4 1.50 + p1 10.00 (its quantity of 2 forgotten) + p2 4.99.
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("value") && l.contains("<- differs"))
        .unwrap_or_else(|| panic!("no differing value row: {stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], ["value", "26.49", "16.49"], "{row}");
    assert!(
        stdout.contains("FAIL  #1: 2026-08-01 .. 2026-08-02 tz=Asia/Seoul interval=day"),
        "{stdout}"
    );

    // A test file that is not one is named, not skipped.
    std::fs::write(
        sql.join("tests/broken.toml"),
        "metric = \"revenue\"\nexpect = 3\n",
    )
    .unwrap();
    let out = tally(dir.path())
        .arg("--sql")
        .arg(&sql)
        .args(["sql", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("broken.toml: not a test file"), "{stdout}");
}

#[test]
fn the_data_team_diffs_deploys_and_watches_the_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        concat!(
            r#"{"event_id":"p1","event_type":"purchase","occurred_at":"2026-08-01T10:00:00Z","price":"10.00","quantity":3,"country":"KR"}"#,
            "\n",
            r#"{"event_id":"p2","event_type":"purchase","occurred_at":"2026-08-01T11:00:00Z","price":"2.50","country":"US"}"#,
            "\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = tally(dir.path()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let revenue = |args: &[&str]| {
        let (ok, stdout, stderr) = run(args);
        assert!(ok, "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        v["current_total"].to_string()
    };
    assert!(run(&["ingest", events.to_str().unwrap()]).0);
    assert!(run(&["rollup"]).0);
    let query = [
        "query",
        "revenue",
        "--from",
        "2026-08-01",
        "--to",
        "2026-08-02",
    ];
    assert_eq!(revenue(&query), "32.5", "10.00 x 3 + 2.50");

    // A working copy: revenue at list price, a new metric, content views gone.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sql = dir.path().join("sql");
    std::fs::create_dir(&sql).unwrap();
    for m in ["purchases", "sign_ins", "visitors"] {
        std::fs::copy(
            repo.join(format!("sql/{m}.sql")),
            sql.join(format!("{m}.sql")),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(repo.join("sql/revenue.sql")).unwrap();
    std::fs::write(
        sql.join("revenue.sql"),
        text.replace("SUM(price * COALESCE(quantity, 1))", "SUM(price)"),
    )
    .unwrap();
    std::fs::write(sql.join("units.sql"), "-- name: units\n-- dimensions: country\nSELECT country, SUM(COALESCE(quantity, 1)) AS value FROM events WHERE event_type = 'purchase' GROUP BY country\n").unwrap();
    let working = sql.to_str().unwrap();

    let (ok, diff, stderr) = run(&["--sql", working, "sql", "diff"]);
    assert!(ok, "{stderr}");
    assert!(diff.contains("changed    revenue"), "{diff}");
    assert!(diff.contains("added      units"), "{diff}");
    assert!(diff.contains("removed    content_views"), "{diff}");
    assert!(diff.contains("unchanged  purchases"), "{diff}");
    assert!(
        diff.contains("2 metric(s) to build: 4 event hours to read"),
        "{diff}"
    );

    // A broken file refuses the whole deploy, names the file, and changes nothing.
    let pointer = dir.path().join("_catalog/current.json");
    let deployed = std::fs::read(&pointer).unwrap();
    std::fs::write(
        sql.join("bad.sql"),
        "-- name: bad\nCOPY events TO '/tmp/x.csv'\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&["--sql", working, "sql", "deploy"]);
    assert!(!ok);
    assert!(stderr.contains("bad.sql"), "{stderr}");
    assert_eq!(
        std::fs::read(&pointer).unwrap(),
        deployed,
        "a refused deploy changes nothing"
    );
    std::fs::remove_file(sql.join("bad.sql")).unwrap();

    let (ok, out, stderr) = run(&["--sql", working, "sql", "deploy"]);
    assert!(ok, "{stderr}");
    assert!(out.contains("deployed catalog version"), "{out}");
    let (_, status, _) = run(&["sql", "status"]);
    let line = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_string()
    };
    assert!(
        line("units").contains("waiting for the next rollup"),
        "{status}"
    );
    assert!(line("revenue").contains("ready"), "{status}");
    // Until the rollup builds it, revenue answers from the old definition; content views are gone.
    assert_eq!(revenue(&query), "32.5");
    let (ok, _, stderr) = run(&[
        "query",
        "content_views",
        "--from",
        "2026-08-01",
        "--to",
        "2026-08-02",
    ]);
    assert!(!ok && stderr.contains("unknown metric"), "{stderr}");
    // Only the `sql` commands take a working copy.
    let (ok, _, stderr) = run(&["--sql", working, "rollup"]);
    assert!(!ok && stderr.contains("tally sql deploy"), "{stderr}");

    assert!(run(&["rollup"]).0);
    let (_, after, _) = run(&["sql", "status"]);
    assert!(
        !after.contains("building") && !after.contains("waiting"),
        "{after}"
    );
    assert_eq!(revenue(&query), "12.5", "10.00 + 2.50 at list price");
    let (ok, units, stderr) = run(&[
        "query",
        "units",
        "--from",
        "2026-08-01",
        "--to",
        "2026-08-02",
        "--filter",
        "country=KR",
    ]);
    assert!(ok, "{stderr}");
    let units: Value = serde_json::from_str(&units).unwrap();
    assert_eq!(units["current_total"], 3);
}
