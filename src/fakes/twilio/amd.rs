//! Answering-machine detection in the fake: given the request's `MachineDetection` options and
//! who answers, when the verdict is reached and what it is.
//!
//! - Human: `human` once they have spoken and fallen silent for the speech-end threshold
//!   (sync: 0.5 s of "hello" plus the threshold, before the TwiML is fetched, the scripted
//!   turns all happening in the stream; async: after the first scripted line, in the stream).
//! - Machine, `Enable`: `machine_start` after the speech threshold (or the greeting's end).
//! - Machine, `DetectMessageEnd`: `machine_end_beep` 0.5 s after the beep. Sync: the greeting
//!   and beep play before the TwiML is fetched, so the stream starts at the recording; async:
//!   the stream carries them and the verdict is POSTed when the beep has been streamed.
//! - Past `MachineDetectionTimeout`: `unknown`.
//!
//! Pure timing; the lifecycle waits and reports.

use std::time::Duration;

use super::callee::Callee;
use super::request::Amd;

/// Silence after the beep before Twilio calls the message end.
const AFTER_BEEP: Duration = Duration::from_millis(500);
/// How long a human's "hello?" takes, for sync detection.
const HELLO: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdVerdict {
    Human,
    MachineStart,
    MachineEndBeep,
    Unknown,
}

impl AmdVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AmdVerdict::Human => "human",
            AmdVerdict::MachineStart => "machine_start",
            AmdVerdict::MachineEndBeep => "machine_end_beep",
            AmdVerdict::Unknown => "unknown",
        }
    }
}

/// When and what AMD decides for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdPlan {
    /// Decided before the TwiML is fetched (else POSTed to the async callback mid-stream).
    pub sync: bool,
    /// Sync: after the answer; async: after the stream opens.
    pub after: Duration,
    pub verdict: AmdVerdict,
    /// Sync, machine: how much of the greeting played before the stream opened.
    pub greeting_offset: Duration,
    /// Sync, machine: the beep too played before the stream opened.
    pub skip_beep: bool,
}

/// The plan for `callee` under `amd` (`None`: no AMD asked, or nobody answers).
pub fn plan(amd: Option<&Amd>, callee: &Callee) -> Option<AmdPlan> {
    let amd = amd?;
    let sync = amd.async_callback.is_none();
    let mut p = match callee {
        Callee::Human(h) => AmdPlan {
            sync,
            after: if sync { HELLO } else { h.first_words_end() } + amd.speech_end_threshold,
            verdict: AmdVerdict::Human,
            greeting_offset: Duration::ZERO,
            skip_beep: false,
        },
        Callee::Machine(m) if amd.message_end => AmdPlan {
            sync,
            after: m.greeting_len() + m.beep_len() + AFTER_BEEP,
            verdict: AmdVerdict::MachineEndBeep,
            greeting_offset: if sync {
                m.greeting_len()
            } else {
                Duration::ZERO
            },
            skip_beep: sync,
        },
        Callee::Machine(m) => {
            let after = m.greeting_len().min(amd.speech_threshold);
            AmdPlan {
                sync,
                after,
                verdict: AmdVerdict::MachineStart,
                greeting_offset: if sync { after } else { Duration::ZERO },
                skip_beep: false,
            }
        }
        Callee::Busy | Callee::NoAnswer | Callee::Fail => return None,
    };
    if p.after > amd.timeout {
        p.after = amd.timeout;
        p.verdict = AmdVerdict::Unknown;
        if let (true, Callee::Machine(m)) = (sync, callee) {
            p.greeting_offset = amd.timeout;
            p.skip_beep = amd.timeout >= m.greeting_len() + m.beep_len();
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::twilio::request::Hook;

    fn amd(message_end: bool, asynchronous: bool) -> Amd {
        Amd {
            message_end,
            async_callback: asynchronous.then(|| Hook {
                url: "http://127.0.0.1:1/amd".into(),
                method: "POST",
            }),
            timeout: Duration::from_secs(30),
            speech_threshold: Duration::from_millis(2400),
            speech_end_threshold: Duration::from_millis(1200),
        }
    }

    #[test]
    fn verdicts_and_timing() {
        let machine = Callee::machine();
        let Callee::Machine(m) = &machine else {
            unreachable!()
        };
        let beep_end = m.greeting_len() + m.beep_len();
        let p = plan(Some(&amd(true, true)), &machine).unwrap();
        assert_eq!(p.verdict, AmdVerdict::MachineEndBeep);
        assert!(!p.sync && p.after > beep_end && !p.skip_beep);
        let p = plan(Some(&amd(true, false)), &machine).unwrap();
        assert!(p.sync && p.skip_beep);
        let p = plan(Some(&amd(false, false)), &machine).unwrap();
        assert_eq!(p.verdict, AmdVerdict::MachineStart);
        assert_eq!(p.greeting_offset, Duration::from_millis(2400));
        let p = plan(Some(&amd(true, true)), &Callee::human(1)).unwrap();
        assert_eq!(p.verdict, AmdVerdict::Human);
        assert!(p.after > Duration::from_millis(1200));
        assert_eq!(plan(Some(&amd(true, true)), &Callee::Busy), None);
        assert_eq!(plan(None, &machine), None);
        let mut short = amd(true, false);
        short.timeout = Duration::from_secs(2);
        let p = plan(Some(&short), &machine).unwrap();
        assert_eq!(
            (p.verdict, p.after),
            (AmdVerdict::Unknown, Duration::from_secs(2))
        );
        assert!(!p.skip_beep);
    }
}
