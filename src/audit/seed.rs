//! A deterministic synthetic event generator for benchmarks and load tests.
//!
//! The same `(rows, orgs, seed, start, days)` always produces the same
//! events (a SplitMix64 stream, no global RNG), so benchmark databases can
//! be rebuilt identically. Events are spread evenly over the time span in
//! ascending order and inserted in large transactions; memory is one batch.
//! Values include commas, quotes, newlines and non-ASCII text in realistic
//! proportions so the CSV quoting paths are exercised, not only the fast path.

use rusqlite::{params, Connection};

use crate::time::DAY_MS;

/// Rows per insert transaction.
const SEED_BATCH: u64 = 20_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Number of events to generate.
    pub rows: u64,
    /// Number of organizations (`org_1` … `org_N`) to spread them over; 0 counts as 1.
    pub orgs: u32,
    /// Seed of the generator: the same spec always yields the same events.
    pub seed: u64,
    /// Start of the span, UTC milliseconds.
    pub start_ms: i64,
    /// Length of the span in days (0 counts as 1); events are spread evenly over it.
    pub days: u32,
}

/// SplitMix64: tiny, fast, and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const ACTIONS: [(&str, &str); 12] = [
    ("audit", "user.login"),
    ("audit", "user.logout"),
    ("audit", "user.login_failed"),
    ("audit", "role.assigned"),
    ("audit", "page.created"),
    ("audit", "page.updated"),
    ("audit", "page.deleted"),
    ("audit", "settings.updated"),
    ("scim", "scim.user.provisioned"),
    ("scim", "scim.user.deprovisioned"),
    ("workflow", "workflow_run_start"),
    ("workflow", "workflow_definition_publish"),
];
const FIRST: [&str; 10] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Zoë",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "Müller",
];
const PAGES: [&str; 8] = [
    "Roadmap",
    "Q3 plan, draft",
    "Onboarding \"new\" hires",
    "Incident review\nfollow-ups",
    "Budget 2025",
    "日本語のページ",
    "=SUM(A1:A3)",
    "Security policy",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "audit-export-sdk/1.4 (+https://example.invalid)",
];

/// Generates and inserts `spec.rows` events; returns the number inserted.
/// `progress` is called after each committed batch with the rows so far.
pub fn seed(
    conn: &mut Connection,
    spec: &SeedSpec,
    mut progress: impl FnMut(u64),
) -> rusqlite::Result<u64> {
    let mut rng = Rng(spec.seed ^ 0xA0D1_7E5E_ED00_0001);
    let span = i64::from(spec.days.max(1)) * DAY_MS;
    let orgs = spec.orgs.max(1);
    let mut done = 0u64;
    while done < spec.rows {
        let n = SEED_BATCH.min(spec.rows - done);
        let tx = crate::db::immediate(conn)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO audit_logs (occurred_at, organization_id, stream, action, \
                 actor_type, actor_id, actor_name, actor_email, target_type, target_id, \
                 target_name, ip_address, user_agent, request_id, changed_data, details) \
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            )?;
            for i in done..done + n {
                // Even spread in ascending time; rows never leave the span.
                let at = spec.start_ms + ((i as i128 * span as i128) / spec.rows as i128) as i64;
                let org = format!("org_{}", 1 + rng.below(u64::from(orgs)));
                let (stream, action) = ACTIONS[rng.below(ACTIONS.len() as u64) as usize];
                let u = rng.below(500);
                let first = rng.pick(&FIRST);
                let last = rng.pick(&LAST);
                let page = rng.below(10_000);
                let ip = format!("203.0.113.{}", rng.below(255));
                let req = format!("req_{:016x}", rng.next());
                let changed = if action.ends_with("updated") || action == "role.assigned" {
                    Some(format!(
                        r#"{{"title":{{"from":"v{}","to":"v{}"}}}}"#,
                        page % 7,
                        page % 7 + 1
                    ))
                } else {
                    None
                };
                let details = format!(
                    r#"{{"source":"{}","session":"s_{:08x}","mfa":{}}}"#,
                    if rng.below(4) == 0 { "api" } else { "web" },
                    rng.next() as u32,
                    rng.below(2) == 0
                );
                st.execute(params![
                    at,
                    org,
                    stream,
                    action,
                    "user",
                    format!("u_{u}"),
                    format!("{first} {last}"),
                    format!(
                        "{}.{}{u}@example.com",
                        first.to_lowercase(),
                        last.to_lowercase()
                    ),
                    "page",
                    format!("p_{page}"),
                    rng.pick(&PAGES),
                    ip,
                    rng.pick(&AGENTS),
                    req,
                    changed,
                    details
                ])?;
            }
        }
        tx.commit()?;
        done += n;
        progress(done);
    }
    Ok(done)
}
