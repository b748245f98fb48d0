//! The web console in real headless Chromium: `tests/console/run.sh`
//! starts this build's server on a fresh data dir (fixtures, an admin, a
//! compliance officer and a viewer of acme, a schedule) and runs
//! `tests/console/e2e.mjs` against it — sign-in, the log viewer, exports
//! small and large, jobs, schedules, notifications, roles, XSS, axe-core
//! accessibility, a phone viewport and the keyboard. Each check prints one
//! `ok`/`not ok` line; this test fails unless all of them passed.

mod common;

use std::path::Path;

#[test]
fn the_console_passes_its_browser_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let console = root.join("tests/console");
    if !common::have_tool(
        &format!(
            "command -v node >/dev/null && test -x \"${{CHROMIUM:-/usr/bin/chromium}}\" \
             && test -d '{}/node_modules/playwright-core'",
            console.display()
        ),
        "Node, Chromium and tests/console/node_modules (npm ci)",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Screenshots of every page stay after the run, as test artifacts.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = std::process::Command::new("bash")
        .arg(console.join("run.sh"))
        .env("SERVER_BIN", env!("CARGO_BIN_EXE_audit-export"))
        .env("TMPDIR", work.path())
        .env("ARTIFACTS_DIR", &artifacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "console checks failed (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert!(!stdout.lines().any(|l| l.starts_with("not ok")), "{stdout}");
    // The suite has 39 checks; fewer means some never ran.
    assert!(passed >= 39, "only {passed} checks passed:\n{stdout}");
    let shots = std::fs::read_dir(&artifacts)
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        shots >= 19,
        "{shots} screenshots in {}",
        artifacts.display()
    );
    eprintln!("screenshots: {}", artifacts.display());
}
