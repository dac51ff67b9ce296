//! Tools around the pipeline: `tally send` (NDJSON to SQS for producers) and the demo traffic
//! generator behind `tally demo`, `tally generate` and the tests.

pub mod demo;
pub mod send;
