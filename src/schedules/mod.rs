//! Scheduled recurring exports: one `workflows/*.toml` file each.
//!
//! - [`def`]: the file format, checked field by field.
//! - [`calendar`]: fire times in the schedule's zone (DST-aware) and the
//!   relative ranges (`previous_day`, `previous_month`, …).
//! - [`fire`]: enqueues each due fire exactly once per (schedule, fire
//!   time), with catch-up after downtime; manual runs.
//! - [`store`]: the schedules' SQL.
//!
//! [`Schedules`] holds the loaded definitions: loaded at start, on SIGHUP
//! and on `POST /api/v1/schedules/reload`. An invalid file is reported
//! (path, field, reason) and never stops the valid ones; a file that breaks
//! on reload keeps its last good version running. This module decides
//! when to export and what; it never runs an export itself.

pub mod calendar;
pub mod def;
pub mod fire;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use def::{Invalid, ScheduleDef};
pub use fire::FireCounts;

use crate::jobs::Job;
use crate::service::{Service, ServiceError};
use crate::users::Requester;

pub use crate::config::SchedulesConfig;

/// What a (re)load found.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Names of the schedules in effect.
    pub loaded: Vec<String>,
    /// Files that cannot be used (and have no earlier good version).
    pub invalid: Vec<Invalid>,
    /// Files that broke on this reload: their last good version stays.
    pub kept: Vec<Invalid>,
}

#[derive(Default)]
struct Registry {
    /// The schedule in effect for each file.
    by_path: BTreeMap<PathBuf, ScheduleDef>,
    /// The last load's problems.
    invalid: Vec<Invalid>,
    kept: Vec<Invalid>,
}

/// The loaded schedules and their firing loop.
pub struct Schedules {
    dir: PathBuf,
    svc: Arc<Service>,
    registry: RwLock<Registry>,
    /// Notified after a reload: the loop recomputes its next wake-up.
    reloaded: Notify,
}

impl Schedules {
    /// Schedules read from the `*.toml` files of `dir`, none loaded yet.
    pub fn new(dir: PathBuf, svc: Arc<Service>) -> Schedules {
        Schedules {
            dir,
            svc,
            registry: RwLock::new(Registry::default()),
            reloaded: Notify::new(),
        }
    }

