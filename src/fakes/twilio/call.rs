//! One call's life in the fake, as Twilio runs it: queued until its calls-per-second slot,
//! `initiated`, `ringing`, then the callee's answer (or busy / no-answer at `Timeout` /
//! failed); on answer, synchronous AMD if asked, the TwiML (fetched from `Url`, signed, or
//! inline) and its verbs — `<Connect><Stream>` opens the media stream with `sim` as the callee;
//! finally the final status with `CallDuration`. Status callbacks go out for the requested
//! events, the async AMD verdict when the simulated line reaches it, and a REST update
//! (hang-up, redirect) reaches the call through its control channel wherever it is.
//!
//! Status and AMD callbacks are built in `events.rs`. Never panics on what the application
//! answers; every failure becomes a call outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;
use super::amd::{AmdPlan, plan};
use super::callee::Callee;
use super::hooks::{CallbackQueue, request};
use super::observed::{CallTimes, CallbackKind, EndedBy, EndedCall, StreamLeg, Voicemail};
use super::request::{Answer, CallRequest, Hook};
use super::state::{Control, Status};
use super::stream::StreamEnd;
use super::twiml::{self, Verb};

/// Longest a `<Say>`/`<Play>` is taken to last (the fake does not synthesise them).
const SAY_PER_WORD: Duration = Duration::from_millis(300);
const MAX_REDIRECTS: usize = 10;

/// Why a wait ended early.
pub enum Interrupt {
    Hangup,
    Redirect(Answer),
}

/// What the TwiML did.
enum Next {
    Done(EndedBy),
    Redirect(Answer),
}

/// What happened so far, for the final record.
#[derive(Default)]
pub(super) struct Progress {
    pub dialed: Option<Instant>,
    pub answered: Option<Instant>,
    pub answered_by: Option<&'static str>,
    pub verbs: Vec<String>,
    pub stream: Option<StreamLeg>,
    pub voicemail: Option<Voicemail>,
    pub duration_secs: u64,
}

/// A call being run.
pub struct CallTask {
    pub shared: Arc<Shared>,
    pub sid: String,
    pub req: CallRequest,
    pub callee: Callee,
    pub attempt: usize,
    pub created: Instant,
    pub control: watch::Receiver<Control>,
    pub hooks: CallbackQueue,
    pub(super) seq: u32,
    pub progress: Progress,
}

impl CallTask {
    pub fn new(
        shared: Arc<Shared>,
        sid: String,
        req: CallRequest,
        callee: Callee,
        attempt: usize,
        control: watch::Receiver<Control>,
    ) -> Self {
        let hooks = CallbackQueue::start(Arc::clone(&shared), &sid);
        Self {
            shared,
            sid,
            req,
            callee,
            attempt,
            created: Instant::now(),
            control,
            hooks,
            seq: 0,
            progress: Progress::default(),
        }
    }

    pub async fn run(mut self) {
        let (status, ended_by) = self.phases().await;
        self.finish(status, ended_by).await;
    }

