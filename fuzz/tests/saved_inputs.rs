//! Every input saved under `fuzz/inputs/<target>/` (the corpus AFL++ grew, the crashes it
//! found, and a few written by hand) goes through its target again: none may panic.

use std::path::Path;

#[test]
fn every_saved_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("inputs");
    for (name, target) in berth_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no saved input for {name} in {}",
            dir.display()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let ran = std::panic::catch_unwind(|| target(&data));
            assert!(ran.is_ok(), "{name}: {} panics", file.display());
        }
    }
}
