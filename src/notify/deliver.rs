//! The delivery service: sends due outbox rows, one claim at a time.
//!
//! A row is claimed by pushing its `next_attempt_at` past the send's time
//! limit and a fresh claim token, and its result is recorded only under that
//! token, so two processes never send it at once; success sets `sent_at`,
//! failure records the error and schedules the next attempt with
//! exponential backoff, capped at one hour and without limit, so a message
//! waits out any outage. Each message carries a stable
//! Message-ID derived from the row, so a resend after a crash between
//! "sent" and "marked sent" can be recognised by the receiving system.
//! Nothing here can block or fail an export: jobs only ever insert rows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::render::{render, Rendered};
use super::{Kind, NotifyConfig, SmtpConfig, SmtpSecurity};
use crate::links::Links;
use crate::time::Clock;

/// Where mail goes.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// The delivery service.
pub struct Delivery {
    db: PathBuf,
    cfg: NotifyConfig,
    from: Mailbox,
    transport: Transport,
    links: Arc<Links>,
    clock: Clock,
    send_timeout: Duration,
    /// Notified when a job ended (its notices were just queued).
    pub wake: Arc<Notify>,
}

/// Why delivery could not be set up or a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A bad `[notify]` or `[smtp]` setting, or the outbox folder cannot be created.
    #[error("notify configuration: {0}")]
    Config(String),
    /// The outbox could not be read or updated.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Messages sent (or written as `.eml` files).
    pub sent: usize,
    /// Attempts that failed; those messages are retried after a backoff.
    pub failed: usize,
}

