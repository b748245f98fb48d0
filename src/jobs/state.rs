//! The export job state machine: a closed enum matching the `state` column
//! and one pure function deciding every transition. No I/O here; the store
//! applies a [`Decision`] as a fenced compare-and-set.
//!
//! ```text
//! exporting ──SpoolComplete──► uploading ──Stored──► completed
//!     │ NoRecords ─────────────────────────────────► completed (0 records)
//!     │ StepFailed: retryable, attempt < max ─► same state, retry later
//!     │ StepFailed: otherwise ────────────────► failed
//!     │ Cancel ───────────────────────────────► failed ("cancelled")
//!     │ Restart ──────────────────────────────► exporting, checkpoint cleared
//!     └ TtlExceeded ──────────────────────────► expired
//! (uploading accepts the same failure, cancel, restart and TTL events)
//! ```

crate::util::text_enum! {
    /// The state of an export job (column `export_jobs.state`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum JobState ("job state") {
        /// Writing the spool file. Moved out by the worker holding the lease
        /// (uploading / completed / failed) or by the clean-up cron (expired).
        Exporting = "exporting",
        /// Compressing and storing the spool. Moved out by the worker holding
        /// the lease (completed / failed) or by the clean-up cron (expired).
        Uploading = "uploading",
        /// Final: the file is stored (or there were no records). Deleted by the
        /// clean-up cron after the download window.
        Completed = "completed",
        /// Final: attempts exhausted, a fatal error, or cancelled. Deleted by
        /// the clean-up cron after retention.
        Failed = "failed",
        /// Final: in progress longer than the job TTL. Deleted after retention.
        Expired = "expired",
    }
}

impl JobState {
    /// Whether the job still has work to do.
    pub fn in_progress(self) -> bool {
        matches!(self, JobState::Exporting | JobState::Uploading)
    }
}

/// Something that happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobEvent {
    /// The spool holds every matching record.
    SpoolComplete,
    /// The filters matched nothing.
    NoRecords,
    /// The file is in storage.
    Stored,
    /// A step failed; `retryable` says whether trying again can help.
    StepFailed {
        /// Whether another attempt may succeed (e.g. storage unreachable).
        retryable: bool,
    },
    /// A user cancelled the job.
    Cancel,
    /// A user asked to start over.
    Restart,
    /// The job was in progress longer than the job TTL.
    TtlExceeded,
}

impl JobEvent {
    /// Every event, `StepFailed` both retryable and not, in declaration order.
    pub const ALL: [JobEvent; 8] = [
        JobEvent::SpoolComplete,
        JobEvent::NoRecords,
        JobEvent::Stored,
        JobEvent::StepFailed { retryable: true },
        JobEvent::StepFailed { retryable: false },
        JobEvent::Cancel,
        JobEvent::Restart,
        JobEvent::TtlExceeded,
    ];

    /// The event's name in logs, history rows and errors, e.g. `spool_complete`.
    pub fn name(self) -> &'static str {
        match self {
            JobEvent::SpoolComplete => "spool_complete",
            JobEvent::NoRecords => "no_records",
            JobEvent::Stored => "stored",
            JobEvent::StepFailed { retryable: true } => "step_failed_retryable",
            JobEvent::StepFailed { retryable: false } => "step_failed_fatal",
            JobEvent::Cancel => "cancel",
            JobEvent::Restart => "restart",
            JobEvent::TtlExceeded => "ttl_exceeded",
        }
    }
}

/// A user's pending cancel or restart outranks a step's own result: the
/// step may have finished (even stored its file), but the user no longer
/// wants what it produced. Requests and expiry pass through unchanged.
pub fn with_pending_request(event: JobEvent, cancel: bool, restart: bool) -> JobEvent {
    match event {
        JobEvent::Cancel | JobEvent::Restart | JobEvent::TtlExceeded => event,
        _ if cancel => JobEvent::Cancel,
        _ if restart => JobEvent::Restart,
        _ => event,
    }
}

/// What must happen once a transition has committed, besides the row
/// change itself. Decided with the transition, applied in one place
/// ([`crate::jobs::Runner::apply_effects`]) by whoever made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Work files to remove.
    pub cleanup: Cleanup,
    /// The job is runnable now: wake the scheduler.
    pub wake: bool,
    /// The job reached its end: notices and e-mails were queued with the
    /// transition; wake the delivery loop.
    pub notify: bool,
}

/// Work files to remove after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing to remove.
    None,
    /// The job's spool folder.
    Spool,
    /// The spool, and the file the interrupted step had just stored (a
    /// cancel that won over a finished upload: no completed job owns it).
    SpoolAndFile,
}

impl Effects {
    const NONE: Effects = Effects {
        cleanup: Cleanup::None,
        wake: false,
        notify: false,
    };
    /// A final state: the spool goes, the outcome is announced.
    const FINAL: Effects = Effects {
        cleanup: Cleanup::Spool,
        wake: false,
        notify: true,
    };
}

/// What to do with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The state the job moves to (its current one for a retry).
    pub to: JobState,
    /// Stay in the state and try again later (attempt + 1, backoff).
    pub retry: bool,
    /// Drop the checkpoint and start over (the next export step replaces
    /// the spool itself).
    pub clear_checkpoint: bool,
    /// What to do once the transition has committed.
    pub effects: Effects,
}

impl Decision {
    fn go(to: JobState, effects: Effects) -> Decision {
        Decision {
            to,
            retry: false,
            clear_checkpoint: false,
            effects,
        }
    }
}

