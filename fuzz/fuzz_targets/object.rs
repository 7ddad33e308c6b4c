//! Sealed object envelopes (config, index, snapshot): header parsing,
//! authentication and bounded decompression must reject any input cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::crypto::MasterKey;
use lifeboat_format::object::{ObjectHeader, ObjectKind, open_object};

fuzz_target!(|data: &[u8]| {
    let _ = ObjectHeader::parse(data);
    let key = MasterKey::from_bytes(&[7; 64]);
    for kind in [ObjectKind::Config, ObjectKind::Index, ObjectKind::Snapshot] {
        let _ = open_object(&key, kind, b"config", data);
    }
});
