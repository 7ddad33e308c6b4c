//! Snapshot payloads (after decryption).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::snapshot::Snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::from_json(data) {
        let json = s.to_json().expect("a parsed snapshot encodes again");
        let again = Snapshot::from_json(&json);
        assert!(again.is_ok());
    }
});
