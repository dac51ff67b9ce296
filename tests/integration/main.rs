//! tally's integration tests, in one binary: DataFusion and the AWS SDKs are linked once instead of
//! once per file.
//!
//! - `end_to_end`: generated traffic through ingest and rollup into real files and SQLite, every
//!   shipped metric checked against [`oracle`], an independent recomputation from the raw lines;
//! - `api`: the HTTP API's answers, errors, token and CORS, over a real socket too;
//! - `cli`: the `tally` binary as a user runs it;
//! - `aws_emulator`: the functions' handlers over S3, SQS and DynamoDB (moto), with faults,
//!   redeliveries and DynamoDB reads that lag behind writes;
//! - `metric_versions`: deploys of changed, new and removed metrics rebuilding themselves, on one
//!   machine and over moto;
//! - `published_contracts`: the JSON Schema and OpenAPI documents agree with the code.
//!
//! The AWS tests need the emulator `make test` starts (`tests/support/with-moto.sh`).

mod api;
mod aws_emulator;
mod cli;
mod end_to_end;
mod flaky_store;
mod metric_versions;
mod oracle;
mod published_contracts;

use tally::testkit::moto;
