//! Support for tests of this crate and of the functions (the `testkit` feature; in no shipped
//! binary): connections to the S3/SQS/DynamoDB emulator that `make test` starts, and a local Lambda
//! Runtime API that runs a function's real binary.

pub mod moto;
pub mod runtime_api;
