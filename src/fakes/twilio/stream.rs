//! `<Connect><Stream>` in the fake: open the media stream to the application with `sim` as
//! the callee — Twilio's ids, the `<Parameter>`s as `start.customParameters`, a signed upgrade
//! (`X-Twilio-Signature` over the URL connected to) — and run it until the callee hangs up,
//! the application closes the socket, or a REST update ends or redirects the call. Meanwhile
//! the async AMD verdict goes out when the line reaches it. A voicemail box's recording is cut
//! at the beep.
//!
//! The URL's query string is dropped (Twilio does not support one). With `plain_ws` (the
//! default: local servers have no TLS) a `wss://` URL is connected to as `ws://`, and that
//! `ws://` URL is what gets signed, as Twilio signs the URL it requested.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::amd::AmdPlan;
use super::call::{CallTask, Interrupt};
use super::callee::{Callee, voiced_ms};
use super::new_sid;
use super::observed::{CallbackKind, StreamLeg, Voicemail};
use super::request::Hook;
use super::state::Control;
use super::time::rfc2822;
use super::twiml::StreamVerb;
use crate::sim::{SimCall, SimReport};
use crate::twilio::signature;

/// The callee's "voice" threshold, as the simulator uses it.
const VOICE_DBFS: f32 = -42.0;

/// How a stream ended.
pub enum StreamEnd {
    /// The callee's script finished: they hung up.
    CalleeHungUp,
    /// The application closed the socket, or it never opened: the TwiML goes on.
    Closed,
    /// A REST update.
    Interrupted(Interrupt),
}

