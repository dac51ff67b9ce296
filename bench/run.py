#!/usr/bin/env python3
"""`make bench`: tally measured beside DuckDB on the same data, in one run, on this machine.

Steps (each prints as it goes; the table lands in bench/RESULTS.md):
  1. NDJSON -> partitioned Parquet: `tally ingest` vs DuckDB's COPY ... (FORMAT parquet), both
     uncompressed as tally's ingest writes it (its compaction compresses closed hours later), with
     the same thread count; events/s per core (events / CPU seconds) and peak memory; tally on one
     core (pinned) and on every core (the scaling), CPU split into user and system (the kernel:
     writing the lake), and again with the lake in memory (tmpfs) to show the file system's part; beside them
     the ceiling of the work on this machine (the file only split into lines, and only parsed as JSON).
     Each timed ingest, tally's and DuckDB's, runs three times; the figures are the medians.
  2. Full rollup of every hour (`tally rollup`) vs DuckDB running the same metric SQL, for every
     subset of each metric's dimensions, per hour, day and month, over the same Parquet files.
  3. Incremental rollup after late events touch one hour of an old day, as a share of the full one.
  4. Query latency p50/p99 for 7/30/90-day daily series (plain, filtered, grouped), in-process and
     over HTTP from another process (bench/tally_bench.rs).
  5. Load: the API under many concurrent clients for a fixed time on loopback (wrk): requests/s,
     p50/p99 latency, errors, the server's peak memory; and ingest of a sustained stream (1x and
     4x the same stream through one `tally ingest`): peak memory must not grow with it. Then the
     rollup's peak memory with 1x, 4x and 16x the events per hour (a day of the bench file, each
     event 1, 4 or 16 times with new ids), unbounded, with the default budget of work and a small one.
  6. Functions: zip sizes (make package), cold start under a local Runtime API, peak memory of
     ingest on a 6 MB SQS batch.
  7. Where the time and the bytes go, for the targets a run may miss: ingest's instructions by part
     of the work (callgrind), and the rollup binary's machine code by crate. It names functions, so
     it runs on the profiling build (the release build is stripped, and the step says it skipped).
  8. Every target judged by this run's figures: met, or missed with the measured reason (the bound
     step 7's shares set).

The data set (`tally generate`, fixed seed and end) is cached in bench/data/ between runs. The lakes
and Parquet a run writes there are deleted when it ends, not between steps (see `discard`).
Run with tests/support/with-moto.sh so that the functions have S3 and DynamoDB.
"""

import argparse
import datetime as dt
import decimal
import gzip
import http.server
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import typing
import urllib.request
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PROFILE = os.environ.get("BENCH_PROFILE", "release")
BIN = os.path.join(TARGET, PROFILE)
SPEC = {"days": 35, "events_per_day": 300_000, "users": 200_000, "seed": 42, "end": "2026-11-01T00:00:00Z"}
END_DATE = SPEC["end"][:10]
THREADS = os.cpu_count()
COLD_STARTS = 5
results = []  # (section, name, value, note)
facts = {}  # the numbers step [8] judges the targets by, as measured in this run


def say(msg):
    print(msg, flush=True)


def record(section, name, value, note=""):
    results.append((section, name, value, note))
    say(f"  {name}: {value}" + (f"  ({note})" if note else ""))


