//! The fuzz targets' corpus (`fuzz/corpus/<target>/`, grown and minimised by `make fuzz`) and the
//! inputs that once failed (`fuzz/regressions/<target>/`, kept whole), replayed through the same
//! bodies the fuzzers run (`tally::testkit::fuzz`): every input found so far keeps its promise on
//! stable Rust, with no fuzzer installed.

use std::path::Path;

use tally::testkit::fuzz;

fn replay(target: &str, body: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = fuzz.join("corpus").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    // A corpus the fuzzer never grew would make this test a formality.
    assert!(
        inputs.len() >= 100,
        "{target}: only {} inputs in {}",
        inputs.len(),
        dir.display()
    );
    if let Ok(found) = std::fs::read_dir(fuzz.join("regressions").join(target)) {
        inputs.extend(found.map(|entry| entry.unwrap().path()));
    }
    inputs.sort();
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        // A panic names the input: `cargo +nightly fuzz run <target> <file>` replays it.
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", input.display());
    }
}

#[test]
fn the_event_line_parser_keeps_its_promises_on_every_corpus_input() {
    replay("event_lines", fuzz::event_lines);
}

#[test]
fn the_queue_message_parser_keeps_its_promises_on_every_corpus_input() {
    replay("queue_message", fuzz::queue_message);
}

#[test]
fn the_api_answers_every_corpus_query_without_a_server_error() {
    replay("api_query", fuzz::api_query);
}

#[test]
fn the_metric_header_parser_keeps_its_promises_on_every_corpus_input() {
    replay("metric_sql", fuzz::metric_sql);
}
