//! The fake Deepgram's "recogniser": an energy VAD over the received μ-law that decides, in
//! audio time only (bytes received / 8000), when to send `SpeechStarted`, interim and final
//! `Results` and `UtteranceEnd`, with scripted transcripts as the words.
//!
//! It is synchronous and deterministic: the same audio gives the same messages however fast
//! it arrives. It must not look at the wall clock or do I/O.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::audio::frame_dbfs;
use crate::audio::mulaw;

/// VAD frame: 20 ms of 8 kHz μ-law.
const FRAME: usize = 160;
const FRAME_MS: u64 = 20;
/// Voiced frames at or above this level.
const VOICED_DBFS: f32 = -40.0;
/// Voiced frames in a row before speech starts (60 ms).
const START_FRAMES: u32 = 3;
/// Interims about once per second of speech.
const INTERIM_FRAMES: u32 = 50;

/// Transcripts the fake will "recognise", one per final: first the queue the test fills, shared
/// by all connections and consumed in order; when it is empty, the cycle (if one is set), which
/// every connection walks through on its own from the start, round and round — so a long load
/// run never runs out of words; with neither, `""`.
#[derive(Debug, Clone, Default)]
pub struct Transcripts(Arc<Mutex<Script>>);

#[derive(Debug, Default)]
struct Script {
    queue: VecDeque<String>,
    cycle: Vec<String>,
}

impl Transcripts {
    /// Queue the text of the next utterance.
    pub fn push(&self, text: impl Into<String>) {
        if let Ok(mut s) = self.0.lock() {
            s.queue.push_back(text.into());
        }
    }

    /// Once the queue is empty, every connection cycles through `phrases` (its own position).
    pub fn cycle<S: Into<String>>(&self, phrases: impl IntoIterator<Item = S>) {
        if let Ok(mut s) = self.0.lock() {
            s.cycle = phrases.into_iter().map(Into::into).collect();
        }
    }

    /// The text the next final of a connection at `cursor` will carry (interims show a prefix).
    pub fn peek(&self, cursor: usize) -> Option<String> {
        let s = self.0.lock().ok()?;
        s.queue
            .front()
            .cloned()
            .or_else(|| cycled(&s.cycle, cursor).cloned())
    }

    /// Take the next text for a final of the connection whose position is `cursor`.
    pub fn pop(&self, cursor: &mut usize) -> Option<String> {
        let mut s = self.0.lock().ok()?;
        if let Some(text) = s.queue.pop_front() {
            return Some(text);
        }
        let text = cycled(&s.cycle, *cursor).cloned();
        if text.is_some() {
            *cursor += 1;
        }
        text
    }
}

fn cycled(cycle: &[String], cursor: usize) -> Option<&String> {
    (!cycle.is_empty()).then(|| &cycle[cursor % cycle.len()])
}

/// What the client asked for in the query string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    /// Silence before `speech_final` (`None`: `endpointing=false`).
    pub endpointing_ms: Option<u64>,
    /// Gap after the last word before `UtteranceEnd` (`None`: not requested).
    pub utterance_end_ms: Option<u64>,
    pub interim_results: bool,
    pub vad_events: bool,
}

/// A speech segment not yet finalised (times in frames since the stream started).
#[derive(Debug)]
struct Segment {
    first_voiced: u64,
    last_voiced: u64,
    since_interim: u32,
    interims: usize,
}

/// Audio in, Deepgram messages out.
#[derive(Debug)]
pub struct Recognizer {
    settings: Settings,
    request_id: String,
    carry: [u8; FRAME],
    carry_len: usize,
    /// Whole frames processed: audio time.
    frames: u64,
    voiced_run: u32,
    segment: Option<Segment>,
    /// End of the last final `Results` (the next one starts here).
    final_end: u64,
    /// End of the last finalised word, until `UtteranceEnd` is sent for it.
    pending_utterance_end: Option<u64>,
    /// The transcripts of the finals produced so far.
    pub finals: Vec<String>,
    /// This connection's position in the transcripts' cycle.
    cursor: usize,
}

fn secs(frames: u64) -> f64 {
    (frames * FRAME_MS) as f64 / 1000.0
}

impl Recognizer {
    pub fn new(settings: Settings, request_id: String) -> Self {
        Self {
            settings,
            request_id,
            carry: [0; FRAME],
            carry_len: 0,
            frames: 0,
            voiced_run: 0,
            segment: None,
            final_end: 0,
            pending_utterance_end: None,
            finals: Vec::new(),
            cursor: 0,
        }
    }

    /// Audio time processed, in seconds.
    pub fn audio_secs(&self) -> f64 {
        secs(self.frames)
    }

