//! Checking a scripted flow when it is loaded: every state and transition, with errors that
//! name the state. Pure: no I/O.

use super::{Flow, FlowError, words};
use crate::agent::outcome_label;

pub(super) fn validate(flow: &Flow) -> Result<(), FlowError> {
    let start = flow
        .states
        .get(&flow.start)
        .ok_or_else(|| FlowError::MissingStart(flow.start.clone()))?;
    if start.end || start.transfer.is_some() || start.outcome.is_some() || start.opt_out {
        return Err(FlowError::StartHasAction(flow.start.clone()));
    }
    for (name, state) in &flow.states {
        let state_name = || name.clone();
        if state.end && state.transfer.is_some() {
            return Err(FlowError::EndAndTransfer(state_name()));
        }
        if state.opt_out && (state.outcome.is_some() || state.transfer.is_some()) {
            return Err(FlowError::OptOutConflict(state_name()));
        }
        if let Some(outcome) = &state.outcome
            && outcome_label(outcome).as_ref() != Some(outcome)
        {
            return Err(FlowError::BadOutcome {
                state: state_name(),
                outcome: outcome.clone(),
            });
        }
        if let Some(number) = &state.transfer {
            let ok = number.strip_prefix('+').is_some_and(|d| {
                (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err(FlowError::BadTransfer {
                    state: state_name(),
                    number: number.clone(),
                });
            }
        }
        for (index, t) in state.on.iter().enumerate() {
            if t.keywords.is_empty() && t.dtmf.is_none() && !t.digits {
                return Err(FlowError::EmptyTransition {
                    state: state_name(),
                    index,
                });
            }
            if t.keywords.iter().any(|k| words(k).is_empty()) {
                return Err(FlowError::EmptyKeyword {
                    state: state_name(),
                    index,
                });
            }
            let dtmf_ok = |d: &str| {
                !d.is_empty()
                    && d.chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            };
            if let Some(dtmf) = t.dtmf.as_ref().filter(|d| !dtmf_ok(d)) {
                return Err(FlowError::BadDtmf {
                    state: state_name(),
                    dtmf: dtmf.clone(),
                });
            }
            if !flow.states.contains_key(&t.to) {
                return Err(FlowError::UnknownTarget {
                    state: state_name(),
                    index,
                    to: t.to.clone(),
                });
            }
        }
    }
    Ok(())
}