    async fn phases(&mut self) -> (Status, EndedBy) {
        // The CPS queue: one dial at a time, at least 1/cps after the previous one (Twilio
        // queues excess calls, it never refuses them).
        let cps = self.shared.config.cps;
        let interval = (cps.is_finite() && cps > 0.0).then(|| Duration::from_secs_f64(1.0 / cps));
        let shared = Arc::clone(&self.shared);
        let queue = async {
            let last = shared.dial_gate.lock().await;
            if let (Some(at), Some(iv)) = (*last, interval) {
                tokio::time::sleep_until((at + iv).into()).await;
            }
            last
        };
        let Ok(mut last) = self.wait(queue).await else {
            return (Status::Canceled, EndedBy::Api);
        };
        let dialed = self.status(Status::Initiated);
        *last = Some(dialed);
        drop(last);
        self.progress.dialed = Some(dialed);
        if matches!(self.callee, Callee::Fail) {
            return match self
                .wait(tokio::time::sleep(Duration::from_millis(100)))
                .await
            {
                Ok(()) => (Status::Failed, EndedBy::Callee),
                Err(_) => (Status::Canceled, EndedBy::Api),
            };
        }
        self.status(Status::Ringing);
        let timeout = self.req.timeout;
        let (ring, answers) = match &self.callee {
            Callee::Busy => (Duration::from_millis(300), false),
            Callee::NoAnswer | Callee::Fail => (timeout, false),
            Callee::Human(h) => (h.ring, true),
            Callee::Machine(m) => (m.ring, true),
        };
        let answers = answers && ring < timeout;
        if self
            .wait(tokio::time::sleep(ring.min(timeout)))
            .await
            .is_err()
        {
            return (Status::Canceled, EndedBy::Api);
        }
        if !answers {
            return match self.callee {
                Callee::Busy => (Status::Busy, EndedBy::Callee),
                _ => (Status::NoAnswer, EndedBy::Callee),
            };
        }
        self.progress.answered = Some(Instant::now());
        self.status(Status::InProgress);
        let limit = self.req.time_limit;
        match tokio::time::timeout(limit, self.conversation()).await {
            Ok(ended_by) => (Status::Completed, ended_by),
            Err(_) => (Status::Completed, EndedBy::TimeLimit),
        }
    }

    /// From answer to hang-up: sync AMD, then the TwiML, redirects included.
    async fn conversation(&mut self) -> EndedBy {
        let mut stream_amd = plan(self.req.amd.as_ref(), &self.callee);
        if let Some(p) = stream_amd.filter(|p| p.sync) {
            if self.wait(tokio::time::sleep(p.after)).await.is_err() {
                return EndedBy::Api;
            }
            self.set_answered_by(p.verdict);
        }
        let mut answer = self
            .shared
            .table
            .with(&self.sid, |e| e.answer.clone())
            .unwrap_or(Answer::Twiml(String::new()));
        for _ in 0..MAX_REDIRECTS {
            let Some(doc) = self.fetch_twiml(&answer).await else {
                return EndedBy::AppError;
            };
            let verbs = match twiml::parse(&doc) {
                Ok(v) => v,
                Err(e) => {
                    self.progress.verbs.push(format!("Error:12100 {e}"));
                    return EndedBy::AppError;
                }
            };
            match self.run_verbs(verbs, &answer, &mut stream_amd).await {
                Next::Done(by) => return by,
                Next::Redirect(next) => answer = next,
            }
        }
        self.progress.verbs.push("Error:too many redirects".into());
        EndedBy::AppError
    }

    async fn run_verbs(
        &mut self,
        verbs: Vec<Verb>,
        current: &Answer,
        stream_amd: &mut Option<AmdPlan>,
    ) -> Next {
        for verb in verbs {
            self.progress.verbs.push(verb.describe());
            let pause = match &verb {
                Verb::Stream(s) => match self.stream(s, stream_amd.take()).await {
                    StreamEnd::CalleeHungUp => return Next::Done(EndedBy::Callee),
                    StreamEnd::Interrupted(Interrupt::Hangup) => return Next::Done(EndedBy::Api),
                    StreamEnd::Interrupted(Interrupt::Redirect(a)) => return Next::Redirect(a),
                    StreamEnd::Closed => continue,
                },
                Verb::Say(text) => SAY_PER_WORD * text.split_whitespace().count().max(1) as u32,
                Verb::Play(_) => Duration::from_secs(1),
                Verb::Pause(secs) => Duration::from_secs(*secs),
                Verb::Dial(_) => Duration::from_millis(200),
                Verb::Redirect(url) => {
                    return match resolve(current, url) {
                        Some(hook) => Next::Redirect(Answer::Url(hook)),
                        None => {
                            self.progress
                                .verbs
                                .push(format!("Error:bad Redirect URL {url}"));
                            Next::Done(EndedBy::AppError)
                        }
                    };
                }
                Verb::Hangup => return Next::Done(EndedBy::Twiml),
                Verb::Other(_) => continue,
            };
            match self.wait(tokio::time::sleep(pause)).await {
                Ok(()) => {}
                Err(Interrupt::Hangup) => return Next::Done(EndedBy::Api),
                Err(Interrupt::Redirect(a)) => return Next::Redirect(a),
            }
            if matches!(verb, Verb::Dial(_)) {
                // The transferred leg is not simulated: the call ends once dialled.
                return Next::Done(EndedBy::Twiml);
            }
        }
        Next::Done(EndedBy::Twiml)
    }