    /// Feed received audio (any length); messages to send are appended to `out`.
    pub fn push(&mut self, mut audio: &[u8], script: &Transcripts, out: &mut Vec<String>) {
        while !audio.is_empty() {
            let take = (FRAME - self.carry_len).min(audio.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&audio[..take]);
            self.carry_len += take;
            audio = &audio[take..];
            if self.carry_len == FRAME {
                self.carry_len = 0;
                let mut pcm = [0i16; FRAME];
                mulaw::decode_into(&self.carry, &mut pcm);
                self.frame(frame_dbfs(&pcm) >= VOICED_DBFS, script, out);
            }
        }
    }

    /// Finalise the segment in progress, if any (`CloseStream` / `Finalize`).
    pub fn flush(&mut self, script: &Transcripts, out: &mut Vec<String>) {
        if self.segment.is_some() {
            self.finalize(false, script, out);
        }
    }

    fn frame(&mut self, voiced: bool, script: &Transcripts, out: &mut Vec<String>) {
        self.frames += 1;
        let now = self.frames;
        self.voiced_run = if voiced { self.voiced_run + 1 } else { 0 };
        let s = &self.settings;
        let (endpointing, utterance_end) = (s.endpointing_ms, s.utterance_end_ms);
        match &mut self.segment {
            None if self.voiced_run >= START_FRAMES => {
                let first_voiced = now - u64::from(self.voiced_run);
                self.segment = Some(Segment {
                    first_voiced,
                    last_voiced: now,
                    since_interim: 0,
                    interims: 0,
                });
                self.pending_utterance_end = None;
                if self.settings.vad_events {
                    let msg = json!({"type": "SpeechStarted", "channel": [0, 1],
                        "timestamp": secs(first_voiced)});
                    out.push(msg.to_string());
                }
            }
            None => {}
            Some(seg) => {
                if voiced {
                    seg.last_voiced = now;
                }
                seg.since_interim += 1;
                let interim_due = seg.since_interim >= INTERIM_FRAMES;
                if interim_due {
                    seg.since_interim = 0;
                    seg.interims += 1;
                }
                let silence_ms = (now - seg.last_voiced) * FRAME_MS;
                let interims = seg.interims;
                if endpointing.is_some_and(|e| silence_ms >= e) {
                    self.finalize(true, script, out);
                } else if utterance_end.is_some_and(|u| silence_ms >= u) {
                    self.finalize(false, script, out);
                } else if interim_due && self.settings.interim_results {
                    let text = script.peek(self.cursor).unwrap_or_default();
                    let prefix: Vec<&str> = text.split_whitespace().take(interims).collect();
                    out.push(self.results(&prefix.join(" "), false, false, None));
                }
            }
        }
        if self.segment.is_none()
            && let (Some(last), Some(gap)) = (self.pending_utterance_end, utterance_end)
            && (now - last) * FRAME_MS >= gap
        {
            self.pending_utterance_end = None;
            let msg = json!({"type": "UtteranceEnd", "channel": [0, 1],
                "last_word_end": secs(last)});
            out.push(msg.to_string());
        }
    }

    /// Send the final for the current segment with the next scripted transcript.
    fn finalize(&mut self, speech_final: bool, script: &Transcripts, out: &mut Vec<String>) {
        let Some(seg) = self.segment.take() else {
            return;
        };
        let text = script.pop(&mut self.cursor).unwrap_or_default();
        let words = (seg.first_voiced, seg.last_voiced);
        out.push(self.results(&text, true, speech_final, Some(words)));
        self.finals.push(text);
        self.final_end = self.frames;
        self.pending_utterance_end = Some(seg.last_voiced);
    }