    /// The folder the schedules are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every `*.toml` file of the folder (a missing folder is no
    /// schedules) and puts the valid ones in effect.
    pub fn reload(&self) -> LoadReport {
        let mut parsed: Vec<(PathBuf, Result<ScheduleDef, Box<Invalid>>)> = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let conn = self.svc.connect();
        for path in files {
            let result = match std::fs::read_to_string(&path) {
                Err(e) => Err(Box::new(Invalid {
                    path: path.clone(),
                    name: None,
                    organization: None,
                    field: String::new(),
                    code: "unreadable".into(),
                    reason: e.to_string(),
                })),
                Ok(text) => {
                    def::parse(&path, &text, &self.svc.cfg.limits()).and_then(|d| match &conn {
                        Ok(c) => self.check_recipients(c, d),
                        Err(e) => Err(invalid_of(&d, "recipients", "unavailable", e.to_string())),
                    })
                }
            };
            parsed.push((path, result));
        }
        let mut reg = self.registry.write().expect("schedules lock");
        // A name belongs first to a broken file's last good version (it
        // stays in effect), then to the file that holds it now (a new file
        // never takes a name from a running schedule, whatever their
        // order), then to the first file that claims it.
        let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, r) in &parsed {
            if let (Err(_), Some(old)) = (r, reg.by_path.get(path)) {
                names.insert(old.name.clone(), path.clone());
            }
        }
        for (path, r) in &parsed {
            if let (Ok(d), Some(old)) = (r, reg.by_path.get(path)) {
                if old.name == d.name {
                    names.entry(d.name.clone()).or_insert_with(|| path.clone());
                }
            }
        }
        for (path, r) in &mut parsed {
            if let Ok(d) = r {
                match names.get(&d.name) {
                    Some(owner) if owner != path => {
                        let reason = format!("the name is already used by {}", owner.display());
                        *r = Err(invalid_of(d, "name", "duplicate_name", reason));
                    }
                    Some(_) => {}
                    None => {
                        names.insert(d.name.clone(), path.clone());
                    }
                }
            }
        }
        let mut next = Registry::default();
        for (path, r) in parsed {
            match r {
                Ok(d) => {
                    next.by_path.insert(path, d);
                }
                Err(inv) => match reg.by_path.remove(&path) {
                    // The last good version stays, unless its name is now
                    // another file's: two schedules never share a name.
                    Some(old) if names.get(&old.name).is_none_or(|p| *p == path) => {
                        tracing::warn!(file = %path.display(), problem = %inv, schedule = %old.name, "schedule file broken; its last good version stays in effect");
                        names.insert(old.name.clone(), path.clone());
                        next.by_path.insert(path, old);
                        next.kept.push(*inv);
                    }
                    _ => {
                        tracing::warn!(problem = %inv, "invalid schedule file");
                        next.invalid.push(*inv);
                    }
                },
            }
        }
        let report = LoadReport {
            loaded: next.by_path.values().map(|d| d.name.clone()).collect(),
            invalid: next.invalid.clone(),
            kept: next.kept.clone(),
        };
        *reg = next;
        drop(reg);
        self.mark_first_seen();
        self.reloaded.notify_one();
        tracing::info!(loaded = report.loaded.len(), invalid = report.invalid.len(), kept = report.kept.len(), dir = %self.dir.display(), "schedules loaded");
        report
    }

    /// A schedule seen for the first time starts now (no backlog): marked
    /// here, as it is loaded, rather than by the loop's next pass, so a
    /// fire due between the load and that pass is not lost.
    fn mark_first_seen(&self) {
        let now = self.svc.clock.now_ms();
        let marked = self
            .svc
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                let tx = crate::db::immediate(&mut c).map_err(|e| e.to_string())?;
                for d in self.list() {
                    if store::last_fire(&tx, &d.name)
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        store::set_last_fire(&tx, &d.name, now, now).map_err(|e| e.to_string())?;
                    }
                }
                tx.commit().map_err(|e| e.to_string())
            });
        if let Err(e) = marked {
            // The loop's pass marks them instead.
            tracing::warn!(error = %e, "schedules: cannot record newly seen schedules");
        }
    }

    fn check_recipients(
        &self,
        conn: &rusqlite::Connection,
        mut d: ScheduleDef,
    ) -> Result<ScheduleDef, Box<Invalid>> {
        use crate::notify::recipients::{check, RecipientError};
        match check(conn, &self.svc.cfg.notify, &d.organization, &d.recipients) {
            Ok(list) => {
                d.recipients = list;
                Ok(d)
            }
            Err(e) => {
                let code = match e {
                    RecipientError::Unverified(_) => "unverified_recipient",
                    RecipientError::Db(_) => "unavailable",
                    _ => "invalid_email_to",
                };
                Err(invalid_of(&d, "recipients", code, e.to_string()))
            }
        }
    }

    /// The schedules in effect, by name.
    pub fn list(&self) -> Vec<ScheduleDef> {
        let reg = self.registry.read().expect("schedules lock");
        let mut v: Vec<ScheduleDef> = reg.by_path.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The last load's problems: invalid files, and broken files whose
    /// last good version stays in effect.
    pub fn problems(&self) -> (Vec<Invalid>, Vec<Invalid>) {
        let reg = self.registry.read().expect("schedules lock");
        (reg.invalid.clone(), reg.kept.clone())
    }

    /// The loaded schedule of this name, if any.
    pub fn get(&self, name: &str) -> Option<ScheduleDef> {
        self.list().into_iter().find(|d| d.name == name)
    }

    /// Fires what is due at `now` for every schedule (blocking).
    pub fn run_once(&self, now: i64) -> FireCounts {
        let mut total = FireCounts::default();
        let mut conn = match self.svc.connect() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "schedules: cannot open the database");
                return total;
            }
        };
        for d in self.list() {
            match fire::run_schedule(&self.svc, &mut conn, &d, now) {
                Ok(c) => {
                    total.enqueued += c.enqueued;
                    total.skipped += c.skipped;
                    total.failed += c.failed;
                }
                Err(e) => {
                    total.failed += 1;
                    tracing::error!(schedule = %d.name, error = %e, "schedule pass failed; retried at the next pass");
                }
            }
        }
        if total.enqueued > 0 {
            self.svc.runner.wake.notify_one();
        }
        total
    }

    /// `schedules run NAME`: a manual run now.
    pub fn run_now(&self, name: &str, by: &Requester) -> Result<Job, ServiceError> {
        let def = self.get(name).ok_or(ServiceError::NotFound)?;
        let mut conn = self.svc.connect()?;
        fire::run_now(&self.svc, &mut conn, &def, by)
    }

    /// The next fire of any enabled schedule after `now`.
    fn next_fire(&self, now: i64) -> Option<i64> {
        self.list()
            .iter()
            .filter(|d| d.enabled)
            .filter_map(|d| d.cron.next_after(d.tz, now))
            .min()
    }

    /// Fires schedules on the engine's clock until shutdown: a pass now,
    /// then at each next fire time (at least every minute, and after every
    /// reload).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let clock = self.svc.clock.clone();
        loop {
            let now = clock.now_ms();
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.run_once(now)).await {
                tracing::error!(error = %e, "schedule pass panicked");
            }
            // The next fire after the instant this pass covered, not after
            // a fresh "now": a fire falling due while the pass ran must wake
            // us at once, not a minute later.
            let wake_at = self.next_fire(now).unwrap_or(i64::MAX).min(now + 60_000);
            tokio::select! {
                _ = clock.sleep_until(wake_at) => {}
                _ = self.reloaded.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// How a schedule stands: its next `n` fires and its last run.
    pub fn status(
        &self,
        conn: &rusqlite::Connection,
        d: &ScheduleDef,
        n: usize,
    ) -> Result<Status, ServiceError> {
        let now = self.svc.now_ms();
        let mut next = Vec::with_capacity(n);
        let mut t = now;
        while next.len() < n {
            match d.cron.next_after(d.tz, t) {
                Some(f) => {
                    next.push(f);
                    t = f;
                }
                None => break,
            }
        }
        Ok(Status {
            next_fires: next,
            last_run: store::last_run(conn, &d.name)?,
        })
    }
}

