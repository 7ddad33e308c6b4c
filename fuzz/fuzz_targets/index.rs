//! Index file payloads (after decryption): counts and entries are untrusted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::index::IndexFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = IndexFile::decode(data) {
        // Whatever decodes must encode back to the same bytes.
        assert_eq!(index.encode(), data);
    }
});
