//! Replays every fuzz target's corpus (`fuzz/corpus/<target>/*`) through
//! the same entry points `cargo fuzz` drives: fast, on stable.

#[test]
fn every_corpus_input_passes_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in tollgate::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|_| panic!("corpus for {name}")) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            target(&data);
            n += 1;
        }
        assert!(n > 0, "{name} has a seed corpus");
    }
}
