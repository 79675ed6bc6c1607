//! Reading a `POST …/Calls.json` form the way Twilio does: required and mutually exclusive
//! parameters, E.164 numbers, absolute http(s) URLs, GET/POST methods, the event list and the
//! AMD options — each refusal with Twilio's error code and a message in its style.
//!
//! Pure: form in, [`CallRequest`] or [`Refusal`] out. The fake is stricter than Twilio in one
//! place on purpose: AMD asked with `AsyncAmd=true` but no `AsyncAmdStatusCallback` is refused
//! (21262; Twilio only warns and the result is lost), so the dialer cannot ship that mistake.

use std::time::Duration;

/// A refused request: HTTP status and Twilio error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// Twilio's error JSON.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}

/// Where to send a request, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub url: String,
    /// `POST` (form body) or `GET` (query string).
    pub method: &'static str,
}

/// The call's TwiML source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Url(Hook),
    Twiml(String),
}

/// `MachineDetection` and its tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amd {
    /// `DetectMessageEnd` (else `Enable`).
    pub message_end: bool,
    /// `AsyncAmd=true`: where the verdict goes.
    pub async_callback: Option<Hook>,
    pub timeout: Duration,
    pub speech_threshold: Duration,
    pub speech_end_threshold: Duration,
}

/// Which status events to report (`StatusCallbackEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events {
    pub initiated: bool,
    pub ringing: bool,
    pub answered: bool,
    pub completed: bool,
}

/// A valid create-call request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub to: String,
    pub from: String,
    pub answer: Answer,
    pub status_callback: Option<Hook>,
    pub events: Events,
    pub timeout: Duration,
    pub time_limit: Duration,
    pub amd: Option<Amd>,
}

/// Twilio's limit on inline TwiML.
const MAX_TWIML: usize = 4000;

/// Validate a create-call form (`owned`: the account's numbers; empty accepts any `From`).
pub fn parse_create(form: &[(String, String)], owned: &[String]) -> Result<CallRequest, Refusal> {
    let get = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let bad = |code: i64, msg: String| Refusal::new(400, code, msg);
    let to = get("To").ok_or_else(|| bad(21201, "No 'To' number is specified".into()))?;
    if !is_e164(to) {
        return Err(bad(21211, format!("Invalid 'To' Phone Number: {to}")));
    }
    let from = get("From").ok_or_else(|| bad(21213, "No 'From' number is specified".into()))?;
    if !is_e164(from) {
        return Err(bad(21212, format!("Invalid 'From' Phone Number: {from}")));
    }
    if !owned.is_empty() && !owned.iter().any(|n| n == from) {
        return Err(bad(
            21210,
            format!(
                "The source phone number provided, {from}, is not yet verified for your account."
            ),
        ));
    }
    let method = |name: &str| -> Result<&'static str, Refusal> {
        match get(name).map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => Ok("POST"),
            Some("GET") => Ok("GET"),
            Some(m) => Err(bad(21200, format!("{name} must be GET or POST, not {m}"))),
        }
    };
    let hook = |name: &str, method_name: &str, code: i64| -> Result<Option<Hook>, Refusal> {
        match get(name) {
            None => Ok(None),
            Some(url) if is_http_url(url) => Ok(Some(Hook {
                url: url.to_owned(),
                method: method(method_name)?,
            })),
            Some(url) => Err(bad(code, format!("{name} is not a valid URL: {url}"))),
        }
    };
    let answer = match (hook("Url", "Method", 21205)?, get("Twiml")) {
        (Some(url), None) => Answer::Url(url),
        (None, Some(twiml)) if twiml.chars().count() <= MAX_TWIML => Answer::Twiml(twiml.into()),
        (None, Some(_)) => {
            return Err(bad(
                21200,
                format!("Twiml is longer than {MAX_TWIML} characters"),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(bad(21200, "Specify either Url or Twiml, not both".into()));
        }
        (None, None) => {
            return Err(bad(
                21200,
                "A 'Url', 'ApplicationSid' or 'Twiml' parameter is required".into(),
            ));
        }
    };
    let status_callback = hook("StatusCallback", "StatusCallbackMethod", 21502)?;
    let mut events = Events::default();
    for (_, v) in form.iter().filter(|(n, _)| n == "StatusCallbackEvent") {
        for e in v.split([' ', ',']).filter(|e| !e.is_empty()) {
            match e {
                "initiated" => events.initiated = true,
                "ringing" => events.ringing = true,
                "answered" => events.answered = true,
                "completed" => events.completed = true,
                other => return Err(bad(21200, format!("Invalid StatusCallbackEvent: {other}"))),
            }
        }
    }
    if events == Events::default() {
        events.completed = true; // Twilio's default
    }
    let secs = |name: &str, default: u64, max: u64, code: i64| -> Result<Duration, Refusal> {
        match get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Duration::from_secs(n.min(max))),
                _ => Err(bad(
                    code,
                    format!("Invalid {name}: {v} (a positive whole number)"),
                )),
            },
        }
    };
    let timeout = secs("Timeout", 60, 600, 21208)?;
    let time_limit = secs("TimeLimit", 14_400, 86_400, 21200)?;
    let amd = match get("MachineDetection") {
        None => None,
        Some(mode @ ("Enable" | "DetectMessageEnd")) => {
            let async_amd = match get("AsyncAmd") {
                None | Some("false") => false,
                Some("true") => true,
                Some(v) => {
                    return Err(bad(
                        21234,
                        format!("AsyncAmd must be true or false, not {v}"),
                    ));
                }
            };
            let async_callback = hook(
                "AsyncAmdStatusCallback",
                "AsyncAmdStatusCallbackMethod",
                21502,
            )?;
            if async_amd && async_callback.is_none() {
                return Err(bad(
                    21262,
                    "AsyncAmd is true but no AsyncAmdStatusCallback was provided".into(),
                ));
            }
            let ms = |name: &str, default: u64, lo: u64, hi: u64| -> Result<Duration, Refusal> {
                match get(name) {
                    None => Ok(Duration::from_millis(default)),
                    Some(v) => match v.trim().parse::<u64>() {
                        Ok(n) if (lo..=hi).contains(&n) => Ok(Duration::from_millis(n)),
                        _ => Err(bad(21234, format!("Invalid {name}: {v}"))),
                    },
                }
            };
            Some(Amd {
                message_end: mode == "DetectMessageEnd",
                async_callback: async_callback.filter(|_| async_amd),
                timeout: secs("MachineDetectionTimeout", 30, 60, 21234)?,
                speech_threshold: ms("MachineDetectionSpeechThreshold", 2400, 1000, 6000)?,
                speech_end_threshold: ms("MachineDetectionSpeechEndThreshold", 1200, 500, 5000)?,
            })
        }
        Some(other) => {
            return Err(bad(
                21234,
                format!("Invalid MachineDetection value: {other}"),
            ));
        }
    };
    Ok(CallRequest {
        to: to.into(),
        from: from.into(),
        answer,
        status_callback,
        events,
        timeout,
        time_limit,
        amd,
    })
}

