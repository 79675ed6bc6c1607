//! Unit tests of [`super::gate::BargeInGate`] on synthetic verdicts (the fixture-based ones are
//! in `tests/vad.rs`).

use std::time::{Duration, Instant};

use super::VadFrame;
use super::gate::{Agent, BargeInCause, BargeInGate, GateConfig, GateEvent, has_content_words};

fn cfg(stt: bool) -> GateConfig {
    GateConfig {
        speech_start_ms: 60,
        end_of_turn_ms: 600,
        min_utterance_ms: 200,
        barge_in_ms: 200,
        backchannel_ms: 400,
        echo_margin_db: Some(10.0),
        false_barge_in_ms: 1500,
        stt,
    }
}

const SPEECH: VadFrame = VadFrame {
    probability: 1.0,
    speech: true,
    voiced: true,
    level_dbfs: -20.0,
};
const QUIET: VadFrame = VadFrame {
    probability: 0.0,
    speech: false,
    voiced: false,
    level_dbfs: -60.0,
};

/// Feeds frames, collecting (frame index, event).
struct Run {
    gate: BargeInGate,
    t0: Instant,
    i: u64,
    events: Vec<(u64, GateEvent)>,
}

impl Run {
    fn new(cfg: GateConfig) -> Self {
        Self {
            gate: BargeInGate::new(cfg),
            t0: Instant::now(),
            i: 0,
            events: Vec::new(),
        }
    }
    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(20 * self.i)
    }
    fn feed(&mut self, frame: VadFrame, agent: Agent, n: u64) {
        for _ in 0..n {
            self.i += 1;
            let now = self.now();
            for e in self.gate.on_frame(now, frame, agent) {
                self.events.push((self.i, e));
            }
        }
    }
    fn words(&mut self, text: &str) {
        let now = self.now();
        for e in self.gate.on_words(now, text) {
            self.events.push((self.i, e));
        }
    }
    fn kinds(&self) -> Vec<GateEvent> {
        self.events.iter().map(|(_, e)| *e).collect()
    }
}

const PLAYING: Agent = Agent::Playing { level_dbfs: -18.0 };

#[test]
fn sustained_speech_holds_at_200_ms_and_cuts_past_400_ms() {
    let mut r = Run::new(cfg(false));
    r.feed(QUIET, PLAYING, 10);
    r.feed(SPEECH, PLAYING, 30);
    assert_eq!(
        r.events,
        vec![
            (13, GateEvent::Contest),
            (20, GateEvent::Hold),
            (
                31,
                GateEvent::BargeIn {
                    cause: BargeInCause::Speech
                }
            )
        ]
    );
    assert!(r.gate.in_turn());
}

#[test]
fn a_backchannel_or_cough_shorter_than_400_ms_does_not_cut() {
    for ms in [60, 200, 340] {
        let mut r = Run::new(cfg(false));
        r.feed(QUIET, PLAYING, 10);
        r.feed(SPEECH, PLAYING, ms / 20);
        r.feed(QUIET, PLAYING, 40);
        let kinds = r.kinds();
        assert!(
            !kinds.iter().any(|e| matches!(e, GateEvent::BargeIn { .. })),
            "{ms} ms: {kinds:?}"
        );
        let held = ms >= 200;
        assert_eq!(
            kinds,
            if held {
                vec![
                    GateEvent::Contest,
                    GateEvent::Hold,
                    GateEvent::Resume { held: true },
                ]
            } else {
                vec![GateEvent::Contest, GateEvent::Resume { held: false }]
            },
            "{ms} ms"
        );
    }
    // "uh … huh": two bursts with a short gap are one run of 380 ms: still no barge-in.
    let mut r = Run::new(cfg(false));
    r.feed(SPEECH, PLAYING, 8);
    r.feed(QUIET, PLAYING, 4);
    r.feed(SPEECH, PLAYING, 7);
    r.feed(QUIET, PLAYING, 20);
    assert!(
        !r.kinds()
            .iter()
            .any(|e| matches!(e, GateEvent::BargeIn { .. }))
    );
}