impl Delivery {
    /// The delivery service: SMTP when `[smtp] host` is set, else `.eml`
    /// files in `<data_dir>/outbox/`; `wake` is notified when a job ends.
    pub fn new(
        data_dir: &std::path::Path,
        cfg: NotifyConfig,
        smtp: &SmtpConfig,
        links: Arc<Links>,
        clock: Clock,
        wake: Arc<Notify>,
    ) -> Result<Delivery, DeliveryError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| DeliveryError::Config(format!("[notify] from {:?}: {e}", cfg.from)))?;
        let timeout = Duration::from_secs(smtp.timeout_secs.max(1));
        let transport = match &smtp.host {
            None => {
                let dir = data_dir.join("outbox");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| DeliveryError::Config(format!("{}: {e}", dir.display())))?;
                Transport::Files(AsyncFileTransport::<Tokio1Executor>::new(dir))
            }
            Some(host) => {
                let bad = |e: lettre::transport::smtp::Error| {
                    DeliveryError::Config(format!("[smtp] {host}: {e}"))
                };
                let tls_params = || TlsParameters::new(host.clone()).map_err(bad);
                let (tls, default_port) = match smtp.security {
                    SmtpSecurity::Starttls => (Tls::Required(tls_params()?), 587),
                    SmtpSecurity::Tls => (Tls::Wrapper(tls_params()?), 465),
                    SmtpSecurity::None => (Tls::None, 25),
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(smtp.port.unwrap_or(default_port))
                    .tls(tls)
                    .timeout(Some(timeout));
                if let (Some(u), Some(p)) = (&smtp.username, &smtp.password) {
                    b = b.credentials(Credentials::new(u.clone(), p.clone()));
                }
                Transport::Smtp(b.build())
            }
        };
        Ok(Delivery {
            db: crate::db::db_path(data_dir),
            cfg,
            from,
            transport,
            links,
            clock,
            send_timeout: timeout,
            wake,
        })
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        crate::util::backoff_ms(self.cfg.retry_base_ms, attempts, 3_600_000, false)
    }

    /// Claims the oldest due row for one send (or none).
    async fn claim(&self, now: i64) -> Result<Option<Row>, DeliveryError> {
        let db = self.db.clone();
        // Longer than a send may take (it is cut at send_timeout), so a
        // claim never lapses while its send is still running.
        let hold = self.send_timeout.as_millis() as i64 + 30_000;
        tokio::task::spawn_blocking(move || -> Result<Option<Row>, DeliveryError> {
            let conn = crate::db::connect(&db).map_err(|e| DeliveryError::Config(e.to_string()))?;
            let row = conn
                .prepare_cached(
                    "UPDATE email_outbox SET next_attempt_at = ?1 + ?2, claim_token = lower(hex(randomblob(16))) \
                     WHERE id = (SELECT id FROM email_outbox WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT 1) \
                     RETURNING id, recipient, kind, job_id, payload, subject, body_text, body_html, attempts, claim_token",
                )?
                .query_row(params![now, hold], |r| {
                    Ok(Row {
                        id: r.get(0)?,
                        recipient: r.get(1)?,
                        kind: r.get(2)?,
                        job_id: r.get(3)?,
                        payload: r.get(4)?,
                        rendered: match (r.get::<_, Option<String>>(5)?, r.get(6)?, r.get(7)?) {
                            (Some(subject), Some(text), Some(html)) => Some(Rendered { subject, text, html }),
                            _ => None,
                        },
                        attempts: r.get(8)?,
                        token: r.get(9)?,
                    })
                })
                .optional()?;
            Ok(row)
        })
        .await
        .map_err(|e| DeliveryError::Config(e.to_string()))?
    }

    /// Sends what is due at `now` (at most 100 messages a pass).
    pub async fn run_once(&self, now: i64) -> Result<DeliveryCounts, DeliveryError> {
        let mut counts = DeliveryCounts::default();
        for _ in 0..100 {
            let Some(row) = self.claim(now).await? else {
                break;
            };
            let rendered = row.rendered.clone().unwrap_or_else(|| self.render(&row));
            let result = match self.message(&row, &rendered) {
                Ok(msg) => {
                    let send = async {
                        match &self.transport {
                            Transport::Smtp(t) => {
                                t.send(msg).await.map(|_| ()).map_err(|e| e.to_string())
                            }
                            Transport::Files(t) => {
                                t.send(msg).await.map(|_| ()).map_err(|e| e.to_string())
                            }
                        }
                    };
                    match tokio::time::timeout(self.send_timeout, send).await {
                        Ok(r) => r,
                        Err(_) => Err(format!(
                            "send took longer than {} s",
                            self.send_timeout.as_secs()
                        )),
                    }
                }
                Err(e) => Err(e),
            };
            let attempt = row.attempts + 1;
            let (db, r, delay) = (self.db.clone(), rendered, self.backoff_ms(attempt));
            let ok = result.is_ok();
            if ok {
                counts.sent += 1;
                tracing::info!(job_id = %row.job_id, to = %row.recipient, kind = %row.kind, "e-mail sent");
            } else {
                counts.failed += 1;
                let error = result.as_ref().err().cloned().unwrap_or_default();
                if attempt % 10 == 0 {
                    tracing::error!(job_id = %row.job_id, to = %row.recipient, attempt, %error, "e-mail still not sent; retrying hourly at most");
                } else {
                    tracing::warn!(job_id = %row.job_id, to = %row.recipient, attempt, %error, "e-mail not sent; will retry");
                }
            }
            let err = result.err();
            let (id, token, done_at) = (row.id, row.token.clone(), self.clock.now_ms());
            tokio::task::spawn_blocking(move || -> Result<(), DeliveryError> {
                let conn = crate::db::connect(&db).map_err(|e| DeliveryError::Config(e.to_string()))?;
                let n = if ok {
                    conn.execute(
                        "UPDATE email_outbox SET sent_at = ?3, attempts = attempts + 1, last_error = NULL, claim_token = NULL, \
                         subject = ?4, body_text = ?5, body_html = ?6 WHERE id = ?1 AND claim_token = ?2",
                        params![id, token, done_at, r.subject, r.text, r.html],
                    )?
                } else {
                    conn.execute(
                        "UPDATE email_outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4, claim_token = NULL, \
                         subject = ?5, body_text = ?6, body_html = ?7 WHERE id = ?1 AND claim_token = ?2",
                        params![id, token, err, done_at + delay, r.subject, r.text, r.html],
                    )?
                };
                if n == 0 {
                    tracing::warn!(outbox_id = id, "outbox claim lapsed before the result was recorded");
                }
                Ok(())
            })
            .await
            .map_err(|e| DeliveryError::Config(e.to_string()))??;
        }
        Ok(counts)
    }

    fn render(&self, row: &Row) -> Rendered {
        let p: Value = serde_json::from_str(&row.payload).unwrap_or_default();
        let kind = Kind::parse(&row.kind).unwrap_or(Kind::Failed);
        let link = match (p["file"]["key"].as_str(), p["completed_at"].as_i64()) {
            (Some(key), Some(done)) => Some(self.links.for_file(&row.job_id, key, done)),
            _ => None,
        };
        render(kind, &p, link.as_ref())
    }

    fn message(&self, row: &Row, r: &Rendered) -> Result<Message, String> {
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e| format!("recipient {:?}: {e}", row.recipient))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(r.subject.clone())
            .message_id(Some(format!(
                "<outbox-{}.{}@audit-export>",
                row.id, row.job_id
            )))
            .multipart(MultiPart::alternative_plain_html(
                r.text.clone(),
                r.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }
}

struct Row {
    id: i64,
    recipient: String,
    kind: String,
    job_id: String,
    payload: String,
    rendered: Option<Rendered>,
    attempts: u32,
    token: String,
}

/// Runs delivery passes every `delivery_interval_ms` (on the engine's
/// clock), and at once when a job ends, until shutdown.
pub async fn run(delivery: Arc<Delivery>, shutdown: CancellationToken) {
    let every = Duration::from_millis(delivery.cfg.delivery_interval_ms.max(10));
    loop {
        if let Err(e) = delivery.run_once(delivery.clock.now_ms()).await {
            tracing::error!(error = %e, "delivery pass failed");
        }
        tokio::select! {
            _ = delivery.clock.sleep(every) => {}
            _ = delivery.wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
