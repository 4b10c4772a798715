//! The sector lifecycle: states, events and the pure transition function
//! (diagram in `docs/sector-lifecycle.md`).
//!
//! [`Lifecycle::apply`] decides, and nothing else: it does no I/O, reads no
//! clock and never panics, so the pipeline can persist an event before acting
//! on it and rebuild any sector's state by replaying its event log. Retrying
//! is part of the state: each failure state counts the consecutive failures
//! of its step, and the step goes to the terminal [`SectorState::Failed`] once
//! the retry policy's cap is reached. When to retry (the backoff) is the
//! driver's business; [`RetryPolicy::backoff`] only computes it.

use proofs::{Commitment, Randomness};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wire::chain::MessageId;

pub use proofs::Disposition;

pub use wire::api::SectorState;

/// The failure state of a working state, if it can fail.
fn failure_of(state: SectorState) -> Option<SectorState> {
    use SectorState as S;
    Some(match state {
        // A failed PC2 goes back to PC1, which keeps every layer it finished.
        S::Unsealed | S::Labeled => S::SealPreCommitFailed,
        S::PreCommitting => S::PreCommitFailed,
        S::Committing => S::ComputeProofFailed,
        S::CommitWait => S::CommitFailed,
        S::FinalizeSector => S::FinalizeFailed,
        _ => return None,
    })
}

/// The working state a failure state retries.
fn retried_of(state: SectorState) -> Option<SectorState> {
    use SectorState as S;
    Some(match state {
        S::SealPreCommitFailed => S::Unsealed,
        S::PreCommitFailed => S::PreCommitting,
        S::ComputeProofFailed => S::Committing,
        // A rejected or lost ProveCommit needs a new proof, not a resend.
        S::CommitFailed => S::Committing,
        S::FinalizeFailed => S::FinalizeSector,
        _ => return None,
    })
}

/// Something that happened to a sector. Data the pipeline records alongside
/// (commitments, message ids, the proof) travels with the events that bring it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum SectorEvent {
    /// Pieces are settled (or the sector is pledged): start sealing.
    StartSealing,
    /// The seal ticket was drawn (recorded before PC1 so a restart labels with the same one).
    TicketDrawn {
        /// The ticket.
        ticket: Randomness,
        /// Its epoch.
        epoch: u64,
    },
    /// PC1 finished: the layers are labeled.
    PreCommitted1,
    /// PC2 finished (before PC1 and PC2 were separate steps: both).
    PreCommitted2 {
        /// comm_d.
        comm_d: Commitment,
        /// comm_r.
        comm_r: Commitment,
    },
    /// The PreCommit message was sent (recorded so a restart does not send it again).
    PreCommitSent {
        /// The message id.
        message: MessageId,
    },
    /// The PreCommit landed on chain.
    PreCommitLanded {
        /// The epoch it landed in.
        epoch: u64,
    },
    /// The interactive seed is available.
    SeedReady {
        /// The seed.
        seed: Randomness,
        /// Its epoch.
        epoch: u64,
    },
    /// C1 and C2 finished.
    ProofReady,
    /// The ProveCommit message was sent.
    CommitSent {
        /// The message id.
        message: MessageId,
    },
    /// The chain accepted the proof.
    CommitLanded {
        /// The epoch it landed in.
        epoch: u64,
    },
    /// The chain rejected the proof.
    CommitRejected {
        /// The chain's reason.
        reason: String,
    },
    /// The PreCommit expired before the proof landed: the replica must be redone.
    PreCommitExpired,
    /// Finalize finished.
    Finalized,
    /// The current step failed.
    StepFailed {
        /// What went wrong.
        error: String,
        /// How it is handled: a permanent failure ends the sector at once.
        /// (Logs written before dispositions existed read as temporary.)
        #[serde(default)]
        disposition: Disposition,
    },
    /// Retry the failed step (the driver fires this after the backoff).
    Retry,
    /// The operator sends a failed sector (a failure state, or Failed) back to
    /// the step that failed, with its attempts reset.
    OperatorRetry {
        /// The working state whose step failed. The sector resumes where a
        /// retry of that step starts (a rejected ProveCommit at Committing, for
        /// a new proof).
        step: SectorState,
    },
    /// The operator stops work on a sector: it becomes Failed.
    Abort {
        /// Why, as the operator gave it.
        reason: String,
    },
    /// The operator asked for removal.
    Remove,
    /// Removal finished.
    RemoveDone,
}