    /// The TwiML document (`Url` fetched with the call's parameters, signed), or `None` after
    /// recording why not.
    async fn fetch_twiml(&mut self, answer: &Answer) -> Option<String> {
        let hook = match answer {
            Answer::Twiml(t) => return Some(t.clone()),
            Answer::Url(hook) => hook,
        };
        let mut params = self.base_params();
        params.push(("CallStatus".into(), "in-progress".into()));
        if let Some(by) = self.progress.answered_by {
            params.push(("AnsweredBy".into(), by.into()));
        }
        match request(&self.shared, &self.sid, CallbackKind::Voice, hook, params).await {
            Ok((200, body)) => Some(body),
            Ok((status, _)) => {
                self.progress
                    .verbs
                    .push(format!("Error:11200 HTTP {status}"));
                None
            }
            Err(e) => {
                self.progress.verbs.push(format!("Error:11200 {e}"));
                None
            }
        }
    }

    /// Wait for `f`, unless a REST update interrupts.
    pub async fn wait<T>(
        &mut self,
        f: impl std::future::Future<Output = T>,
    ) -> Result<T, Interrupt> {
        wait_or_control(&mut self.control, f).await
    }

    async fn finish(mut self, status: Status, ended_by: EndedBy) {
        let ended = Instant::now();
        let secs = self
            .progress
            .answered
            .map_or(0, |a| ended.saturating_duration_since(a).as_secs());
        self.progress.duration_secs = secs;
        self.shared
            .table
            .with(&self.sid, |e| e.duration_secs = Some(secs));
        self.status(status);
        let record = EndedCall {
            call_sid: self.sid.clone(),
            to: self.req.to.clone(),
            from: self.req.from.clone(),
            attempt: self.attempt,
            callee: self.callee.label(),
            status: status.as_str(),
            answered_by: self.progress.answered_by,
            times: CallTimes {
                created: self.created,
                dialed: self.progress.dialed,
                answered: self.progress.answered,
                ended,
            },
            stream: self.progress.stream.take(),
            voicemail: self.progress.voicemail.take(),
            verbs: std::mem::take(&mut self.progress.verbs),
            ended_by,
        };
        self.hooks.drain().await;
        self.shared.observed.calls.push(record);
        self.shared.ended.notify_waiters();
    }
}

/// Wait for `f`, unless the call's control channel says hang up or redirect.
pub async fn wait_or_control<T>(
    control: &mut watch::Receiver<Control>,
    f: impl std::future::Future<Output = T>,
) -> Result<T, Interrupt> {
    tokio::pin!(f);
    loop {
        tokio::select! {
            v = &mut f => return Ok(v),
            changed = control.changed() => {
                if changed.is_err() {
                    return Ok(f.await);
                }
                match control.borrow_and_update().clone() {
                    Control::Run => {}
                    Control::Hangup => return Err(Interrupt::Hangup),
                    Control::Redirect(a) => return Err(Interrupt::Redirect(a)),
                }
            }
        }
    }
}

/// A `<Redirect>` target, resolved against the current TwiML URL.
fn resolve(current: &Answer, url: &str) -> Option<Hook> {
    let base = match current {
        Answer::Url(h) => reqwest::Url::parse(&h.url).ok(),
        Answer::Twiml(_) => None,
    };
    let joined = match base {
        Some(b) => b.join(url).ok()?,
        None => reqwest::Url::parse(url).ok()?,
    };
    matches!(joined.scheme(), "http" | "https").then(|| Hook {
        url: joined.to_string(),
        method: "POST",
    })
}
