//! tally's integration tests, in one binary: DataFusion and the AWS SDKs are linked once instead of
//! once per file.
//!
//! - `end_to_end`: generated traffic through ingest and rollup into real files and SQLite, every
//!   shipped metric checked against [`oracle`], an independent recomputation from the raw lines;
//! - `api`: the HTTP API's answers, errors, token and CORS, over a real socket too;
//! - `cardinality`: many values of one dimension make at most `max_values` groups, every number
//!   exact against the oracle;
//! - `cli`: the `tally` binary as a user runs it;
//! - `aws_emulator`: the functions' handlers over S3, SQS and DynamoDB (moto), with faults,
//!   redeliveries and DynamoDB reads that lag behind writes;
//! - `crash_points`: a crash before every write of a whole pipeline run, on one machine and over
//!   moto, recovers to exactly the clean run's numbers and events;
//! - `hostile_input`: the catalogue of nasty input (deep nesting, huge lines, bad UTF-8, odd
//!   numbers and years, compressed files), each with its expected outcome;
//! - `interleavings`: ingests racing compactions and rollups in random schedules (a property
//!   test): nothing lost or counted twice;
//! - `metric_versions`: deploys of changed, new and removed metrics rebuilding themselves, on one
//!   machine and over moto;
//! - `service_faults`: S3 and DynamoDB failing as AWS does (SlowDown, 500s, throttling, a stall),
//!   injected through the protocol: retried where they happen, a persistent one fails the run and
//!   the next resumes, the API answers 503;
//! - `shards`: hours larger than one piece of rollup work, split into shards by event id, computed
//!   in the run and fanned out over an SQS queue to the worker: the numbers of an unsplit run;
//! - `tls`: the binary's AWS SDK and S3 clients over real HTTPS, checking the certificate;
//! - `fuzz_corpus`: every input the fuzzers kept (`fuzz/corpus/`) replayed through their targets;
//! - `published_contracts`: the JSON Schema and OpenAPI documents agree with the code.
//!
//! The AWS tests need the emulator and the endpoints in front of it that `make test` starts
//! (`tests/support/with-moto.sh`).

mod api;
mod aws_emulator;
mod cardinality;
mod cli;
mod crash_points;
mod end_to_end;
mod flaky_store;
mod fuzz_corpus;
mod hostile_input;
mod interleavings;
mod metric_versions;
mod oracle;
mod published_contracts;
mod service_faults;
mod shards;
mod tls;

use tally::testkit::moto;