class Run(typing.NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss: float  # peak, MiB
    text: str  # stdout
    system: float  # of `cpu`, the kernel's seconds (file writes, page faults)


def measure(cmd, env=None, stdin=None):
    """Runs cmd; returns its wall and CPU time, peak memory and output."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stdin=stdin, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed ({status}):\n{text[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text, usage.ru_stime)


# Outputs a step is done with are moved aside and deleted when the run ends. This machine's disk is
# ext4 without a journal, where a new file's inode is chosen past every inode freed in the last 60 s
# (360 s while its inode table block is unwritten): a lake of ~16,000 files deleted just before a timed
# write made that write's system time depend on what ran before it (for DuckDB as for tally).
TRASH = os.path.join(DATA, f"trash-{os.getpid()}")


def discard(path):
    """Moves a finished output under DATA out of the way (a rename frees no inode)."""
    if os.path.exists(path):
        os.makedirs(TRASH, exist_ok=True)
        os.rename(path, os.path.join(TRASH, f"{len(os.listdir(TRASH))}-{os.path.basename(path)}"))


def empty_trash():
    """Deletes what this run and any interrupted one moved aside, after every timed step."""
    for name in os.listdir(DATA):
        if name.startswith("trash-"):
            shutil.rmtree(os.path.join(DATA, name), ignore_errors=True)


def tally(*args, data):
    return [os.path.join(BIN, "tally"), "--data", data, *args]


def dataset():
    os.makedirs(DATA, exist_ok=True)
    key = "-".join(str(SPEC[k]) for k in ("days", "events_per_day", "users", "seed")) + "-" + END_DATE
    path = os.path.join(DATA, f"events-{key}.ndjson")
    if not os.path.exists(path):
        say(f"generating {path} (cached for later runs)")
        args = [f"--{k.replace('_', '-')}={v}" for k, v in SPEC.items()]
        subprocess.run([os.path.join(BIN, "tally"), "generate", *args, "--out", path + ".part"], check=True)
        os.rename(path + ".part", path)
    with open(path, "rb") as f:
        lines = sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b""))
    return path, lines


DUCK = os.path.join(os.path.dirname(sys.executable), "python")


def duckdb(script, threads):
    """Runs SQL in a fresh DuckDB process (so its time and memory are its own)."""
    code = (
        "import duckdb, sys\n"
        "con = duckdb.connect()\n"
        f"con.execute(\"SET threads={threads}; SET TimeZone='UTC'; SET preserve_insertion_order=false\")\n"
        "for stmt in sys.stdin.read().split(';\\n'):\n"
        "    if stmt.strip():\n"
        "        con.execute(stmt)\n"
    )
    with tempfile.TemporaryFile() as f:
        f.write(script.encode())
        f.seek(0)
        return measure([DUCK, "-c", code], stdin=f)


def split(run):
    return f"{run.cpu - run.system:.1f} user, {run.system:.1f} system"


# Each timed ingest runs this many times and reports the median of each figure (of peak memory, the
# largest): on this VM one run's time moves by about a tenth, as much as the gaps the targets judge.
REPEATS = 3


def repeated(run_once):
    """run_once(i) for i in range(REPEATS): a Run of their medians (the largest peak, the first's
    output), and the runs."""
    runs = [run_once(i) for i in range(REPEATS)]
    mid = lambda field: statistics.median(getattr(r, field) for r in runs)
    return Run(mid("wall"), mid("cpu"), max(r.rss for r in runs), runs[0].text, mid("system")), runs


def spread(runs):
    walls = sorted(r.wall for r in runs)
    return f"median of {len(runs)}, {walls[0]:.1f}–{walls[-1]:.1f} s"


def same_work(expected, got, what):
    if (got["accepted"], got["files_written"]) != (expected["accepted"], expected["files_written"]):
        sys.exit(f"{what} accepted different events or wrote different files")


# Where the kernel's share of ingest goes: the same ingest with its lake in memory, where writing a
# file costs no disk, no inode search and no journal. Needs about this much room (the lake is ~1 GB).
TMPFS = "/dev/shm"
TMPFS_ROOM = 4 << 30


def in_memory(events, lines, summary):
    """The same ingest, every core, with the lake on tmpfs: the figure above less what this machine's
    file system costs. Not the headline: both tools are judged writing to the same disk."""
    try:
        room = shutil.disk_usage(TMPFS).free
    except OSError:
        room = 0
    if room < TMPFS_ROOM:
        say(f"  (no tmpfs with {TMPFS_ROOM >> 30} GiB free at {TMPFS}: the lake-in-memory run is skipped)")
        return
    def in_tmpfs(_):
        lake = tempfile.mkdtemp(prefix="tally-in-memory-", dir=TMPFS)
        try:
            return measure(tally("ingest", events, data=lake))
        finally:
            shutil.rmtree(lake, ignore_errors=True)
    run, runs = repeated(in_tmpfs)
    for r in runs:
        same_work(summary, json.loads(r.text), "the lake on disk and in memory")
    record("ingest", f"tally ingest, lake in memory ({TMPFS}, tmpfs)", f"{lines / run.cpu:,.0f} events/s per CPU-second",
           f"{run.wall:.1f} s, {run.cpu:.1f} CPU-s ({split(run)}; {spread(runs)}); the same events and files; not "
           "compared with DuckDB, which wrote to disk")
    facts.update(in_memory_cpu=run.cpu, in_memory_system=run.system)


def ingest(events, lines):
    say("\n[1] NDJSON -> partitioned Parquet")
    lake = os.path.join(DATA, "lake")
    discard(lake)

    def every_core(i):
        # The first run's lake is the one the later steps read.
        out = lake if i == 0 else tempfile.mkdtemp(prefix="tally-again-", dir=DATA)
        try:
            return measure(tally("ingest", events, data=out))
        finally:
            if i:
                discard(out)
    run, runs = repeated(every_core)
    wall, cpu, rss = run.wall, run.cpu, run.rss
    summary = json.loads(run.text)
    for r in runs[1:]:
        same_work(summary, json.loads(r.text), "two runs of one ingest")
    tally_rate = lines / cpu
    record("ingest", "tally ingest", f"{lines / wall:,.0f} events/s wall, {tally_rate:,.0f} events/s per CPU-second",
           f"{lines:,} lines in {wall:.1f} s, {cpu:.1f} CPU-s ({split(run)}; {spread(runs)}); {summary['accepted']:,} accepted, "
           f"{summary['rejected']:,} quarantined; {summary['files_written']:,} event files")
    record("ingest", "tally ingest peak memory", f"{rss:,.0f} MiB")
    # Many cores: the same file on one core, against every core above. Pinned to it: with one
    # thread but the machine's other cores free, the file writes (object_store's blocking pool)
    # ran on a second core, and one thread was not one core's work.
    one_core = ["taskset", "--cpu-list", str(min(os.sched_getaffinity(0)))]

    def one_core_only(_):
        single = tempfile.mkdtemp(prefix="tally-one-core-", dir=DATA)
        try:
            return measure([*one_core, *tally("ingest", "--threads", "1", events, data=single)])
        finally:
            discard(single)
    one, ones = repeated(one_core_only)
    for r in ones:
        same_work(summary, json.loads(r.text), "one core and every core")
    record("ingest", "tally ingest, 1 core", f"{lines / one.wall:,.0f} events/s wall",
           f"{one.wall:.1f} s, {one.cpu:.1f} CPU-s ({split(one)}; {spread(ones)}), peak {one.rss:,.0f} MiB; "
           "`--threads 1` pinned to one core (taskset); the same events accepted, the same number of files")
    record("ingest", f"scaling, {THREADS} cores vs 1 (wall)", f"{one.wall / wall:.2f}x",
           f"ideal {THREADS}x; medians of {REPEATS} runs each")
    facts.update(ingest_system=run.system, one_thread_system=one.system, ingest_user_rate=lines / (cpu - run.system))
    in_memory(events, lines, summary)
    # The physical limit of the work on this machine: the same file only split into lines, and
    # also parsed as JSON, one thread (bench/tally_bench.rs `ceiling`).
    bench = os.path.join(BIN, "tally-bench")
    ceiling = {}
    for work, label in (("lines", "only splitting the file into lines"),
                        ("json", "splitting and parsing every line as JSON (serde_json, building nothing)")):
        _, c_cpu, _, out, _ = measure([bench, "--end", END_DATE, "ceiling", work, events])
        ceiling[work] = json.loads(out)["lines"] / c_cpu
        record("ingest", f"ceiling: {label}", f"{ceiling[work]:,.0f} lines per CPU-second", f"{c_cpu:.1f} CPU-s, 1 thread")
    facts.update(ingest_rate=tally_rate, ingest_wall=wall, ingest_cpu=cpu, one_thread_wall=one.wall,
                 one_thread_cpu=one.cpu, json_ceiling=ceiling["json"])
    record("ingest", "tally ingest as a share of the JSON-parsing ceiling", f"{tally_rate / ceiling['json']:.0%}",
           "validation, dedupe, Arrow and Parquet are the rest")
    threads = max(1, round(cpu / wall))
    out_dir = os.path.join(DATA, "duckdb-parquet")
    columns = ("{event_id: 'VARCHAR', event_type: 'VARCHAR', occurred_at: 'TIMESTAMPTZ', user_id: 'VARCHAR', "
               "session_id: 'VARCHAR', correlation_id: 'VARCHAR', service: 'VARCHAR', country: 'VARCHAR', "
               "browser: 'VARCHAR', device: 'VARCHAR', item_id: 'VARCHAR', content_id: 'VARCHAR', "
               "price: 'DECIMAL(18,6)', quantity: 'BIGINT', attributes: 'JSON'}")
    sql = (f"COPY (SELECT *, now() AS received_at, strftime(occurred_at, '%Y-%m-%d') AS date, "
           f"strftime(occurred_at, '%H') AS hour FROM read_ndjson('{events}', columns={columns}, "
           f"ignore_errors=true, maximum_object_size=65536)) "
           f"TO '{out_dir}' (FORMAT parquet, COMPRESSION uncompressed, PARTITION_BY (date, hour));\n")
    def duckdb_copy(_):
        discard(out_dir)  # COPY ... PARTITION_BY refuses a directory it has written; the last run's is checked
        return duckdb(sql, threads)
    duck, ducks = repeated(duckdb_copy)
    d_wall, d_cpu, d_rss = duck.wall, duck.cpu, duck.rss
    duck_rate = lines / d_cpu
    record("ingest", f"DuckDB COPY to Parquet ({threads} thread{'s' if threads > 1 else ''})",
           f"{lines / d_wall:,.0f} events/s wall, {duck_rate:,.0f} events/s per CPU-second",
           f"{d_wall:.1f} s, {d_cpu:.1f} CPU-s ({split(duck)}; {spread(ducks)}), peak {d_rss:,.0f} MiB; uncompressed, as tally's; "
           "no validation, no dedupe")
    record("ingest", "ratio tally / DuckDB (per CPU-second)", f"{tally_rate / duck_rate:.2f}x", "target >= 3x")
    facts.update(ingest_vs_duckdb=tally_rate / duck_rate, duckdb_ingest_rss=d_rss, ingest_rss=rss,
                 duckdb_user_rate=lines / (d_cpu - duck.system), duckdb_system=duck.system)
    record("ingest", "ratio tally / DuckDB (wall, same threads)", f"{d_wall / wall:.2f}x")
    check_ingest_rows(lake, out_dir, summary)
    return lake


# The columns both ingests write with the same meaning (DuckDB's COPY has no `currency` and keeps
# unknown fields differently).
COMPARED = ("event_id", "event_type", "occurred_at", "user_id", "session_id", "correlation_id", "service", "country",
            "browser", "device", "item_id", "content_id", "price", "quantity")


def check_ingest_rows(lake, duck_dir, summary):
    """Not a timing: every row tally wrote is a row DuckDB's COPY wrote from the same file, column for
    column, and DuckDB's extra rows are no more than the lines tally quarantined (DuckDB validates
    nothing: a missing id or a time out of range is a row to it)."""
    cols = ", ".join(f"epoch_us({c})" if c == "occurred_at" else c for c in COMPARED)
    ours = os.path.join(lake, "events", "**", "*.parquet")
    theirs = os.path.join(duck_dir, "**", "*.parquet")
    t = f"SELECT DISTINCT {cols} FROM read_parquet('{ours}', hive_partitioning=false)"
    d = f"SELECT DISTINCT {cols} FROM read_parquet('{theirs}', hive_partitioning=false)"
    queries = {"tally": f"SELECT count(*) FROM ({t})", "duckdb": f"SELECT count(*) FROM ({d})",
               "missing": f"SELECT count(*) FROM ({t} EXCEPT {d})"}
    code = ("import duckdb, json, sys\n"
            "print(json.dumps({k: duckdb.sql(q).fetchall()[0][0] for k, q in json.loads(sys.argv[1]).items()}))")
    out = subprocess.run([DUCK, "-c", code, json.dumps(queries)], capture_output=True, text=True, check=True).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    if counts["missing"]:
        sys.exit(f"{counts['missing']:,} rows tally wrote are not rows DuckDB read from the same file")
    extra = counts["duckdb"] - counts["tally"]
    if not 0 <= extra <= summary["rejected"]:
        sys.exit(f"DuckDB wrote {extra:,} more distinct rows than tally; tally quarantined {summary['rejected']:,} lines")
    say(f"  check: the {counts['tally']:,} distinct rows tally wrote are rows DuckDB wrote from the same file, "
        f"{len(COMPARED)} columns each; DuckDB's {extra:,} more are lines tally quarantined")


def metric_sql():
    out = []
    for name in sorted(os.listdir(os.path.join(ROOT, "sql"))):
        if not name.endswith(".sql"):
            continue
        with open(os.path.join(ROOT, "sql", name)) as f:
            text = f.read()
        if re.search(r"^-- formula:", text, re.M):
            continue  # a ratio of two other metrics: computed when asked, nothing is rolled up
        dims = [d.strip() for d in re.search(r"^-- dimensions:(.*)$", text, re.M).group(1).split(",") if d.strip()]
        body = " ".join(" ".join(l for l in text.splitlines() if not l.startswith("--")).split())
        if re.search(r"\bAVG\(", body, re.I):
            # tally stores an average as its sum and its count; DuckDB computes the same two.
            for suffix, aggregate in (("__sum", "SUM("), ("__count", "COUNT(")):
                out.append((name[:-4] + suffix, dims, re.sub(r"\bAVG\(", aggregate, body, flags=re.I)))
            continue
        out.append((name[:-4], dims, body))
    return out


def subsets(dims):
    return [[d for i, d in enumerate(dims) if mask >> i & 1] for mask in range(1 << len(dims))]


def deduplicated(files):
    """The events once each, as tally counts them: one per event_id and hour, first received wins
    (ingest appends; the rollup and compaction drop repeats)."""
    return (f"SELECT * FROM read_parquet('{files}', hive_partitioning=false) QUALIFY row_number() OVER "
            f"(PARTITION BY event_id, date_trunc('hour', occurred_at) ORDER BY received_at) = 1")


def duckdb_rollup_script(lake):
    """The metric SQL, per hour, day and month, for every subset of its dimensions (as tally stores)."""
    files = os.path.join(lake, "events", "**", "*.parquet")
    script = f"CREATE VIEW events_raw AS {deduplicated(files)};\n"
    for grain in ("hour", "day", "month"):
        script += f"CREATE VIEW events_{grain} AS SELECT *, date_trunc('{grain}', occurred_at) AS __period FROM events_raw;\n"
    n = 0
    for name, dims, body in metric_sql():
        group = re.search(r"GROUP BY\s+(.*)$", body, re.S)
        if not body.upper().startswith("SELECT ") or " FROM events" not in body or not group:
            sys.exit(f"sql/{name}.sql is not of the SELECT ... FROM events ... GROUP BY shape the benchmark rewrites")
        sets = ", ".join("(" + ", ".join(["__period", *s]) + ")" for s in subsets(dims))
        for grain in ("hour", "day", "month"):
            q = "SELECT __period, " + body[len("SELECT "):group.start()].replace(" FROM events", f" FROM events_{grain}")
            q += f"GROUP BY GROUPING SETS ({sets})"
            script += f"CREATE TEMP TABLE r{n} AS {q};\n"
            n += 1
    return script


def rollup(lake):
    say("\n[2] Full rollup of every hour")
    wall, cpu, rss, out, _ = measure(tally("rollup", data=lake))
    report = json.loads(out)
    record("rollup", "tally rollup (every hour, day, month)", f"{wall:.1f} s",
           f"{len(report['hours_recomputed'])} hours, {report['rows_written']:,} rows, {cpu:.1f} CPU-s, peak {rss:,.0f} MiB")
    d_wall, d_cpu, d_rss, _, _ = duckdb(duckdb_rollup_script(lake), THREADS)
    record("rollup", f"DuckDB, same SQL and grouping sets ({THREADS} threads)", f"{d_wall:.1f} s",
           f"{d_cpu:.1f} CPU-s, peak {d_rss:,.0f} MiB; deduplicating as tally does; results kept in memory, not stored")
    record("rollup", "ratio tally / DuckDB (time)", f"{wall / d_wall:.2f}", "target <= 1.0")
    facts["rollup_vs_duckdb"] = wall / d_wall
    return wall


def incremental(lake, full_wall):
    say("\n[3] Incremental rollup after late events")
    hour = dt.datetime.fromisoformat(SPEC["end"].replace("Z", "+00:00")) - dt.timedelta(days=20, hours=12)
    late = os.path.join(DATA, "late.ndjson")
    with open(late, "w") as f:
        for i in range(1000):
            at = hour + dt.timedelta(seconds=i * 3)
            f.write(json.dumps({"event_id": f"late-{i}", "event_type": "purchase", "occurred_at": at.isoformat(),
                                "user_id": f"user-late-{i % 50}", "country": "KR", "item_id": "item-pro",
                                "price": "19.99"}) + "\n")
    # The median of three rounds, as for cold starts: the first rollup after DuckDB's run reads the parts of
    # its binary that ingest did not use back from disk. Each round delivers the same late events again,
    # which touches their hour again (their file is kept), so each recomputes the same hour, day and month.
    walls = []
    for _ in range(3):
        measure(tally("ingest", late, data=lake))
        wall, _, _, out, _ = measure(tally("rollup", data=lake))
        report = json.loads(out)
        if len(report["hours_recomputed"]) != 1:
            sys.exit(f"the late events should touch one hour, the rollup recomputed {report['hours_recomputed']}")
        walls.append(wall)
    wall = statistics.median(walls)
    record("incremental", "tally rollup of one late hour (with its day and month)", f"{wall:.2f} s",
           f"{wall / full_wall:.1%} of the full rollup, median of 3 rounds (slowest {max(walls):.2f} s); "
           "target <= 2%")
    facts["late_hour_share"] = wall / full_wall


def check_against_duckdb(lake):
    """Not a timing: the stored revenue equals DuckDB's sum over the same Parquet."""
    _, _, _, out, _ = measure(tally("query", "revenue", "--from", "2024-01-01", "--to", END_DATE, data=lake))
    ours = json.loads(out, parse_float=decimal.Decimal)["total"]
    files = os.path.join(lake, "events", "**", "*.parquet")
    code = ("import duckdb; print(duckdb.sql(\"SELECT SUM(price * COALESCE(quantity, 1)) FROM ("
            + deduplicated(files) + ") WHERE event_type = 'purchase'\").fetchall()[0][0])")
    out = subprocess.run([DUCK, "-c", code], capture_output=True, text=True, check=True).stdout
    theirs = decimal.Decimal(out.strip().splitlines()[-1])  # after DuckDB's progress bar, if any
    if ours != theirs:
        sys.exit(f"revenue differs: tally {ours}, DuckDB {theirs}")
    say(f"  check: all-time revenue {ours} equals DuckDB's sum over the same files (deduplicated)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def latency_rows(text, where):
    for line in text.splitlines():
        r = json.loads(line)
        if where == "in-process" and r["range_days"] == 90:
            facts["query_p99_90d_ms"] = max(facts.get("query_p99_90d_ms", 0), r["p99_us"] / 1000)
        record("query", f"{where}: {r['range_days']}-day daily, {r['shape']}",
               f"p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms", f"n={r['n']}")


LOAD_SECONDS = 20
LOAD_CONNECTIONS = 64
# What a dashboard asks (bench/tally_bench.rs asks the same shapes one at a time): 30 days daily, plain,
# filtered and grouped, over all metric kinds, and a dimension's values.
LOAD_PATHS = [
    "/v1/metrics/revenue?from={d30}&to={end}&interval=day",
    "/v1/metrics/revenue?from={d30}&to={end}&interval=day&country=KR",
    "/v1/metrics/revenue?from={d30}&to={end}&interval=day&group_by=country",
    "/v1/metrics/visitors?from={d30}&to={end}&interval=day",
    "/v1/metrics/average_order_value?from={d30}&to={end}&interval=day",
    "/v1/metrics/sign_ins/dimensions/browser?from={d30}&to={end}",
]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def wrk_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(port, server_pid):
    """wrk against the running server: every path in turn, for LOAD_SECONDS."""
    if not shutil.which("wrk"):
        sys.exit("make bench installs wrk (Debian); install it with apt-get install wrk")
    end = dt.date.fromisoformat(END_DATE)
    paths = [p.format(end=end.isoformat(), d30=(end - dt.timedelta(days=30)).isoformat()) for p in LOAD_PATHS]
    for p in paths:  # every path answers before any load: the figures are of right answers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{p}") as r:
            json.load(r)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("paths = {" + ", ".join(json.dumps(p) for p in paths) + "}\n"
                     "i = 0\n"
                     "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n")
    try:
        out = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(LOAD_CONNECTIONS), "-d", f"{LOAD_SECONDS}s",
                              "--latency", "-s", script.name, f"http://127.0.0.1:{port}"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # The rows of the latency distribution, not a "+/- Stdev" figure that happens to end in 50%.
    p50 = wrk_ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))
    p99 = wrk_ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket = sum(map(int, m.groups())) if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) else 0
    record("load", f"API: {LOAD_CONNECTIONS} connections for {LOAD_SECONDS} s ({len(paths)} dashboard queries in turn)",
           f"{rps:,.0f} requests/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms",
           f"{total:,} requests, {non_2xx} not 2xx, {socket} socket errors; wrk with {THREADS} threads on the same cores")
    record("load", "API server peak memory under load", f"{peak_rss_mib(server_pid):,.0f} MiB")
    if non_2xx or socket:
        sys.exit(f"the API failed under load: {non_2xx} not 2xx, {socket} socket errors")


