#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tally::testkit::fuzz::queue_message(data));