/// An event that cannot happen in a state (a bug or a lost race).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {} is not valid in state {state}", event.name())]
pub struct InvalidTransition {
    /// The job's state.
    pub state: JobState,
    /// The event that is not valid in it.
    pub event: JobEvent,
}

/// Decides the transition for `event` in `state`; `attempt` is the current
/// attempt (1-based) of `max_attempts`.
pub fn decide(
    state: JobState,
    event: JobEvent,
    attempt: u32,
    max_attempts: u32,
) -> Result<Decision, InvalidTransition> {
    use JobEvent as E;
    use JobState as S;
    let invalid = Err(InvalidTransition { state, event });
    if !state.in_progress() {
        return invalid;
    }
    match (state, event) {
        // The same worker goes on to upload: nothing to clean or wake.
        (S::Exporting, E::SpoolComplete) => Ok(Decision::go(S::Uploading, Effects::NONE)),
        (S::Exporting, E::NoRecords) => Ok(Decision::go(S::Completed, Effects::FINAL)),
        (S::Uploading, E::Stored) => Ok(Decision::go(S::Completed, Effects::FINAL)),
        (S::Uploading, E::SpoolComplete | E::NoRecords) | (S::Exporting, E::Stored) => invalid,
        (_, E::StepFailed { retryable }) => {
            if retryable && attempt < max_attempts {
                // The spool stays for the next attempt; the scheduler's
                // poll finds the job when its backoff is over.
                Ok(Decision {
                    to: state,
                    retry: true,
                    clear_checkpoint: false,
                    effects: Effects::NONE,
                })
            } else {
                Ok(Decision::go(S::Failed, Effects::FINAL))
            }
        }
        (S::Exporting, E::Cancel) => Ok(Decision::go(S::Failed, Effects::FINAL)),
        (_, E::Cancel) => Ok(Decision::go(
            S::Failed,
            Effects {
                cleanup: Cleanup::SpoolAndFile,
                ..Effects::FINAL
            },
        )),
        // The spool stays (the new run's export step replaces it), and so
        // does a file just stored: the new run writes the same key.
        (_, E::Restart) => Ok(Decision {
            to: S::Exporting,
            retry: false,
            clear_checkpoint: true,
            effects: Effects {
                wake: true,
                ..Effects::NONE
            },
        }),
        (_, E::TtlExceeded) => Ok(Decision::go(S::Expired, Effects::FINAL)),
        _ => invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use JobState as S;

    /// The whole table: every state × every event, at a middle and at the
    /// last attempt.
    #[test]
    fn every_state_event_pair() {
        for state in S::ALL {
            for event in E::ALL {
                for (attempt, max) in [(1, 3), (3, 3)] {
                    let got = decide(state, event, attempt, max);
                    let last = attempt == max;
                    // (to, retry, clear checkpoint, cleanup, wake, notify)
                    let expected: Option<(S, bool, bool, Cleanup, bool, bool)> =
                        match (state, event) {
                            (S::Completed | S::Failed | S::Expired, _) => None,
                            (S::Exporting, E::SpoolComplete) => {
                                Some((S::Uploading, false, false, Cleanup::None, false, false))
                            }
                            (S::Exporting, E::NoRecords) => {
                                Some((S::Completed, false, false, Cleanup::Spool, false, true))
                            }
                            (S::Exporting, E::Stored) => None,
                            (S::Uploading, E::Stored) => {
                                Some((S::Completed, false, false, Cleanup::Spool, false, true))
                            }
                            (S::Uploading, E::SpoolComplete | E::NoRecords) => None,
                            (s, E::StepFailed { retryable: true }) if !last => {
                                Some((s, true, false, Cleanup::None, false, false))
                            }
                            (_, E::StepFailed { .. }) => {
                                Some((S::Failed, false, false, Cleanup::Spool, false, true))
                            }
                            (S::Exporting, E::Cancel) => {
                                Some((S::Failed, false, false, Cleanup::Spool, false, true))
                            }
                            (_, E::Cancel) => {
                                Some((S::Failed, false, false, Cleanup::SpoolAndFile, false, true))
                            }
                            (_, E::Restart) => {
                                Some((S::Exporting, false, true, Cleanup::None, true, false))
                            }
                            (_, E::TtlExceeded) => {
                                Some((S::Expired, false, false, Cleanup::Spool, false, true))
                            }
                        };
                    match expected {
                        None => assert_eq!(
                            got,
                            Err(InvalidTransition { state, event }),
                            "{state} {event:?}"
                        ),
                        Some((to, retry, clear_checkpoint, cleanup, wake, notify)) => assert_eq!(
                            got,
                            Ok(Decision {
                                to,
                                retry,
                                clear_checkpoint,
                                effects: Effects {
                                    cleanup,
                                    wake,
                                    notify
                                },
                            }),
                            "{state} {event:?} attempt {attempt}/{max}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn a_pending_request_outranks_every_step_result() {
        for event in E::ALL {
            for (cancel, restart) in [(false, false), (true, false), (false, true), (true, true)] {
                let got = with_pending_request(event, cancel, restart);
                let expected = match event {
                    E::Cancel | E::Restart | E::TtlExceeded => event,
                    _ if cancel => E::Cancel,
                    _ if restart => E::Restart,
                    _ => event,
                };
                assert_eq!(got, expected, "{event:?} cancel={cancel} restart={restart}");
            }
        }
        assert_eq!(with_pending_request(E::Stored, true, false), E::Cancel);
        assert_eq!(with_pending_request(E::Stored, false, true), E::Restart);
        assert_eq!(with_pending_request(E::Stored, false, false), E::Stored);
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
        }
        assert!("running".parse::<S>().is_err());
    }
}
