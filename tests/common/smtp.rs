//! A real SMTP server for tests: aiosmtpd writing each message into a
//! Maildir. Under CI=true a missing aiosmtpd fails instead of skipping.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Smtp {
    pub child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_smtp(port: u16, maildir: &Path) -> Option<Smtp> {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("aiosmtpd is required in CI (pip install aiosmtpd)");
        }
        eprintln!("SKIPPED: aiosmtpd not installed; run scripts/test.sh to install it");
        return None;
    }
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Smtp {
        child,
        port,
        maildir: maildir.to_path_buf(),
    })
}

/// Messages delivered so far: (raw text, decoded text body).
pub fn mails(maildir: &Path) -> Vec<String> {
    let dir = maildir.join("new");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut v: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .map(|e| {
            (
                e.metadata().unwrap().modified().unwrap(),
                decode(&std::fs::read_to_string(e.path()).unwrap()),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, m)| m).collect()
}

/// Undoes quoted-printable soft breaks and escapes (enough for our mails).
pub fn decode(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn wait_mails(maildir: &Path, n: usize, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = mails(maildir);
        if m.len() >= n {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} mails, got {}",
            m.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn smtp_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("AUDIT_EXPORT_SMTP_HOST".into(), "127.0.0.1".into()),
        ("AUDIT_EXPORT_SMTP_PORT".into(), port.to_string()),
        ("AUDIT_EXPORT_SMTP_SECURITY".into(), "none".into()),
        ("AUDIT_EXPORT_SMTP_TIMEOUT_SECS".into(), "3".into()),
        (
            "AUDIT_EXPORT_NOTIFY_DELIVERY_INTERVAL_MS".into(),
            "100".into(),
        ),
        ("AUDIT_EXPORT_NOTIFY_RETRY_BASE_MS".into(), "100".into()),
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD".into(), "1".into()),
        ("AUDIT_EXPORT_JOBS_COMPRESS".into(), "never".into()),
    ]
}

/// The download link in a completed-export mail.
pub fn link_in(mail: &str) -> String {
    let start = mail.find("Download: ").expect("no link in the mail") + "Download: ".len();
    mail[start..].split_whitespace().next().unwrap().to_string()
}