def sustained_ingest(events):
    """One `tally ingest` reading a stream from stdin: the same events 1x and 4x (new ids each pass),
    so the stream's length, not its content, is what changes."""
    lines = 1_000_000
    for passes in (1, 4):
        lake = tempfile.mkdtemp(prefix="tally-sustained-", dir=DATA)
        feeder = subprocess.Popen([sys.executable, "-c", SUSTAINED_FEEDER, events, str(lines), str(passes)],
                                  stdout=subprocess.PIPE)
        try:
            wall, cpu, rss, out, _ = measure(tally("ingest", data=lake), stdin=feeder.stdout)
        finally:
            feeder.stdout.close()
            feeder.wait()
            discard(lake)
        summary = json.loads(out)
        record("load", f"sustained ingest, one stream of {passes * lines:,} lines", f"peak {rss:,.0f} MiB",
               f"{wall:.1f} s, {summary['accepted']:,} accepted, {summary['rejected']:,} quarantined")


def rollup_memory(events):
    """The rollup's peak memory as the events per hour grow 1x, 4x and 16x over the bench's: the first
    day of the bench file, each event sent FACTOR times with new ids, rolled up with work cut to
    each budget."""
    say("\n[5b] Rollup memory as events per hour grow")
    lines = SPEC["events_per_day"]
    # No budget worth the name (a whole day at a time, as before the budget), the default, and a small one.
    budgets = [("unbounded (a day at a time)", "100000"), ("default 32 MiB", None), ("4 MiB", "4")]
    for factor in (1, 4, 16):
        lake = tempfile.mkdtemp(prefix=f"tally-squeezed-{factor}x-", dir=DATA)
        try:
            feeder = subprocess.Popen([sys.executable, "-c", SUSTAINED_FEEDER, events, str(lines), str(factor)],
                                      stdout=subprocess.PIPE)
            try:
                measure(tally("ingest", data=lake), stdin=feeder.stdout)
            finally:
                feeder.stdout.close()
                feeder.wait()
            for i, (name, mib) in enumerate(budgets):
                # The first run builds every metric over every hour; the next ones recompute the
                # same hours in place: the same work.
                args = ["rollup"] + (["--full"] if i else []) + (["--shard-mb", mib] if mib else [])
                wall, cpu, rss, out, _ = measure(tally(*args, data=lake))
                report = json.loads(out)
                hours = max(1, len(report["hours_recomputed"]))
                facts.setdefault("rollup_peaks", {}).setdefault(name, []).append(rss)
                record("rollup-memory", f"{factor}x events per hour, budget {name}", f"peak {rss:,.0f} MiB",
                       f"{hours} hours of ~{lines * factor / hours:,.0f} events, {report['hours_split']} split in shards, "
                       f"{wall:.1f} s, {cpu:.1f} CPU-s")
        finally:
            discard(lake)