impl CallTask {
    /// Run one media stream; the first stream of the call takes the AMD plan.
    pub(super) async fn stream(&mut self, verb: &StreamVerb, amd: Option<AmdPlan>) -> StreamEnd {
        let stream_sid = new_sid("MZ");
        let url = match stream_url(&verb.url, self.shared.config.plain_ws) {
            Ok(url) => url,
            Err(e) => {
                self.progress.stream = Some(leg(&verb.url, &stream_sid, verb, None, Some(e)));
                return StreamEnd::Closed;
            }
        };
        let cfg = &self.shared.config;
        let mut sim = SimCall::new(url.clone());
        sim.account_sid = cfg.account_sid.clone();
        sim.call_sid = self.sid.clone();
        sim.stream_sid = stream_sid.clone();
        sim.custom_parameters = verb.parameters.clone();
        sim.headers = vec![(
            "X-Twilio-Signature".into(),
            signature::compute(&cfg.auth_token, &url, &[]),
        )];
        let sync = amd.filter(|p| p.sync);
        let (offset, skip_beep) = sync.map_or((Default::default(), false), |p| {
            (p.greeting_offset, p.skip_beep)
        });
        sim.steps = match &self.callee {
            Callee::Human(h) => h.steps(),
            Callee::Machine(m) => m.steps(offset, skip_beep),
            Callee::Busy | Callee::NoAnswer | Callee::Fail => Vec::new(),
        };
        self.stream_event(verb, &stream_sid, "stream-started");
        let hang = CancellationToken::new();
        let run = sim.run_until(hang.clone().cancelled_owned());
        tokio::pin!(run);
        let opened = Instant::now();
        let mut due = amd
            .filter(|p| !p.sync)
            .map(|p| (opened + p.after, p.verdict));
        let mut interrupt = None;
        let mut control_open = true;
        let result = loop {
            let at = due.map(|(at, _)| at);
            tokio::select! {
                r = &mut run => break r,
                () = sleep_until(at), if at.is_some() => {
                    if let Some((_, verdict)) = due.take() {
                        self.set_answered_by(verdict);
                        self.amd_callback(verdict);
                    }
                }
                changed = self.control.changed(), if control_open && interrupt.is_none() => {
                    if changed.is_err() {
                        control_open = false;
                        continue;
                    }
                    match self.control.borrow_and_update().clone() {
                        Control::Run => {}
                        Control::Hangup => interrupt = Some(Interrupt::Hangup),
                        Control::Redirect(a) => interrupt = Some(Interrupt::Redirect(a)),
                    }
                    if interrupt.is_some() {
                        hang.cancel();
                    }
                }
            }
        };
        self.stream_event(verb, &stream_sid, "stream-stopped");
        let (report, error) = match result {
            Ok(r) => (Some(std::sync::Arc::new(r)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let (Callee::Machine(m), Some(r)) = (&self.callee, &report) {
            let greeting_streamed = !skip_beep && m.streams_greeting(offset);
            self.progress.voicemail =
                Some(voicemail(r, m.beep_len(), skip_beep, greeting_streamed));
        }
        let end = match (&interrupt, &report) {
            (Some(_), _) => None,
            (None, Some(r)) if r.closed_by_server.is_none() && r.socket_error.is_none() => {
                Some(StreamEnd::CalleeHungUp)
            }
            _ => Some(StreamEnd::Closed),
        };
        self.progress.stream = Some(leg(&url, &stream_sid, verb, report, error));
        match (end, interrupt) {
            (Some(end), _) => end,
            (None, Some(i)) => StreamEnd::Interrupted(i),
            (None, None) => StreamEnd::Closed,
        }
    }

    fn stream_event(&self, verb: &StreamVerb, stream_sid: &str, event: &str) {
        let Some(url) = &verb.status_callback else {
            return;
        };
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params = vec![
            p("AccountSid", &self.shared.config.account_sid),
            p("CallSid", &self.sid),
            p("StreamSid", stream_sid),
            p("StreamName", verb.name.as_deref().unwrap_or(stream_sid)),
            p("StreamEvent", event),
            p("Timestamp", &rfc2822(std::time::SystemTime::now())),
        ];
        let hook = Hook {
            url: url.clone(),
            method: "POST",
        };
        self.hooks.push(CallbackKind::Stream, &hook, params);
    }
}

fn leg(
    url: &str,
    stream_sid: &str,
    verb: &StreamVerb,
    report: Option<std::sync::Arc<SimReport>>,
    error: Option<String>,
) -> StreamLeg {
    StreamLeg {
        url: url.to_owned(),
        stream_sid: stream_sid.to_owned(),
        custom_parameters: verb.parameters.clone(),
        report,
        error,
    }
}

/// The URL to connect to: `ws(s)://` only, query and fragment dropped, `wss` → `ws` when
/// `plain_ws`.
fn stream_url(raw: &str, plain_ws: bool) -> Result<String, String> {
    let mut url =
        reqwest::Url::parse(raw).map_err(|e| format!("31920 bad stream URL {raw}: {e}"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("31920 stream URL must be wss://, not {raw}"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let mut s = url.to_string();
    if plain_ws && let Some(rest) = s.strip_prefix("wss://") {
        s = format!("ws://{rest}");
    }
    Ok(s)
}

/// Split what a voicemail box heard at the end of its beep.
fn voicemail(
    r: &SimReport,
    beep_len: std::time::Duration,
    skip_beep: bool,
    greeting: bool,
) -> Voicemail {
    let heard_ms = r.heard.len() as u64 / 8;
    let beep_end_ms = if skip_beep {
        0
    } else {
        // The beep is the last scripted utterance (after the greeting, if one streamed).
        let expected = 1 + usize::from(greeting);
        match r.speech_starts_ms.get(expected - 1) {
            Some(start) => start + beep_len.as_millis() as u64,
            None => heard_ms, // hung up before the beep: nothing was recorded
        }
    };
    let cut = ((beep_end_ms * 8) as usize).min(r.heard.len());
    let (before, after) = r.heard.split_at(cut);
    let message = bytes::Bytes::copy_from_slice(after);
    Voicemail {
        beep_end_ms,
        voiced_before_beep_ms: voiced_ms(before, VOICE_DBFS),
        message_voiced_ms: voiced_ms(&message, VOICE_DBFS),
        message,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        assert_eq!(
            stream_url("wss://h:8/twilio/media?x=1#f", true).unwrap(),
            "ws://h:8/twilio/media"
        );
        assert_eq!(
            stream_url("wss://h/twilio/media", false).unwrap(),
            "wss://h/twilio/media"
        );
        assert!(stream_url("https://h/twilio/media", true).is_err());
        assert!(stream_url("not a url", true).is_err());
    }

    #[test]
    fn voicemail_cuts_at_the_beep() {
        // greeting at 0 ms, beep at 1000 ms (500 ms long), then 1 s of loud "message".
        let mut heard = vec![crate::audio::mulaw::SILENCE; 8 * 1500];
        heard.extend(super::super::callee::speech("leaving a message now").iter());
        let r = SimReport {
            speech_starts_ms: vec![0, 1000],
            heard,
            ..SimReport::default()
        };
        let v = voicemail(&r, std::time::Duration::from_millis(500), false, true);
        assert_eq!(v.beep_end_ms, 1500);
        assert_eq!(v.voiced_before_beep_ms, 0);
        assert!(v.message_voiced_ms > 500);
        let early = SimReport {
            speech_starts_ms: vec![0],
            heard: vec![0xFF; 800],
            ..SimReport::default()
        };
        let v = voicemail(&early, std::time::Duration::from_millis(500), false, true);
        assert!(v.message.is_empty());
    }
}