impl SectorEvent {
    /// The event's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartSealing => "StartSealing",
            Self::TicketDrawn { .. } => "TicketDrawn",
            Self::PreCommitted1 => "PreCommitted1",
            Self::PreCommitted2 { .. } => "PreCommitted2",
            Self::PreCommitSent { .. } => "PreCommitSent",
            Self::PreCommitLanded { .. } => "PreCommitLanded",
            Self::SeedReady { .. } => "SeedReady",
            Self::ProofReady => "ProofReady",
            Self::CommitSent { .. } => "CommitSent",
            Self::CommitLanded { .. } => "CommitLanded",
            Self::CommitRejected { .. } => "CommitRejected",
            Self::PreCommitExpired => "PreCommitExpired",
            Self::Finalized => "Finalized",
            Self::StepFailed { .. } => "StepFailed",
            Self::Retry => "Retry",
            Self::OperatorRetry { .. } => "OperatorRetry",
            Self::Abort { .. } => "Abort",
            Self::Remove => "Remove",
            Self::RemoveDone => "RemoveDone",
        }
    }
}

/// How failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Consecutive failures of one step after which the sector is Failed (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub base_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_backoff: Duration::from_secs(10), max_backoff: Duration::from_secs(600) }
    }
}

impl RetryPolicy {
    /// Wait before retrying after the `attempts`-th consecutive failure: doubling
    /// from the base, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A rejected event: the state does not accept it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event} is not valid in state {state}")]
pub struct TransitionError {
    /// The state.
    pub state: SectorState,
    /// The event's name.
    pub event: &'static str,
}

/// A sector's state and the consecutive failures of its current step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The state.
    pub state: SectorState,
    /// Consecutive failures of the current step (0 after any progress).
    pub attempts: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self { state: SectorState::Packing, attempts: 0 }
    }
}