/// `+` then 2 to 15 digits, the first not 0.
pub fn is_e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// An absolute http(s) URL with a host.
pub fn is_http_url(u: &str) -> bool {
    reqwest::Url::parse(u)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(pairs: &[(&str, &str)]) -> i64 {
        parse_create(&form(pairs), &[]).unwrap_err().code
    }

    const OK: [(&str, &str); 3] = [
        ("To", "+15550001111"),
        ("From", "+15550009999"),
        ("Url", "http://127.0.0.1:1/twilio/voice"),
    ];

    #[test]
    fn accepts_a_full_request() {
        let mut f = OK.to_vec();
        f.extend([
            ("StatusCallback", "http://127.0.0.1:1/twilio/status"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing answered"),
            ("Timeout", "900"),
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", "http://127.0.0.1:1/twilio/amd"),
        ]);
        let r = parse_create(&form(&f), &[]).unwrap();
        assert_eq!(r.timeout, Duration::from_secs(600), "clamped");
        assert!(r.events.initiated && r.events.ringing && r.events.answered);
        assert!(!r.events.completed);
        let amd = r.amd.unwrap();
        assert!(amd.message_end);
        assert_eq!(amd.async_callback.unwrap().method, "POST");
        let plain = parse_create(&form(&OK), &[]).unwrap();
        assert!(plain.events.completed && plain.amd.is_none());
        assert_eq!(plain.timeout, Duration::from_secs(60));
    }

    #[test]
    fn refuses_like_twilio() {
        assert_eq!(code(&OK[1..]), 21201);
        assert_eq!(code(&[("To", "5550001111"), OK[1], OK[2]]), 21211);
        assert_eq!(code(&[("To", "+0123"), OK[1], OK[2]]), 21211);
        assert_eq!(code(&[OK[0], OK[2]]), 21213);
        assert_eq!(code(&[OK[0], ("From", "+1-555"), OK[2]]), 21212);
        assert_eq!(code(&OK[..2]), 21200);
        assert_eq!(
            code(&[OK[0], OK[1], OK[2], ("Twiml", "<Response/>")]),
            21200
        );
        assert_eq!(code(&[OK[0], OK[1], ("Url", "/relative")]), 21205);
        assert_eq!(code(&[OK[0], OK[1], ("Url", "ftp://h/x")]), 21205);
        let mut f = OK.to_vec();
        f.push(("Method", "PUT"));
        assert_eq!(code(&f), 21200);
        for (k, v, c) in [
            ("Timeout", "0", 21208),
            ("Timeout", "ten", 21208),
            ("StatusCallback", "nope", 21502),
            ("StatusCallbackEvent", "exploded", 21200),
            ("MachineDetection", "Maybe", 21234),
        ] {
            let mut f = OK.to_vec();
            f.push((k, v));
            assert_eq!(code(&f), c, "{k}={v}");
        }
        let mut f = OK.to_vec();
        f.extend([("MachineDetection", "Enable"), ("AsyncAmd", "true")]);
        assert_eq!(code(&f), 21262);
        let owned = vec!["+15550000000".to_string()];
        assert_eq!(parse_create(&form(&OK), &owned).unwrap_err().code, 21210);
        let body = Refusal::new(400, 21211, "x").body();
        assert_eq!(
            body["more_info"],
            "https://www.twilio.com/docs/errors/21211"
        );
        assert_eq!(body["status"], 400);
    }
}