    /// A `Results` message from the last final's end to now; `words` spreads the transcript's
    /// words evenly over that voiced span (frames).
    fn results(
        &self,
        text: &str,
        is_final: bool,
        speech_final: bool,
        words: Option<(u64, u64)>,
    ) -> String {
        let (from, to) = words.unwrap_or((self.final_end, self.frames));
        let list: Vec<&str> = text.split_whitespace().collect();
        let step = (secs(to) - secs(from)) / list.len().max(1) as f64;
        let words: Vec<Value> = list
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let start = secs(from) + step * i as f64;
                let word = w
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase();
                json!({"word": word, "start": start, "end": start + step,
                    "confidence": 0.99, "punctuated_word": w})
            })
            .collect();
        json!({
            "type": "Results", "channel_index": [0, 1],
            "start": secs(self.final_end), "duration": secs(self.frames - self.final_end),
            "is_final": is_final, "speech_final": speech_final, "from_finalize": false,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": words}]},
            "metadata": {"request_id": self.request_id,
                "model_info": {"name": "general-nova-3", "version": "fake", "arch": "nova-3"},
                "model_uuid": "00000000-0000-0000-0000-000000000003"},
        })
        .to_string()
    }

    /// The `Metadata` message sent before closing.
    pub fn metadata(&self) -> String {
        json!({"type": "Metadata", "transaction_key": "deprecated",
            "request_id": self.request_id, "sha256": "", "created": "1970-01-01T00:00:00.000Z",
            "duration": self.audio_secs(), "channels": 1,
            "models": ["00000000-0000-0000-0000-000000000003"],
            "model_info": {"00000000-0000-0000-0000-000000000003":
                {"name": "general-nova-3", "version": "fake", "arch": "nova-3"}}})
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(audio: &[u8], chunk: usize, script: &Transcripts) -> Vec<Value> {
        let settings = Settings {
            endpointing_ms: Some(300),
            utterance_end_ms: Some(1000),
            interim_results: true,
            vad_events: true,
        };
        let mut r = Recognizer::new(settings, "req".into());
        let mut out = Vec::new();
        for c in audio.chunks(chunk) {
            r.push(c, script, &mut out);
        }
        out.iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect()
    }

    fn speech(text: &str, silence_ms: usize) -> Vec<u8> {
        let mut audio: Vec<u8> = crate::fakes::synth_speech(text, 8000)
            .into_iter()
            .map(mulaw::encode)
            .collect();
        audio.extend(std::iter::repeat_n(mulaw::SILENCE, silence_ms * 8));
        audio
    }

    #[test]
    fn speech_gives_started_interims_final_and_utterance_end_in_audio_time() {
        let script = Transcripts::default();
        script.push("book a flight to paris please");
        script.push("thanks");
        let mut audio = speech("book a flight to paris please", 1500);
        audio.extend(speech("thanks", 1500));
        let msgs = run(&audio, 160, &script);
        let kinds: Vec<&str> = msgs.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(kinds[0], "SpeechStarted");
        assert!(kinds.contains(&"UtteranceEnd"));
        let finals: Vec<&Value> = msgs.iter().filter(|m| m["is_final"] == true).collect();
        assert_eq!(finals.len(), 2);
        let text = &finals[0]["channel"]["alternatives"][0]["transcript"];
        assert_eq!(text, "book a flight to paris please");
        assert_eq!(finals[0]["speech_final"], true);
        let (s0, s1) = (finals[0]["start"].as_f64(), finals[1]["start"].as_f64());
        assert!(s1 > s0, "{s0:?} {s1:?}");
        let interim = msgs.iter().find(|m| m["is_final"] == false);
        let interim = interim.map(|m| m["channel"]["alternatives"][0]["transcript"].clone());
        assert_eq!(interim, Some(Value::from("book")));
        // Chunking does not change anything: audio time, not arrival.
        script.push("book a flight to paris please");
        script.push("thanks");
        assert_eq!(run(&audio, 333, &script), msgs);
    }

    #[test]
    fn silence_says_nothing_and_flush_finalises_with_empty_script() {
        let script = Transcripts::default();
        assert!(run(&[mulaw::SILENCE; 16000], 160, &script).is_empty());
        let mut r = Recognizer::new(Settings::default(), "req".into());
        let mut out = Vec::new();
        r.push(&speech("hello", 0), &script, &mut out);
        r.flush(&script, &mut out);
        let last: Value = serde_json::from_str(out.last().map_or("", |s| s)).unwrap_or_default();
        assert_eq!(last["is_final"], true);
        assert_eq!(last["channel"]["alternatives"][0]["transcript"], "");
    }

    #[test]
    fn the_queue_comes_first_then_each_connection_cycles_on_its_own() {
        let script = Transcripts::default();
        script.push("queued");
        script.cycle(["one", "two"]);
        let (mut a, mut b) = (0, 0);
        assert_eq!(script.pop(&mut a).as_deref(), Some("queued"));
        assert_eq!(script.peek(a).as_deref(), Some("one"));
        let texts: Vec<String> = (0..5).filter_map(|_| script.pop(&mut a)).collect();
        assert_eq!(texts, ["one", "two", "one", "two", "one"]);
        // Another connection starts at the beginning of the cycle, whatever the first did.
        assert_eq!(script.pop(&mut b).as_deref(), Some("one"));
        // Thousands of turns later, still words.
        for _ in 0..10_000 {
            assert!(script.pop(&mut b).is_some_and(|t| !t.is_empty()));
        }
        assert_eq!(Transcripts::default().pop(&mut 0), None);
    }
}