impl Lifecycle {
    /// The state after `event`, or why the event is refused.
    pub fn apply(self, event: &SectorEvent, policy: &RetryPolicy) -> Result<Self, TransitionError> {
        use SectorEvent as E;
        use SectorState as S;
        let reject = || TransitionError { state: self.state, event: event.name() };
        let forward = |state| Ok(Self { state, attempts: 0 });
        let same = || Ok(self);
        // The operator may send a failed sector back to the step that failed.
        if let E::OperatorRetry { step } = event {
            let target = match failure_of(*step) {
                Some(failure) if self.state == S::Failed || self.state == failure => retried_of(failure),
                Some(_) => None,
                // A step with no failure state of its own (a sector aborted while
                // it waited for pieces or for its seed) resumes as it was.
                None if self.state == S::Failed && matches!(step, S::Packing | S::PreCommitted) => {
                    Some(*step)
                }
                None => None,
            };
            return forward(target.ok_or_else(reject)?);
        }
        if self.state.is_terminal() {
            return Err(reject());
        }
        match (self.state, event) {
            (S::Removing, E::RemoveDone) => forward(S::Removed),
            (S::Removing, _) => Err(reject()),
            (_, E::Remove) => forward(S::Removing),
            (_, E::Abort { .. }) => Ok(Self { state: S::Failed, attempts: self.attempts }),

            (S::Packing, E::StartSealing) => forward(S::Unsealed),
            (S::Unsealed, E::TicketDrawn { .. }) => same(),
            // The pre-commit step spans PC1 and PC2: its failures count across both.
            (S::Unsealed, E::PreCommitted1) => Ok(Self { state: S::Labeled, attempts: self.attempts }),
            (S::Labeled, E::PreCommitted2 { .. }) => forward(S::PreCommitting),
            // A log from before the split: PC1 and PC2 as one event.
            (S::Unsealed, E::PreCommitted2 { .. }) => forward(S::PreCommitting),
            (S::PreCommitting, E::PreCommitSent { .. }) => same(),
            (S::PreCommitting, E::PreCommitLanded { .. }) => forward(S::PreCommitted),
            (S::PreCommitted, E::SeedReady { .. }) => forward(S::Committing),
            (S::Committing, E::ProofReady) => forward(S::CommitWait),
            (S::CommitWait, E::CommitSent { .. }) => same(),
            (S::CommitWait, E::CommitLanded { .. }) => forward(S::FinalizeSector),
            (S::FinalizeSector, E::Finalized) => forward(S::Proving),

            // The chain refusing the proof is a failure of the commit step.
            (S::CommitWait, E::CommitRejected { .. }) | (_, E::StepFailed { .. }) => {
                let failure = failure_of(self.state).ok_or_else(reject)?;
                let attempts = self.attempts.saturating_add(1);
                let permanent = matches!(event, E::StepFailed { disposition: Disposition::Permanent, .. });
                if permanent || attempts >= policy.max_attempts.max(1) {
                    Ok(Self { state: S::Failed, attempts })
                } else {
                    Ok(Self { state: failure, attempts })
                }
            }
            (failed, E::Retry) => {
                let retried = retried_of(failed).ok_or_else(reject)?;
                Ok(Self { state: retried, attempts: self.attempts })
            }
            // Between PreCommit and a landed ProveCommit, an expired PreCommit
            // (or, before it lands, a ticket too old for one) means sealing
            // again from PC1 with a fresh ticket.
            (
                S::PreCommitting
                | S::PreCommitFailed
                | S::PreCommitted
                | S::Committing
                | S::CommitWait
                | S::ComputeProofFailed
                | S::CommitFailed,
                E::PreCommitExpired,
            ) => forward(S::Unsealed),
            _ => Err(reject()),
        }
    }

