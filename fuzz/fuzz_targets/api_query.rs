#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tally::testkit::fuzz::api_query(data));
