//! [`BargeInGate`]: per-frame speech decisions → the caller's turns and barge-ins (issue 11
//! §3, §4). A pure state machine: no clocks (every instant is passed in), no I/O, no
//! allocation; the caller counts metrics and acts on the [`GateEvent`]s.
//!
//! Rules:
//! - A frame is *caller speech* when the detector says speech and, while we are playing, it is
//!   not our own echo: echo comes back at least `echo_margin_db` below what we play (the
//!   loudest outbound frame of the last [`ECHO_WINDOW_FRAMES`], which covers the echo delay).
//! - With the agent idle, `speech_start_ms` of caller speech starts a turn
//!   ([`GateEvent::SpeechStarted`]); it ends `end_of_turn_ms` after the last caller speech
//!   ([`GateEvent::TurnEnded`]); a shorter pause does not end it; a turn with less than
//!   `min_utterance_ms` of speech is [`GateEvent::Discarded`].
//! - With the agent busy (playing or generating), caller speech is a *contest*
//!   ([`GateEvent::Contest`]: keep its audio, it may become a turn): after `barge_in_ms` of
//!   voiced speech the reply may be held ([`GateEvent::Hold`], optional to act on); it is cut
//!   ([`GateEvent::BargeIn`]) when the run has outlasted `backchannel_ms` with at least
//!   `barge_in_ms` of speech in it, or at once when the STT recognises words that are not a
//!   backchannel. A run that stops first (a cough, a click, "uh-huh", "yeah") is dropped
//!   ([`GateEvent::Resume`]). A run ends after [`RUN_GAP_MS`] without speech.
//! - With an STT, a barge-in followed by no words within `false_barge_in_ms` is reported as
//!   [`GateEvent::FalseBargeIn`] (count it as `voxbridge_barge_ins_total{kind="false"}`).

use std::time::{Duration, Instant};

use super::{FRAME_MS, VadFrame};

/// Outbound frames remembered as the echo reference (500 ms: the echo's delay and tail).
pub const ECHO_WINDOW_FRAMES: usize = 25;
/// Silence that ends a contested run of caller speech.
pub const RUN_GAP_MS: u32 = 320;
/// Words that acknowledge rather than interrupt.
const BACKCHANNELS: &[&str] = &[
    "uh-huh", "uh", "huh", "mm-hmm", "mhm", "mm", "hmm", "um", "yeah", "yep", "yes", "ok", "okay",
    "right", "sure", "ah", "oh", "aha",
];

/// Timing and level rules of the gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    pub speech_start_ms: u32,
    pub end_of_turn_ms: u32,
    pub min_utterance_ms: u32,
    pub barge_in_ms: u32,
    pub backchannel_ms: u32,
    /// `None`: no echo rule (every detected frame is the caller).
    pub echo_margin_db: Option<f32>,
    pub false_barge_in_ms: u32,
    /// Whether words are expected from an STT (false barge-ins can only be told with one).
    pub stt: bool,
}

impl GateConfig {
    pub fn new(
        turn: &crate::config::TurnConfig,
        vad: &crate::config::VadConfig,
        stt: bool,
    ) -> Self {
        Self {
            speech_start_ms: turn.speech_start_ms,
            end_of_turn_ms: turn.end_of_turn_ms,
            min_utterance_ms: turn.min_utterance_ms,
            barge_in_ms: vad.barge_in_ms,
            backchannel_ms: vad.backchannel_ms,
            echo_margin_db: Some(vad.echo_margin_db),
            false_barge_in_ms: vad.false_barge_in_ms,
            stt,
        }
    }

    /// The rule before issue 11: any `speech_start_ms` of detected speech cuts the reply.
    pub fn legacy(turn: &crate::config::TurnConfig) -> Self {
        Self {
            speech_start_ms: turn.speech_start_ms,
            end_of_turn_ms: turn.end_of_turn_ms,
            min_utterance_ms: turn.min_utterance_ms,
            barge_in_ms: 0,
            backchannel_ms: 0,
            echo_margin_db: None,
            false_barge_in_ms: 0,
            stt: false,
        }
    }
}

/// What the agent is doing while this frame arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agent {
    /// Nothing playing, nothing being generated.
    Idle,
    /// A reply is being generated or queued but nothing is audible.
    Busy,
    /// We are playing audio at this level (dBFS) now.
    Playing { level_dbfs: f32 },
}

