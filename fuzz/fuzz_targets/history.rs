//! Timeline history files (read from the archive and from pg_wal): no
//! input may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lifeboat_postgres::history::parse(text);
    }
});
