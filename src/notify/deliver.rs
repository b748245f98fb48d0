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
use tokio::sync::watch;

use super::render::{render, Link, Rendered};
use super::{Kind, NotifyConfig, SmtpConfig, SmtpSecurity};
use crate::links::Signer;

/// Where mail goes.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// How links in e-mails are built.
pub struct LinkMaker {
    pub signer: Signer,
    pub public_url: String,
    /// Link life after completion: the shorter of the link TTL and the
    /// download window (a link never outlives its file).
    pub link_secs: u64,
}

impl LinkMaker {
    fn link(&self, job_id: &str, file_key: &str, completed_at_ms: i64) -> Link {
        let expires = completed_at_ms / 1000 + self.link_secs as i64;
        let sig = self.signer.sign(job_id, file_key, expires);
        Link {
            url: format!(
                "{}/download/{job_id}?expires={expires}&sig={sig}",
                self.public_url.trim_end_matches('/')
            ),
            expires_at: crate::time::format_rfc3339_ms(expires * 1000),
        }
    }
}

/// The delivery service.
pub struct Delivery {
    db: PathBuf,
    cfg: NotifyConfig,
    from: Mailbox,
    transport: Transport,
    links: LinkMaker,
    send_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("notify configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub sent: usize,
    pub failed: usize,
}

impl Delivery {
    pub fn new(
        data_dir: &std::path::Path,
        cfg: NotifyConfig,
        smtp: &SmtpConfig,
        links: LinkMaker,
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
            send_timeout: timeout,
        })
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        let base = self.cfg.retry_base_ms.max(1);
        base.saturating_mul(1 << attempts.saturating_sub(1).min(20))
            .min(3_600_000) as i64
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
            let (id, token) = (row.id, row.token.clone());
            tokio::task::spawn_blocking(move || -> Result<(), DeliveryError> {
                let conn = crate::db::connect(&db).map_err(|e| DeliveryError::Config(e.to_string()))?;
                let n = if ok {
                    conn.execute(
                        "UPDATE email_outbox SET sent_at = ?3, attempts = attempts + 1, last_error = NULL, claim_token = NULL, \
                         subject = ?4, body_text = ?5, body_html = ?6 WHERE id = ?1 AND claim_token = ?2",
                        params![id, token, now_ms_fresh(), r.subject, r.text, r.html],
                    )?
                } else {
                    conn.execute(
                        "UPDATE email_outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4, claim_token = NULL, \
                         subject = ?5, body_text = ?6, body_html = ?7 WHERE id = ?1 AND claim_token = ?2",
                        params![id, token, err, now_ms_fresh() + delay, r.subject, r.text, r.html],
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
            (Some(key), Some(done)) => Some(self.links.link(&row.job_id, key, done)),
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

fn now_ms_fresh() -> i64 {
    crate::jobs::now_ms()
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

/// Runs delivery passes every `delivery_interval_ms` until shutdown.
pub async fn run(delivery: Arc<Delivery>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(delivery.cfg.delivery_interval_ms.max(10));
    loop {
        if let Err(e) = delivery.run_once(crate::jobs::now_ms()).await {
            tracing::error!(error = %e, "delivery pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