/// Why a reply was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInCause {
    /// Speech outlasted `backchannel_ms`.
    Speech,
    /// The STT recognised words that are not a backchannel.
    Words,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateEvent {
    /// The caller began a turn while the agent was idle (start recording the utterance), or
    /// the reply ended by itself during a contest (the contest's speech is the turn).
    SpeechStarted,
    /// Caller speech began over a busy agent: not yet a barge-in (start recording it).
    Contest,
    /// `barge_in_ms` of caller speech over our reply: the caller may pause sending.
    Hold,
    /// The contested speech stopped short of a barge-in: carry on, forget its audio.
    /// `held`: a [`GateEvent::Hold`] came before.
    Resume { held: bool },
    /// Cut the reply now (clear); the caller's turn has begun.
    BargeIn { cause: BargeInCause },
    /// The last barge-in got no words within `false_barge_in_ms`.
    FalseBargeIn,
    /// The caller's turn is over; `speech_end` is the arrival of its last speech frame.
    TurnEnded { speech_ms: u32, speech_end: Instant },
    /// A turn too short to be one (noise that got through); forget its audio.
    Discarded,
}

/// Up to three events from one input (a false-barge-in verdict, a contest starting and its
/// first progress).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Events([Option<GateEvent>; 3]);

impl Events {
    fn push(&mut self, e: GateEvent) {
        if let Some(slot) = self.0.iter_mut().find(|x| x.is_none()) {
            *slot = Some(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }

    pub fn contains(&self, e: &GateEvent) -> bool {
        self.0.iter().any(|x| x.as_ref() == Some(e))
    }
}

impl IntoIterator for Events {
    type Item = GateEvent;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<GateEvent>, 3>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No caller speech; `onset_ms` of consecutive speech so far.
    Idle { onset_ms: u32 },
    /// Caller speech over a busy agent.
    Contest {
        /// Media time from the run's first to its last speech frame (frames, not arrival
        /// instants: a burst of frames after a network stall is still as long as it sounds).
        run_ms: u32,
        speech_ms: u32,
        gap_ms: u32,
        held: bool,
        last_speech: Instant,
    },
    /// The caller's turn.
    Turn {
        speech_ms: u32,
        silence_ms: u32,
        last_speech: Instant,
    },
}

/// Turn and barge-in decisions for one call.
#[derive(Debug, Clone)]
pub struct BargeInGate {
    cfg: GateConfig,
    state: State,
    echo: [f32; ECHO_WINDOW_FRAMES],
    echo_next: usize,
    /// When the last barge-in must have produced words by, if it has not yet.
    false_deadline: Option<Instant>,
}

impl BargeInGate {
    pub fn new(cfg: GateConfig) -> Self {
        Self {
            cfg,
            state: State::Idle { onset_ms: 0 },
            echo: [-96.0; ECHO_WINDOW_FRAMES],
            echo_next: 0,
            false_deadline: None,
        }
    }

    /// Is the caller's turn in progress (after a start or a barge-in)?
    pub fn in_turn(&self) -> bool {
        matches!(self.state, State::Turn { .. })
    }

    /// The loudest thing we played in the echo window (dBFS).
    pub fn echo_reference_dbfs(&self) -> f32 {
        self.echo.iter().copied().fold(-96.0, f32::max)
    }

    /// Would a frame at this level be taken for our own echo?
    pub fn is_echo(&self, level_dbfs: f32) -> bool {
        self.cfg
            .echo_margin_db
            .is_some_and(|m| level_dbfs < self.echo_reference_dbfs() - m)
    }

    /// One inbound frame (arrived at `now`), the detector's verdict on it, and what we play.
    pub fn on_frame(&mut self, now: Instant, frame: VadFrame, agent: Agent) -> Events {
        let out = match agent {
            Agent::Playing { level_dbfs } => level_dbfs,
            _ => -96.0,
        };
        self.echo[self.echo_next] = out;
        self.echo_next = (self.echo_next + 1) % ECHO_WINDOW_FRAMES;
        let speech = frame.speech && !self.is_echo(frame.level_dbfs);
        let voiced = speech && frame.voiced;
        let busy = agent != Agent::Idle;
        let mut events = Events::default();
        if let Some(deadline) = self.false_deadline
            && now >= deadline
        {
            self.false_deadline = None;
            events.push(GateEvent::FalseBargeIn);
        }
        let contest_before = matches!(self.state, State::Contest { .. });
        let e = self.step(now, speech, voiced, busy);
        if !contest_before && matches!(self.state, State::Contest { .. }) {
            events.push(GateEvent::Contest);
        }
        if let Some(e) = e {
            events.push(e);
        }
        events
    }

    fn step(&mut self, now: Instant, speech: bool, voiced: bool, busy: bool) -> Option<GateEvent> {
        let cfg = self.cfg;
        match &mut self.state {
            State::Idle { onset_ms } => {
                if !speech {
                    *onset_ms = 0;
                    return None;
                }
                *onset_ms += FRAME_MS;
                if *onset_ms < cfg.speech_start_ms.max(FRAME_MS) {
                    return None;
                }
                let onset = *onset_ms;
                if !busy {
                    self.state = turn(onset, now);
                    return Some(GateEvent::SpeechStarted);
                }
                self.state = State::Contest {
                    run_ms: onset,
                    speech_ms: onset,
                    gap_ms: 0,
                    held: false,
                    last_speech: now,
                };
                self.contest_progress(now)
            }
            State::Contest {
                run_ms,
                speech_ms,
                gap_ms,
                held,
                last_speech,
            } => {
                if speech {
                    // Unvoiced frames keep the run alive; only voiced ones make it a barge-in.
                    if voiced {
                        *speech_ms += FRAME_MS;
                    }
                    *run_ms += *gap_ms + FRAME_MS;
                    *gap_ms = 0;
                    *last_speech = now;
                } else {
                    *gap_ms += FRAME_MS;
                    if *gap_ms >= RUN_GAP_MS {
                        let held = *held;
                        self.state = State::Idle { onset_ms: 0 };
                        return Some(GateEvent::Resume { held });
                    }
                }
                if !busy {
                    // The reply ended by itself: this is simply the caller's turn.
                    let (ms, last) = (*speech_ms, *last_speech);
                    self.state = State::Turn {
                        speech_ms: ms,
                        silence_ms: 0,
                        last_speech: last,
                    };
                    return Some(GateEvent::SpeechStarted);
                }
                self.contest_progress(now)
            }
            State::Turn {
                speech_ms,
                silence_ms,
                last_speech,
            } => {
                if speech {
                    *speech_ms += FRAME_MS + *silence_ms;
                    *silence_ms = 0;
                    *last_speech = now;
                    return None;
                }
                *silence_ms += FRAME_MS;
                if *silence_ms < cfg.end_of_turn_ms {
                    return None;
                }
                let (ms, end) = (*speech_ms, *last_speech);
                self.state = State::Idle { onset_ms: 0 };
                Some(if ms < cfg.min_utterance_ms {
                    GateEvent::Discarded
                } else {
                    GateEvent::TurnEnded {
                        speech_ms: ms,
                        speech_end: end,
                    }
                })
            }
        }
    }

    /// In a contest: hold, or cut once the run is long enough.
    fn contest_progress(&mut self, now: Instant) -> Option<GateEvent> {
        let State::Contest {
            run_ms,
            speech_ms,
            held,
            last_speech,
            ..
        } = &mut self.state
        else {
            return None;
        };
        // The run's extent is first to last speech frame: a gap does not lengthen it.
        if *speech_ms >= self.cfg.barge_in_ms && *run_ms > self.cfg.backchannel_ms {
            let (ms, last) = (*speech_ms, *last_speech);
            return Some(self.barge_in(now, BargeInCause::Speech, ms, last));
        }
        if *speech_ms >= self.cfg.barge_in_ms && !*held {
            *held = true;
            return Some(GateEvent::Hold);
        }
        None
    }

    fn barge_in(&mut self, now: Instant, cause: BargeInCause, ms: u32, last: Instant) -> GateEvent {
        self.state = State::Turn {
            speech_ms: ms,
            silence_ms: 0,
            last_speech: last,
        };
        self.false_deadline = (self.cfg.stt && cause == BargeInCause::Speech)
            .then(|| now + Duration::from_millis(u64::from(self.cfg.false_barge_in_ms)));
        GateEvent::BargeIn { cause }
    }

    /// Words from the STT (interim or final) at `now`.
    pub fn on_words(&mut self, now: Instant, text: &str) -> Events {
        let mut events = Events::default();
        if !has_content_words(text) {
            return events;
        }
        self.false_deadline = None;
        if let State::Contest {
            speech_ms,
            last_speech,
            ..
        } = self.state
        {
            events.push(self.barge_in(now, BargeInCause::Words, speech_ms, last_speech));
        }
        events
    }
}

fn turn(onset_ms: u32, now: Instant) -> State {
    State::Turn {
        speech_ms: onset_ms,
        silence_ms: 0,
        last_speech: now,
    }
}

/// Does `text` hold a word that is not a backchannel?
pub fn has_content_words(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | ';' | ':'))
        .filter(|w| !w.is_empty())
        .any(|w| {
            let w = w.to_lowercase();
            !BACKCHANNELS.contains(&w.as_str())
        })
}