# Writes the first N lines of the bench file, PASSES times, each pass's event ids made new.
SUSTAINED_FEEDER = """
import sys
path, n, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'rb') as f:
    head = [next(f) for _ in range(n)]
out = sys.stdout.buffer
for p in range(passes):
    tag = b'"event_id":"p%d-' % p
    out.writelines(line.replace(b'"event_id":"', tag, 1) for line in head)
"""


def queries(lake):
    say("\n[4] Query latency (revenue, daily series)")
    bench = os.path.join(BIN, "tally-bench")
    _, _, _, out, _ = measure([bench, "--end", END_DATE, "in-process", "--data", lake])
    latency_rows(out, "in-process")
    port = free_port()
    server = subprocess.Popen(tally("serve", "--addr", f"127.0.0.1:{port}", data=lake), stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                time.sleep(0.1)
        _, _, _, out, _ = measure([bench, "--end", END_DATE, "http", "--addr", f"127.0.0.1:{port}"])
        latency_rows(out, "HTTP")
        say("\n[5] Load")
        load(port, server.pid)
    finally:
        server.terminate()
        server.wait()


class RuntimeApi(http.server.ThreadingHTTPServer):
    """A local Lambda Runtime API serving one invocation."""

    daemon_threads = True

    def __init__(self, event):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.event, self.outcome, self.done = event.encode(), None, threading.Event()
        # The next-invocation poll is held until the harness has read the process's memory: answering it
        # would let the runtime exit, and an exited process has no VmHWM left to read.
        self.release = threading.Event()
        self.served = False


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.server.served:
            self.server.release.wait(600)  # one invocation per process
            return
        self.server.served = True
        self.send_response(200)
        deadline = int(time.time() * 1000) + 600_000
        for k, v in {"Lambda-Runtime-Aws-Request-Id": "bench", "Lambda-Runtime-Deadline-Ms": str(deadline),
                     "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                     "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                     "Content-Length": str(len(self.server.event))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(self.server.event)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.outcome = (self.path.rsplit("/", 1)[-1], body.decode(errors="replace"))
        self.server.done.set()


def invoke(binary, env, event):
    """Starts the function binary, serves it `event`; returns (cold start s, peak RSS MiB, outcome)."""
    api = RuntimeApi(event)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    full_env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
                "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", **env}
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not api.done.wait(600):
        proc.kill()
        sys.exit(f"{binary} gave no answer")
    took = time.perf_counter() - started
    with open(f"/proc/{proc.pid}/status") as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024
    proc.kill()
    proc.wait()
    api.release.set()
    api.shutdown()
    kind, body = api.outcome
    if kind != "response":
        sys.exit(f"{binary} answered {kind}: {body[:500]}")
    return took, hwm, body


def sqs_record(i, body):
    return {"messageId": f"m-{i}", "receiptHandle": f"h-{i}", "body": body, "attributes": {
        "ApproximateReceiveCount": "1", "SentTimestamp": "1790000000000", "SenderId": "bench",
        "ApproximateFirstReceiveTimestamp": "1790000000000"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tally-events", "awsRegion": "us-east-1"}


def sqs_batch(events, limit=6 * 1000 * 1000):
    """The largest SQS event under Lambda's 6 MB payload limit, of messages packed as `tally send`
    packs them (JSON arrays <= 250 KiB)."""
    records, body, size, count, total = [], [], 0, 0, 20
    with open(events) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            if size + len(line) > 250 * 1024:
                record = json.dumps(sqs_record(len(records), "[" + ",".join(body) + "]"))
                if total + len(record) + 1 > limit:
                    break
                records.append(record)
                total += len(record) + 1
                count += len(body)
                body, size = [], 0
            body.append(line.strip())
            size += len(line) + 1
    return '{"Records": [' + ",".join(records) + "]}", count


def functions(events, package):
    say("\n[6] Functions")
    zips = {f: os.path.join(ROOT, "target", "lambda", f"tally-{f}", "bootstrap.zip") for f in ("ingest", "rollup", "api")}
    if package:  # incremental: a no-op when the zips match the source, so the sizes are never stale
        subprocess.run(["make", "package"], cwd=ROOT, check=True)
    for f, z in zips.items():
        if os.path.exists(z):
            record("functions", f"{f} zip (arm64)", f"{os.path.getsize(z) / 1e6:.1f} MB", "target <= 10 MB")
            facts.setdefault("zip_mb", {})[f] = os.path.getsize(z) / 1e6
    if os.path.exists(zips["rollup"]):
        with zipfile.ZipFile(zips["rollup"]) as z:
            binary = z.read("bootstrap")
        zip_sections(binary)
        image_layer(binary)
    endpoint = os.environ.get("TALLY_TEST_AWS_ENDPOINT")
    if not endpoint:
        sys.exit("run under tests/support/with-moto.sh (the functions need S3 and DynamoDB)")
    import boto3

    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_ALLOW_HTTP": "true"}
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    bucket, table = f"bench-{int(time.time())}", f"bench-{int(time.time())}"
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    session.client("dynamodb", endpoint_url=endpoint).create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        # As DynamoStore::create_table and infra/dynamodb.tf.
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in (("pk", "S"), ("sk", "N"), ("set_pk", "S"))],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_set", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "set_pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}])
    env = {**aws, "TALLY_BUCKET": bucket, "TALLY_TABLE": table}
    batch, n = sqs_batch(events)
    took, hwm, body = invoke(os.path.join(BIN, "tally-ingest"), env, batch)
    if json.loads(body) != {"batchItemFailures": []}:
        sys.exit(f"ingest failed records: {body[:300]}")
    facts["batch_peak_mib"] = hwm
    record("functions", f"ingest: {len(batch) / 1e6:.1f} MB SQS batch ({n:,} events)", f"peak {hwm:.0f} MiB",
           f"process start to response {took * 1000:.0f} ms (incl. S3 writes to moto); target <= 256 MiB")
    # Cold starts on an empty bucket and table, so the first invocation is the function's own start.
    bucket = f"bench-cold-{int(time.time())}"
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    env = {**env, "TALLY_BUCKET": bucket}
    for f, event in (("api", json.dumps({**json.loads(open(os.path.join(ROOT, "tests", "fixtures", "api-gateway-v2-request.json")).read()), "rawPath": "/health", "rawQueryString": ""})),
                     ("rollup", json.dumps({"job": "rollup"})),
                     ("ingest", open(os.path.join(ROOT, "tests", "fixtures", "sqs-event.json")).read())):
        # Five fresh processes each: the first may also pay for reading the binary from this VM's disk
        # (the bench data has just pushed it out of the page cache), which is not the function's start.
        runs = sorted(invoke(os.path.join(BIN, f"tally-{f}"), env, event)[:2] for _ in range(COLD_STARTS))
        median, slowest = runs[len(runs) // 2], runs[-1]
        facts.setdefault("cold_start_ms", {})[f] = median[0] * 1000
        record("functions", f"{f} cold start (x86_64 {PROFILE} build, local Runtime API)", f"{median[0] * 1000:.0f} ms",
               f"median of {COLD_STARTS} process starts to first response, incl. its first invocation (slowest "
               f"{slowest[0] * 1000:.0f} ms); peak {max(r[1] for r in runs):.0f} MiB; target <= 50 ms")


def zip_sections(binary):
    """What the rollup's zip holds: each large section of its binary deflated on its own (as the zip
    deflates the whole file), so the rows add up to about the zip's size. Works on the stripped build."""
    with tempfile.NamedTemporaryFile(suffix=".elf") as f:
        f.write(binary)
        f.flush()
        headers = subprocess.run(["readelf", "-S", "-W", f.name], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in headers.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if not m or m.group(2) == "NOBITS":
            continue
        offset, size = int(m.group(3), 16), int(m.group(4), 16)
        if size >= 1_000_000:
            rows.append((len(zlib.compress(binary[offset:offset + size], 9)), size, m.group(1)))
    facts["rollup_zip_sections_mb"] = {name: packed / 1e6 for packed, _, name in rows}
    for packed, size, name in sorted(rows, reverse=True):
        record("functions", f"rollup zip: {name}", f"{packed / 1e6:.1f} MB", f"{size / 1e6:.1f} MB unzipped")


def image_layer(binary):
    """The other way to ship the rollup: a container image. Its layer is the same binary in a tar,
    gzip-compressed as image builders compress layers (level 6), so its size is measured here rather
    than assumed; a base image would only add to it."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        member = tarfile.TarInfo("var/runtime/bootstrap")
        member.size, member.mode = len(binary), 0o755
        tar.addfile(member, io.BytesIO(binary))
    packed = len(gzip.compress(layer.getvalue(), compresslevel=6, mtime=0))
    facts["rollup_image_layer_mb"] = packed / 1e6
    record("functions", "rollup as a container image layer (the same binary, tar + gzip -6)", f"{packed / 1e6:.1f} MB",
           "the image path's size, without a base image; its cold start needs Lambda to measure")


# Where ingest's instructions go, by the part of the work: the inclusive cost of the functions that
# do it (out of line in the profiling build), so a part includes what it calls and an "of which" row
# is inside the row above it.
INGEST_PARTS = (
    ("reading and checking each line (JSON, fields, times)", r"tally::model::event::parse_ndjson(_into)?"),
    ("building Arrow columns", r"tally::model::event_table::to_record_batch"),
    ("writing Parquet (encoding, statistics; no compression at ingest)", r"parquet::arrow::arrow_writer::ArrowWriter<W>::(write|close)"),
    ("naming each file by its content (BLAKE3)", r"tally::lake::objects::event_file_name"),
    ("dropping an hour's copies and ordering its rows (one sort)", r"tally::ingest::file_rows"),
    ("putting the columns in the file's order (Arrow's take)", r"arrow_select::take::take_record_batch"),
)
PROFILE_LINES = 100_000


def inclusive_costs(callgrind_out):
    """(the program's instruction count, inclusive counts per function), from callgrind_annotate."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", callgrind_out],
                          capture_output=True, text=True, check=True).stdout
    total, costs = None, {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?$", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        if m.group(2) == "PROGRAM TOTALS":
            total = count
        elif ":" in m.group(2):
            # A function is listed once per source file its code came from; the entry with all of
            # it is the largest.
            name = m.group(2).split(":", 1)[1]
            costs[name] = max(costs.get(name, 0), count)
    return total, costs


def has_symbols(binary):
    """Whether a function can be named in `binary`: the release profile strips its symbols."""
    sections = subprocess.run(["readelf", "-S", binary], capture_output=True, text=True, check=True).stdout
    return ".symtab" in sections


def profiles(events):
    say("\n[7] Where the time and the bytes go")
    if not has_symbols(os.path.join(BIN, "tally")):
        say(f"  skipped: the {PROFILE} build has no symbols to name functions by; "
            "run make bench BENCH_PROFILE=profiling for this step")
        return
    ingest_profile(events)
    artifact_profile()


def ingest_profile(events):
    """The profile behind the ingest figures: `valgrind --tool=callgrind` (instruction counts, which
    repeat exactly where this VM's timings do not) of one-thread ingest of the first lines of the file."""
    sample = os.path.join(DATA, f"first-{PROFILE_LINES}.ndjson")
    with open(events, "rb") as src, open(sample, "wb") as dst:
        for _ in range(PROFILE_LINES):
            dst.write(src.readline())
    lake = tempfile.mkdtemp(prefix="tally-profile-", dir=DATA)
    out = os.path.join(lake, "callgrind.out")
    try:
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        *tally("ingest", "--threads", "1", sample, data=lake)],
                       check=True, capture_output=True)
        total, costs = inclusive_costs(out)
    finally:
        discard(lake)
        os.remove(sample)
    record("profile", f"ingest, 1 thread, first {PROFILE_LINES:,} lines", f"{total / 1e9:.2f} G instructions",
           f"{total / PROFILE_LINES:,.0f} per line (callgrind)")
    rest = total
    for label, pattern in INGEST_PARTS:
        found = [c for name, c in costs.items() if re.fullmatch(pattern, name)]
        if not found:
            sys.exit(f"the profile names no function {pattern!r}: update bench/run.py's INGEST_PARTS")
        inside = label.startswith(" ")
        if not inside:
            rest -= sum(found)
        if not inside:
            facts.setdefault("ingest_profile", {})[label] = sum(found) / total
        record("profile", f"ingest: {label.strip()}", f"{sum(found) / total:.0%}",
               "inside the row above" if inside else "of all instructions")
    record("profile", "ingest: the rest (grouping by hour, allocation, reading the file, writing it)",
           f"{rest / total:.0%}")


def artifact_profile():
    """Why the rollup's zip is the size it is: the rollup binary's machine code by the crate that
    defines it (this run's build for this machine; the arm64 zip is built from the same crates). Generic code is
    counted under the crate of the first non-std path in its name, the type it was made for."""
    binary = os.path.join(BIN, "tally-rollup")
    sections = subprocess.run(["size", "-A", binary], capture_output=True, text=True, check=True).stdout
    text_size = next(int(l.split()[1]) for l in sections.splitlines() if l.startswith(".text "))
    nm = subprocess.run(["nm", "--print-size", "--demangle", "--defined-only", binary],
                        capture_output=True, text=True, check=True).stdout
    by_crate = {}
    for line in nm.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[2] not in ("t", "T"):
            continue
        crates = [c for c in re.findall(r"(?<![\w:])([a-z_][a-z0-9_]*)::", parts[3]) if c not in ("core", "alloc", "std")]
        crate = crates[0] if crates else ("std" if "::" in parts[3] else "C and other")
        # One entry per family: datafusion_physical_plan, datafusion_expr... are all DataFusion.
        family = crate.split("_")[0] if crate.startswith(("datafusion", "arrow", "aws", "sqlparser")) else crate
        by_crate[family] = by_crate.get(family, 0) + int(parts[1], 16)
    record("profile", f"rollup binary machine code (.text, {os.uname().machine})", f"{text_size / 1e6:.1f} MB",
           f"{os.path.getsize(binary) / 1e6:.0f} MB file with symbols")
    for crate, size in sorted(by_crate.items(), key=lambda kv: -kv[1])[:8]:
        record("profile", f"rollup .text from {crate}", f"{size / 1e6:.1f} MB", f"{size / text_size:.0%}")


def targets():
    """Every target judged by this run's own figures and, for one missed, the measured reason: the bound the
    profile's shares set (step [7]), never a figure carried over from another run."""
    say("\n[8] Targets")

    def judge(target, met, figure, why):
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        record("targets", target, verdict, figure + (f"; {why}" if met is False and why else ""))

    prof = facts.get("ingest_profile")
    no_profile = "no profile in this run: step [7] needs BENCH_PROFILE=profiling"

    def parse_bound(rate, goal, show):
        """Why ingest misses `goal`: how far it would get were its largest part free, and whether that
        alone would close the gap."""
        if not prof:
            return no_profile
        largest, share = max(prof.items(), key=lambda kv: kv[1])
        closes = rate / (1 - share) >= goal
        return (f"step [7] splits ingest's instructions into "
                + ", ".join(f"{label} {s:.0%}" for label, s in prof.items())
                + f"; were the largest ({largest}) free, ingest would reach at most {show(rate / (1 - share))}, "
                + ("so that part alone could close the gap" if closes else
                   f"so no one part removed closes the gap of {goal / rate:.1f}x: it lies in the work per event as a whole"))

    cpu, system = facts["ingest_cpu"], facts["ingest_system"]
    in_memory = (f"{facts['in_memory_system']:.1f} with the lake in memory" if "in_memory_system" in facts
                 else "the lake-in-memory run skipped")
    # The kernel's part is measured, not profiled: the profile of step [7] counts user-space instructions.
    kernel = (f"of its {cpu:.1f} CPU-s, {system:.1f} ({system / cpu:.0%}) were the kernel's, writing the lake "
              f"({in_memory}); tally's own work alone (user time) ran {facts['ingest_user_rate']:,.0f} events per "
              f"CPU-second, DuckDB's {facts['duckdb_user_rate']:,.0f} (its kernel time {facts['duckdb_system']:.1f} s)")
    r = facts["ingest_vs_duckdb"]
    judge("ingest >= 3x DuckDB per CPU-second", r >= 3,
          f"{r:.2f}x (DuckDB validates, deduplicates and quarantines nothing; "
          f"peak {facts['duckdb_ingest_rss']:,.0f} MiB against tally's {facts['ingest_rss']:,.0f})",
          kernel + "; " + parse_bound(r, 3, lambda x: f"{x:.2f}x DuckDB"))
    rate, ceiling = facts["ingest_rate"], facts["json_ceiling"]
    judge(">= 1,000,000 events per CPU-second", rate >= 1e6,
          f"{rate:,.0f}, {rate / ceiling:.0%} of only parsing the file's JSON ({ceiling:,.0f} lines per CPU-second)",
          kernel + "; " + parse_bound(rate, 1e6, lambda x: f"{x:,.0f} events per CPU-second"))
    if THREADS > 1:
        wall, cpu, s_wall, s_cpu = (facts[k] for k in ("ingest_wall", "ingest_cpu", "one_thread_wall", "one_thread_cpu"))
        # Near-linear: within a tenth of ideal.
        judge(f"near-linear ingest scaling (>= {0.9 * THREADS:.1f}x on {THREADS} cores)", s_wall / wall >= 0.9 * THREADS,
              f"{s_wall / wall:.2f}x",
              f"{THREADS} cores spent {cpu:.1f} CPU-s against {s_cpu:.1f} on one ({cpu / s_cpu - 1:+.0%} work; "
              f"the kernel's {facts['ingest_system']:.1f} against {facts['one_thread_system']:.1f} s) and "
              f"left the cores idle {1 - cpu / (wall * THREADS):.0%} of the time")
    judge("a 6 MB Lambda batch <= 256 MiB", facts["batch_peak_mib"] <= 256, f"peak {facts['batch_peak_mib']:.0f} MiB", "")
    judge("full rollup <= 1.0x DuckDB", facts["rollup_vs_duckdb"] <= 1.0, f"{facts['rollup_vs_duckdb']:.2f}x", "")
    peaks = facts["rollup_peaks"]
    small = peaks["4 MiB"]
    judge("rollup memory flat as events per hour grow 1x, 4x, 16x (within 25%)", max(small) <= 1.25 * min(small),
          "peak " + "; ".join(f"{', '.join(f'{p:,.0f}' for p in v)} MiB with budget {k}" for k, v in peaks.items()),
          "the 4 MiB budget did not bind")
    judge("late-hour rollup <= 2% of the full", facts["late_hour_share"] <= 0.02, f"{facts['late_hour_share']:.1%}", "")
    judge("query p99 <= 5 ms (90-day daily, in-process)", facts["query_p99_90d_ms"] <= 5,
          f"worst {facts['query_p99_90d_ms']:.2f} ms", "")
    cold = facts["cold_start_ms"]
    judge("cold start <= 50 ms", max(cold.values()) <= 50,
          ", ".join(f"{f} {ms:.0f} ms" for f, ms in cold.items()) + f" ({PROFILE} build, x86_64)", "")
    zips = facts.get("zip_mb", {})
    if "rollup" in zips:
        text = facts.get("rollup_zip_sections_mb", {}).get(".text")
        judge("every zip <= 10 MB", max(zips.values()) <= 10, ", ".join(f"{f} {mb:.1f} MB" for f, mb in zips.items()),
              "; ".join(([f"the rollup's machine code (.text) alone deflates to {text:.1f} MB"] if text else [])
                        + ([f"as a container image its layer is {facts['rollup_image_layer_mb']:.1f} MB, no smaller"]
                           if "rollup_image_layer_mb" in facts else [])))
    else:
        judge("every zip <= 10 MB", None, "make package was skipped (--no-package) and target/lambda holds no zip", "")


def write_results():
    today = dt.date.today().isoformat()
    lines = [f"# Benchmark results", "",
             f"`make bench` on {today}, {os.cpu_count()} cores ({platform()}), data: `tally generate` "
             f"{SPEC['days']} days x {SPEC['events_per_day']:,} events/day, {SPEC['users']:,} users, seed {SPEC['seed']} "
             f"(duplicates, late and malformed lines included); tally built with the `{PROFILE}` cargo profile; "
             f"DuckDB {duckdb_version()}.", ""]
    section = None
    for sec, name, value, note in results:
        if sec != section:
            lines += ["", f"## {sec}", "", "| measure | figure | notes |", "| --- | --- | --- |"]
            section = sec
        lines.append(f"| {name} | {value} | {note} |")
    path = os.path.join(ROOT, "bench", "RESULTS.md")
    old = open(path).read() if os.path.exists(path) else ""
    analysis = old[old.index("<!-- analysis -->"):] if "<!-- analysis -->" in old else "<!-- analysis -->\n"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n\n" + analysis)
    say(f"\nwrote {path}")


def duckdb_version():
    return subprocess.run([DUCK, "-c", "import duckdb; print(duckdb.__version__)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def platform():
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        return "unknown CPU"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-package", action="store_true", help="skip make package: report the zips already in target/lambda, if any")
    args = p.parse_args()
    events, lines = dataset()
    say(f"data: {events} ({lines:,} lines, {os.path.getsize(events) / 1e9:.2f} GB)")
    try:
        lake = ingest(events, lines)
        full = rollup(lake)
        check_against_duckdb(lake)
        incremental(lake, full)
        queries(lake)
        sustained_ingest(events)
        rollup_memory(events)
        functions(events, not args.no_package)
        profiles(events)
    finally:
        empty_trash()
    targets()
    write_results()


if __name__ == "__main__":
    main()