    /// Replays an event log from the initial state. Refused events are errors:
    /// a persisted log only holds accepted ones.
    pub fn replay<'a>(
        events: impl IntoIterator<Item = &'a SectorEvent>,
        policy: &RetryPolicy,
    ) -> Result<Self, TransitionError> {
        events.into_iter().try_fold(Self::default(), |l, e| l.apply(e, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use SectorEvent as E;
    use SectorState as S;

    fn policy(max: u32) -> RetryPolicy {
        RetryPolicy { max_attempts: max, ..Default::default() }
    }

    fn at(state: S, attempts: u32) -> Lifecycle {
        Lifecycle { state, attempts }
    }

    fn failed(msg: &str) -> E {
        E::StepFailed { error: msg.into(), disposition: Disposition::Temporary }
    }

    /// The happy path, event by event.
    #[test]
    fn happy_path_reaches_proving() {
        let log = [
            E::StartSealing,
            E::TicketDrawn { ticket: Randomness([1; 32]), epoch: 3 },
            E::PreCommitted2 { comm_d: Commitment([2; 32]), comm_r: Commitment([3; 32]) },
            E::PreCommitSent { message: MessageId::from(1) },
            E::PreCommitLanded { epoch: 10 },
            E::SeedReady { seed: Randomness([4; 32]), epoch: 20 },
            E::ProofReady,
            E::CommitSent { message: MessageId::from(2) },
            E::CommitLanded { epoch: 21 },
            E::Finalized,
        ];
        let states: Vec<S> = log
            .iter()
            .scan(Lifecycle::default(), |l, e| {
                *l = l.apply(e, &policy(3)).unwrap();
                Some(l.state)
            })
            .collect();
        use S::*;
        assert_eq!(
            states,
            [
                Unsealed,
                Unsealed,
                PreCommitting,
                PreCommitting,
                PreCommitted,
                Committing,
                CommitWait,
                CommitWait,
                FinalizeSector,
                Proving
            ]
        );
        assert_eq!(Lifecycle::replay(&log, &policy(3)).unwrap(), at(Proving, 0));
    }

    /// Every working state fails into its failure state, retries back into the
    /// right step, and gives up at the cap.
    #[test]
    fn failures_retry_then_give_up() {
        let table = [
            (S::Unsealed, S::SealPreCommitFailed, S::Unsealed),
            (S::PreCommitting, S::PreCommitFailed, S::PreCommitting),
            (S::Committing, S::ComputeProofFailed, S::Committing),
            (S::CommitWait, S::CommitFailed, S::Committing),
            (S::FinalizeSector, S::FinalizeFailed, S::FinalizeSector),
        ];
        let p = policy(3);
        for (working, failure, retried) in table {
            let l = at(working, 0).apply(&failed("x"), &p).unwrap();
            assert_eq!(l, at(failure, 1), "{working}");
            let l = l.apply(&E::Retry, &p).unwrap();
            assert_eq!(l, at(retried, 1), "{working}");
            // A second failure of the same step counts on.
            let l = at(working, 1).apply(&failed("x"), &p).unwrap();
            assert_eq!(l, at(failure, 2));
            // The third reaches the cap: Failed, which accepts nothing.
            let l = at(working, 2).apply(&failed("x"), &p).unwrap();
            assert_eq!(l.state, S::Failed);
            assert!(l.apply(&E::Retry, &p).is_err());
            assert!(l.apply(&E::Remove, &p).is_err());
        }
        // Progress resets the count.
        let l = at(S::Committing, 2).apply(&E::ProofReady, &p).unwrap();
        assert_eq!(l, at(S::CommitWait, 0));
    }

    #[test]
    fn the_operator_retries_a_failed_step_and_aborts_a_sector() {
        let p = policy(2);
        let retry = |step| E::OperatorRetry { step };
        // From Failed, back to the step that failed, attempts reset.
        assert_eq!(at(S::Failed, 2).apply(&retry(S::Unsealed), &p).unwrap(), at(S::Unsealed, 0));
        assert_eq!(at(S::Failed, 2).apply(&retry(S::CommitWait), &p).unwrap(), at(S::Committing, 0));
        // An abort while waiting (for pieces, for the seed) resumes the wait.
        assert_eq!(at(S::Failed, 0).apply(&retry(S::PreCommitted), &p).unwrap(), at(S::PreCommitted, 0));
        assert_eq!(at(S::Failed, 0).apply(&retry(S::Packing), &p).unwrap(), at(S::Packing, 0));
        assert!(at(S::PreCommitted, 0).apply(&retry(S::PreCommitted), &p).is_err());
        // From a failure state, only to its own step.
        assert_eq!(
            at(S::ComputeProofFailed, 1).apply(&retry(S::Committing), &p).unwrap(),
            at(S::Committing, 0)
        );
        assert!(at(S::ComputeProofFailed, 1).apply(&retry(S::Unsealed), &p).is_err());
        // Not from a working, finished or removed sector; not to a step that cannot fail.
        for (state, step) in
            [(S::Committing, S::Committing), (S::Proving, S::Unsealed), (S::Removed, S::Unsealed)]
        {
            assert!(at(state, 0).apply(&retry(step), &p).is_err(), "{state}");
        }
        assert!(at(S::Failed, 2).apply(&retry(S::Proving), &p).is_err());
        // Abort: any live state to Failed.
        let abort = E::Abort { reason: "bad data".into() };
        assert_eq!(at(S::PreCommitted, 0).apply(&abort, &p).unwrap(), at(S::Failed, 0));
        assert!(at(S::Failed, 0).apply(&abort, &p).is_err());
        assert!(at(S::Removing, 0).apply(&abort, &p).is_err());
    }

    /// PC1 and PC2 are separate steps with Labeled between; a failure of
    /// either is the pre-commit step's, counted across both and retried from
    /// PC1 (which keeps the layers it finished).
    #[test]
    fn pc1_then_pc2_and_their_failures_count_together() {
        let p = policy(3);
        let pc2 = E::PreCommitted2 { comm_d: Commitment([2; 32]), comm_r: Commitment([3; 32]) };
        assert_eq!(at(S::Unsealed, 0).apply(&E::PreCommitted1, &p).unwrap(), at(S::Labeled, 0));
        assert_eq!(at(S::Labeled, 0).apply(&pc2, &p).unwrap(), at(S::PreCommitting, 0));
        assert!(at(S::Labeled, 0).apply(&E::PreCommitted1, &p).is_err());
        let mut l = at(S::Labeled, 0);
        for attempts in 1..3 {
            l = l.apply(&failed("pc2"), &p).unwrap();
            assert_eq!(l, at(S::SealPreCommitFailed, attempts));
            l = l.apply(&E::Retry, &p).unwrap().apply(&E::PreCommitted1, &p).unwrap();
            assert_eq!(l, at(S::Labeled, attempts), "PC1 again keeps the count");
        }
        assert_eq!(l.apply(&failed("pc2"), &p).unwrap(), at(S::Failed, 3));
        // The operator's retry of a failed PC2 starts from PC1.
        let retry = E::OperatorRetry { step: S::Labeled };
        assert_eq!(at(S::Failed, 3).apply(&retry, &p).unwrap(), at(S::Unsealed, 0));
    }

    #[test]
    fn a_permanent_failure_ends_the_sector_at_once() {
        let p = policy(5);
        let e =
            E::StepFailed { error: "replica does not verify".into(), disposition: Disposition::Permanent };
        for working in
            [S::Unsealed, S::Labeled, S::PreCommitting, S::Committing, S::CommitWait, S::FinalizeSector]
        {
            assert_eq!(at(working, 0).apply(&e, &p).unwrap(), at(S::Failed, 1), "{working}");
        }
    }

    /// A log as the code before typed records wrote it (hex strings, decimal
    /// message ids, failures without a disposition) still loads and replays.
    #[test]
    fn event_logs_written_before_typed_records_still_load() {
        let hex = |b: u8| hex::encode([b; 32]);
        let log = [
            r#"{"event":"StartSealing"}"#.to_string(),
            format!(r#"{{"event":"TicketDrawn","ticket":"{}","epoch":3}}"#, hex(1)),
            format!(r#"{{"event":"PreCommitted2","comm_d":"{}","comm_r":"{}"}}"#, hex(2), hex(3)),
            r#"{"event":"PreCommitSent","message":"7"}"#.to_string(),
            r#"{"event":"StepFailed","error":"chain unreachable"}"#.to_string(),
            r#"{"event":"Retry"}"#.to_string(),
            r#"{"event":"PreCommitSent","message":"8"}"#.to_string(),
            r#"{"event":"PreCommitLanded","epoch":10}"#.to_string(),
            format!(r#"{{"event":"SeedReady","seed":"{}","epoch":12}}"#, hex(4)),
        ];
        let events: Vec<E> = log.iter().map(|j| serde_json::from_str(j).unwrap()).collect();
        assert_eq!(events[1], E::TicketDrawn { ticket: Randomness([1; 32]), epoch: 3 });
        assert_eq!(events[3], E::PreCommitSent { message: MessageId::from(7) });
        assert_eq!(events[4], failed("chain unreachable"));
        assert_eq!(Lifecycle::replay(&events, &policy(5)).unwrap(), at(S::Committing, 0));
        // Written again, the same fields stay readable text.
        let again = serde_json::to_string(&events[2]).unwrap();
        assert!(again.contains(&hex(2)) && again.contains(&hex(3)), "{again}");
        assert_eq!(serde_json::to_string(&events[3]).unwrap(), log[3]);
    }

    #[test]
    fn chain_rejection_is_a_commit_failure_and_recomputes_the_proof() {
        let p = policy(5);
        let l = at(S::CommitWait, 0).apply(&E::CommitRejected { reason: "bad proof".into() }, &p).unwrap();
        assert_eq!(l, at(S::CommitFailed, 1));
        assert_eq!(l.apply(&E::Retry, &p).unwrap().state, S::Committing);
        assert!(at(S::Committing, 0).apply(&E::CommitRejected { reason: String::new() }, &p).is_err());
    }

    #[test]
    fn precommit_expiry_reseals() {
        let p = policy(5);
        for s in [
            S::PreCommitting,
            S::PreCommitFailed,
            S::PreCommitted,
            S::Committing,
            S::CommitWait,
            S::ComputeProofFailed,
            S::CommitFailed,
        ] {
            assert_eq!(at(s, 2).apply(&E::PreCommitExpired, &p).unwrap(), at(S::Unsealed, 0), "{s}");
        }
        for s in [S::Packing, S::Unsealed, S::Labeled, S::FinalizeSector, S::Proving] {
            assert!(at(s, 0).apply(&E::PreCommitExpired, &p).is_err(), "{s}");
        }
    }

    #[test]
    fn removal_from_anywhere_but_terminal_states() {
        let p = policy(5);
        assert_eq!(at(S::Proving, 0).apply(&E::Remove, &p).unwrap(), at(S::Removing, 0));
        assert_eq!(at(S::Removing, 0).apply(&E::RemoveDone, &p).unwrap(), at(S::Removed, 0));
        assert!(at(S::Removing, 0).apply(&E::ProofReady, &p).is_err());
        assert!(at(S::Removed, 0).apply(&E::Remove, &p).is_err());
        assert!(at(S::Packing, 0).apply(&failed("x"), &p).is_err(), "Packing has no failure state");
    }

    #[test]
    fn out_of_order_events_are_refused_with_a_clear_error() {
        let err = Lifecycle::default().apply(&E::ProofReady, &policy(3)).unwrap_err();
        assert_eq!(err.to_string(), "event ProofReady is not valid in state Packing");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        let waits: Vec<u64> = (1..=7).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
    }

    fn any_event() -> impl Strategy<Value = E> {
        prop_oneof![
            Just(E::StartSealing),
            (0u64..100).prop_map(|epoch| E::TicketDrawn { ticket: Randomness([1; 32]), epoch }),
            Just(E::PreCommitted1),
            Just(E::PreCommitted2 { comm_d: Commitment([2; 32]), comm_r: Commitment([3; 32]) }),
            Just(E::PreCommitSent { message: MessageId::from(1) }),
            (0u64..100).prop_map(|epoch| E::PreCommitLanded { epoch }),
            (0u64..100).prop_map(|epoch| E::SeedReady { seed: Randomness([4; 32]), epoch }),
            Just(E::ProofReady),
            Just(E::CommitSent { message: MessageId::from(2) }),
            (0u64..100).prop_map(|epoch| E::CommitLanded { epoch }),
            Just(E::CommitRejected { reason: "r".into() }),
            Just(E::PreCommitExpired),
            Just(E::Finalized),
            Just(failed("e")),
            Just(E::StepFailed { error: "p".into(), disposition: Disposition::Permanent }),
            Just(E::Retry),
            Just(E::OperatorRetry { step: S::Committing }),
            Just(E::Abort { reason: "a".into() }),
            Just(E::Remove),
            Just(E::RemoveDone),
        ]
    }

    proptest! {
        /// Random event sequences: no panic; terminal states stay terminal;
        /// attempts never exceed the cap; replaying the accepted events (as the
        /// store persists them, through JSON) gives the same state.
        #[test]
        fn random_sequences_are_safe_and_replayable(
            events in proptest::collection::vec(any_event(), 0..60),
            max in 1u32..5,
        ) {
            let p = policy(max);
            let mut l = Lifecycle::default();
            let mut accepted = Vec::new();
            for e in &events {
                let before = l;
                match l.apply(e, &p) {
                    Ok(next) => {
                        let operator = matches!(e, E::OperatorRetry { .. }) && before.state == S::Failed;
                        prop_assert!(!before.state.is_terminal() || operator, "left terminal {}", before.state);
                        prop_assert!(next.attempts <= max);
                        accepted.push(serde_json::to_string(e).unwrap());
                        l = next;
                    }
                    Err(err) => prop_assert_eq!(err.state, before.state),
                }
            }
            let log: Vec<E> = accepted.iter().map(|j| serde_json::from_str(j).unwrap()).collect();
            prop_assert_eq!(Lifecycle::replay(&log, &p).unwrap(), l);
        }
    }
}
