//! Support for tests of this crate and of the functions (the `testkit` feature; in no shipped
//! binary): connections to the S3/SQS/DynamoDB emulator that `make test` starts, a local Lambda
//! Runtime API that runs a function's real binary, and the fuzz targets' bodies.

pub mod fuzz;
pub mod moto;
pub mod runtime_api;
