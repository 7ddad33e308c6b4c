//! Key slots are stored in the clear: parsing must reject anything malformed.
//! (Unwrapping runs Argon2 with the slot's own, capped, cost and is not fuzzed.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::keyslot::KeySlot;

fuzz_target!(|data: &[u8]| {
    if let Ok(slot) = KeySlot::from_json(data) {
        let json = slot.to_json().expect("a parsed slot encodes again");
        assert!(KeySlot::from_json(&json).is_ok());
    }
});
