//! Tree blobs: names must never allow path traversal on restore.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::tree::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::from_json(data) {
        for node in &tree.nodes {
            assert!(node.name.is_safe_component());
        }
    }
});
