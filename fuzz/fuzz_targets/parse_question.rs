//! Fuzzes the DNS question parser the kernel runs: any input either parses into a consistent
//! question or is refused with a pass reason; it never panics or reads out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    filter_common::dns::check_parse_invariants(data);
});
