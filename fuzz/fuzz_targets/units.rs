//! Durations and sizes in lifeboat's one grammar: no input may panic, and
//! a duration lifeboat prints reads back as itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = lifeboat_units::parse_duration(text) {
            let whole = std::time::Duration::from_secs(d.as_secs());
            let again = lifeboat_units::parse_duration(&lifeboat_units::format_duration(whole));
            assert_eq!(again, Ok(whole));
        }
        let _ = lifeboat_units::parse_size(text);
        let _ = text.parse::<lifeboat_postgres::lsn::Lsn>();
    }
});