#[test]
fn our_echo_is_not_the_caller() {
    let mut r = Run::new(cfg(false));
    let echo = VadFrame {
        level_dbfs: -36.0,
        ..SPEECH
    };
    r.feed(echo, PLAYING, 100);
    assert!(r.events.is_empty(), "{:?}", r.events);
    // The caller talking over it is louder than the margin allows for echo.
    let caller = VadFrame {
        level_dbfs: -24.0,
        ..SPEECH
    };
    r.feed(caller, PLAYING, 25); // past the 400 ms backchannel limit
    assert!(r.kinds().contains(&GateEvent::BargeIn {
        cause: BargeInCause::Speech
    }));
    // The echo reference outlives the playback by the echo window.
    let mut r = Run::new(cfg(false));
    r.feed(QUIET, PLAYING, 5);
    r.feed(echo, Agent::Busy, 20);
    assert!(r.events.is_empty(), "{:?}", r.events);
}

#[test]
fn words_cut_at_once_backchannel_words_do_not() {
    let mut r = Run::new(cfg(true));
    r.feed(SPEECH, PLAYING, 5);
    r.words("yeah, uh-huh. Okay");
    assert_eq!(r.kinds(), vec![GateEvent::Contest]);
    r.words("wait");
    assert_eq!(
        r.kinds(),
        vec![
            GateEvent::Contest,
            GateEvent::BargeIn {
                cause: BargeInCause::Words
            }
        ]
    );
    // Words that confirm the barge-in: never counted false.
    r.feed(SPEECH, PLAYING, 100);
    assert!(!r.kinds().contains(&GateEvent::FalseBargeIn));
    assert!(has_content_words("no that's wrong") && !has_content_words(" Mm-hmm, yes! "));
}

#[test]
fn a_barge_in_without_words_is_false_with_an_stt_only() {
    let mut r = Run::new(cfg(true));
    r.feed(SPEECH, PLAYING, 25);
    r.feed(QUIET, Agent::Idle, 100);
    let at = |e: GateEvent| r.events.iter().find(|(_, x)| *x == e).map(|(i, _)| *i);
    let cut = at(GateEvent::BargeIn {
        cause: BargeInCause::Speech,
    })
    .unwrap();
    assert_eq!(at(GateEvent::FalseBargeIn), Some(cut + 1500 / 20));

    let mut r = Run::new(cfg(true));
    r.feed(SPEECH, PLAYING, 25);
    r.words("stop please");
    r.feed(QUIET, Agent::Idle, 100);
    assert!(!r.kinds().contains(&GateEvent::FalseBargeIn));

    let mut r = Run::new(cfg(false));
    r.feed(SPEECH, PLAYING, 25);
    r.feed(QUIET, Agent::Idle, 100);
    assert!(!r.kinds().contains(&GateEvent::FalseBargeIn));
}

#[test]
fn end_of_turn_is_end_of_turn_ms_after_the_last_speech_and_pauses_do_not_end_it() {
    let mut r = Run::new(cfg(false));
    r.feed(QUIET, Agent::Idle, 5);
    r.feed(SPEECH, Agent::Idle, 50); // frames 6..=55
    r.feed(QUIET, Agent::Idle, 29); // a 580 ms pause
    r.feed(SPEECH, Agent::Idle, 20); // frames 85..=104
    r.feed(QUIET, Agent::Idle, 40);
    let speech_end = r.t0 + Duration::from_millis(20 * 104);
    assert_eq!(
        r.events,
        vec![
            (8, GateEvent::SpeechStarted),
            (
                104 + 30,
                GateEvent::TurnEnded {
                    speech_ms: 60 + 47 * 20 + 29 * 20 + 20 * 20,
                    speech_end
                }
            )
        ]
    );
    // 40 ms of speech is not a turn start (ported from the old turn detector's tests).
    let mut r = Run::new(cfg(false));
    r.feed(SPEECH, Agent::Idle, 2);
    r.feed(QUIET, Agent::Idle, 40);
    assert!(r.events.is_empty() && !r.gate.in_turn(), "{:?}", r.events);
    // Too short to be a turn.
    let mut r = Run::new(cfg(false));
    r.feed(SPEECH, Agent::Idle, 5);
    r.feed(QUIET, Agent::Idle, 40);
    assert_eq!(
        r.kinds(),
        vec![GateEvent::SpeechStarted, GateEvent::Discarded]
    );
}

#[test]
fn the_legacy_rule_cuts_on_any_60_ms() {
    let turn = crate::config::Config::default().turn;
    let mut r = Run::new(GateConfig::legacy(&turn));
    r.feed(SPEECH, PLAYING, 3);
    assert_eq!(
        r.events,
        vec![(
            3,
            GateEvent::BargeIn {
                cause: BargeInCause::Speech
            }
        )]
    );
}
