//! The committed header is what cbindgen makes of the source now: a function, type or
//! doc comment changed without regenerating the header fails here.
//!
//! `SOLME_WRITE_HEADER=1 cargo test -p solme-client-ffi --test ffi header` writes it.

use std::path::Path;

#[test]
fn the_committed_header_is_the_generated_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    // From the source files alone (parse_deps is off): no `cargo metadata` run, which
    // would wait on the lock of a cargo already building.
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .unwrap()
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();

    let path = dir.join("include/solme_client.h");
    if std::env::var_os("SOLME_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what cbindgen generates from the source; regenerate it with \
         `SOLME_WRITE_HEADER=1 cargo test -p solme-client-ffi --test ffi header` and commit it.\n\
         generated:\n{generated}",
        path.display()
    );
}
