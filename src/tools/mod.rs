//! Tools around the pipeline: `tally send` (NDJSON to SQS for producers), the demo traffic
//! generator behind `tally demo`, `tally generate` and the tests, and the data team's
//! `tally sql test` and `tally sql preview`.

pub mod demo;
pub mod send;
pub mod sql_preview;
pub mod sql_test;