/// [`Schedules::status`].
#[derive(Debug, Clone)]
pub struct Status {
    /// The next fire times (ms), oldest first.
    pub next_fires: Vec<i64>,
    /// The last run and its job's state (while the job is kept).
    pub last_run: Option<(store::Run, Option<String>)>,
}

fn invalid_of(d: &ScheduleDef, field: &str, code: &str, reason: String) -> Box<Invalid> {
    Box::new(Invalid {
        path: d.path.clone(),
        name: Some(d.name.clone()),
        organization: Some(d.organization.clone()),
        field: field.to_string(),
        code: code.to_string(),
        reason,
    })
}

/// The JSON view of a schedule (API, console).
pub fn view(d: &ScheduleDef, s: &Status) -> serde_json::Value {
    use serde_json::json;
    json!({
        "name": d.name,
        "enabled": d.enabled,
        "schedule": d.cron.as_str(),
        "timezone": d.tz.name(),
        "organization": d.organization,
        "range": d.range.as_str(),
        "format": d.format.as_str(),
        "recipients": d.recipients,
        "catch_up": match d.catch_up { def::CatchUp::Latest => "latest", def::CatchUp::None => "none" },
        "archive": d.archive,
        "file": d.path.display().to_string(),
        "next_fires": s.next_fires.iter().map(|f| calendar::local_rfc3339(d.tz, *f)).collect::<Vec<_>>(),
        "last_run": s.last_run.as_ref().map(|(r, state)| json!({
            "fire_time": r.fire_time.map(|f| calendar::local_rfc3339(d.tz, f)),
            "manual": r.fire_time.is_none(),
            "status": r.status,
            "reason": r.reason,
            "job_id": r.job_id,
            "job_state": state,
            "at": crate::time::format_rfc3339_ms(r.at),
        })),
    })
}

/// The JSON view of an invalid file.
pub fn invalid_view(i: &Invalid, kept: bool) -> serde_json::Value {
    serde_json::json!({
        "file": i.path.display().to_string(),
        "path": i.path.display().to_string(),
        "name": i.name,
        "field": i.field,
        "code": i.code,
        "reason": i.reason,
        "last_good_version_in_effect": kept,
    })
}
