//! Snapshot payloads (after decryption).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::snapshot::Snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::from_json(data) {
        let again = Snapshot::from_json(&s.to_json());
        assert!(again.is_ok());
    }
});
