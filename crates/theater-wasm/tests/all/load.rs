//! Loading: bad bytes get clear errors; compiled components are cached by hash.

use theater_test_support::example_component;
use theater_wasm::LoadError;

use crate::support::host;

#[test]
fn not_wasm_core_modules_and_wrong_worlds_are_named() {
    let host = host();
    let err = host.load(b"definitely not wasm", "junk.bin").unwrap_err();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("junk.bin"));

    let core_module = b"\0asm\x01\0\0\0";
    let err = host.load(core_module, "core.wasm").unwrap_err();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");

    let mut garbage = b"\0asm\x0d\0\x01\0".to_vec();
    garbage.extend_from_slice(&[0xff; 16]);
    let err = host.load(&garbage, "garbage.wasm").unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");

    // A valid but empty component: it exports nothing the actor world needs.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let err = host.load(empty_component, "empty.wasm").unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("theater:actor"), "{err}");

    let err = host.load_file("/no/such/file.wasm").unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
}

#[test]
fn components_are_cached_by_hash() {
    let host = host();
    let bytes = std::fs::read(example_component("counter")).unwrap();
    let a = host.load(&bytes, "a").unwrap();
    // The second load is served from the cache: its errors would name "b" otherwise.
    let b = host.load(&bytes, "b").unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash(), theater_chain::Hash::digest(&bytes));
}

#[test]
fn the_disk_cache_survives_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(example_component("counter")).unwrap();
    let config = || {
        theater_wasm::WasmConfig::default()
            .pooling(None)
            .cache_dir(dir.path())
    };
    theater_wasm::WasmHost::new(config())
        .unwrap()
        .load(&bytes, "counter")
        .unwrap();
    // The cache worker writes asynchronously; give it a moment, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let count = || walk(dir.path());
    while count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(count() > 0, "nothing was written to the disk cache");
    theater_wasm::WasmHost::new(config())
        .unwrap()
        .load(&bytes, "counter")
        .unwrap();
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
