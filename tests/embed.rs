//! `examples/embed.rs`, run in the test suite: the library's entry point
//! used as a host application would, and its output checked.

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod example;

use std::io::Read;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_exports_its_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = example::run(dir.path()).await.unwrap();
    assert!(path.starts_with(dir.path()), "{}", path.display());
    let mut bytes = Vec::new();
    let file = std::fs::File::open(&path).unwrap();
    if path.extension().is_some_and(|e| e == "zip") {
        let mut zip = zip::ZipArchive::new(file).unwrap();
        zip.by_index(0).unwrap().read_to_end(&mut bytes).unwrap();
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .unwrap();
    }
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
    assert!(lines[0].starts_with("\u{feff}id,occurred_at,organization_id"));
    assert_eq!(lines.len(), 1 + 20_000, "header and every event");
    assert!(lines[1].contains(",2026-01-01T00:00:00.000Z,appliance,audit,device.config_changed,"));
    assert!(lines[20_000].contains(",2026-01-01T05:33:19.000Z,"));
    // A second run on the same data dir is a duplicate-free new export:
    // the engine reopens an existing data dir without a migration.
    let again = example::run(dir.path()).await.unwrap();
    assert_ne!(again, path);
}
