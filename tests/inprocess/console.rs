//! The console function's files: every file of `console/` embedded in it
//! (a file added there and not to its list would be a 404 in the
//! browser), within the 150 KB budget, with no inline script or style (the
//! CSP forbids them).

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_file_of_the_console_is_embedded_within_budget_and_runs_under_the_csp() {
    let main = std::fs::read_to_string(root().join("functions/console/src/main.rs")).unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("console"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut total = 0;
    for name in &on_disk {
        assert!(
            main.contains(&format!("\"{name}\"")),
            "console/{name} is not embedded in functions/console"
        );
        let text = std::fs::read_to_string(root().join("console").join(name)).unwrap();
        total += text.len();
        if name.ends_with(".html") {
            // Scripts only by src, no style attribute, no handler attribute.
            let lower = text.to_ascii_lowercase();
            assert_eq!(
                lower.matches("<script").count(),
                lower.matches("<script type=\"module\" src=").count(),
                "{name}: an inline script"
            );
            assert!(!lower.contains("style="), "{name}: an inline style");
            assert!(!lower.contains(" onclick="), "{name}: an inline handler");
            assert!(!lower.contains("<style"), "{name}: an inline stylesheet");
        }
    }
    assert!(total <= 150 * 1024, "the console's files are {total} bytes");
}
