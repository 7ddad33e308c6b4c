//! Pack headers, trailers and entry tables.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::crypto::MasterKey;
use lifeboat_format::pack::{PackHeader, decode_entry_table, read_trailer};

fuzz_target!(|data: &[u8]| {
    let _ = PackHeader::parse(data);
    let _ = decode_entry_table(data);
    let _ = read_trailer(&MasterKey::from_bytes(&[7; 64]), data);
});
