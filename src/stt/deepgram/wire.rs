//! The Deepgram live protocol as the client sees it (shared/reference/providers.md §1): the
//! authenticated handshake and the server's JSON messages turned into [`SttEvent`]s.
//!
//! It must not hold call state, retry, or log: the task in the parent module does that. The
//! API key goes only into the (sensitive) `Authorization` header, never into an error.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self};

use crate::provider::{ProviderError, Secret};
use crate::stt::SttEvent;

pub const KEEPALIVE: &str = r#"{"type":"KeepAlive"}"#;
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// A client socket (ws:// or wss://).
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the socket with `Authorization: Token <key>` within `limit`. A non-101 answer maps
/// through [`ProviderError::from_status`] with the response body (Deepgram's error JSON).
pub async fn connect(url: &str, key: &Secret, limit: Duration) -> Result<Ws, ProviderError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ProviderError::Connect(e.to_string()))?;
    let mut auth = HeaderValue::from_str(&format!("Token {}", key.expose()))
        .map_err(|_| ProviderError::Connect("API key is not a valid header value".into()))?;
    auth.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, auth);
    match timeout(limit, crate::provider::connect_ws(request)).await {
        Err(_) => Err(ProviderError::Timeout(format!(
            "no handshake within {} ms",
            limit.as_millis()
        ))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().as_deref().unwrap_or_default();
            let body = String::from_utf8_lossy(body);
            Err(ProviderError::from_status(
                response.status().as_u16(),
                &body,
            ))
        }
        Ok(Err(e)) => Err(ProviderError::Connect(e.to_string())),
    }
}

/// Server messages (text JSON, discriminated by `type`); unknown types are ignored.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ServerMessage {
    Results(Results),
    SpeechStarted {},
    UtteranceEnd {},
    Metadata {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    channel: Channel,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
}

/// What one server message means for the session.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    /// The event to pass on (`None` for `Metadata` and unknown types).
    pub event: Option<SttEvent>,
    /// For a final `Results`: the end of the audio it covers, seconds from stream start.
    pub final_end: Option<f64>,
}

/// Parse one text message; `Err` for broken JSON or a `Results` without `channel`.
pub fn parse(text: &str) -> Result<Parsed, ProviderError> {
    let msg: ServerMessage =
        serde_json::from_str(text).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let (event, final_end) = match msg {
        ServerMessage::Results(r) => {
            let text = r.channel.alternatives.into_iter().next();
            let event = SttEvent::Transcript {
                text: text.map(|a| a.transcript).unwrap_or_default(),
                is_final: r.is_final,
                speech_final: r.speech_final,
            };
            (Some(event), r.is_final.then_some(r.start + r.duration))
        }
        ServerMessage::SpeechStarted {} => (Some(SttEvent::SpeechStarted), None),
        ServerMessage::UtteranceEnd {} => (Some(SttEvent::UtteranceEnd), None),
        ServerMessage::Metadata {} | ServerMessage::Other => (None, None),
    };
    Ok(Parsed { event, final_end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_messages() {
        let results = r#"{"type":"Results","channel_index":[0,1],"duration":1.02,"start":3.5,
            "is_final":true,"speech_final":true,"from_finalize":false,
            "channel":{"alternatives":[{"transcript":"Book a flight.","confidence":0.98,"words":[]}]},
            "metadata":{"request_id":"uuid"}}"#;
        let p = parse(results).unwrap();
        let text = "Book a flight.".to_string();
        let want = SttEvent::Transcript {
            text,
            is_final: true,
            speech_final: true,
        };
        assert_eq!(p.event, Some(want));
        assert!((p.final_end.unwrap() - 4.52).abs() < 1e-9);
        let interim = r#"{"type":"Results","is_final":false,"channel":{"alternatives":[]}}"#;
        let p = parse(interim).unwrap();
        assert_eq!(p.final_end, None);
        assert!(matches!(p.event, Some(SttEvent::Transcript { text, .. }) if text.is_empty()));
        let started = r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":9.54}"#;
        assert_eq!(parse(started).unwrap().event, Some(SttEvent::SpeechStarted));
        let end = r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.395}"#;
        assert_eq!(parse(end).unwrap().event, Some(SttEvent::UtteranceEnd));
        let meta = r#"{"type":"Metadata","request_id":"uuid","duration":12.3,"channels":1}"#;
        assert_eq!(parse(meta).unwrap().event, None);
        assert_eq!(parse(r#"{"type":"Warning","x":1}"#).unwrap().event, None);
    }

    #[test]
    fn broken_messages_are_malformed() {
        for bad in [
            r#"{"type":"Results","channel":{"#,
            "not json",
            r#"{"no_type":1}"#,
            r#"{"type":"Results"}"#,
        ] {
            assert_eq!(parse(bad).map_err(|e| e.kind()), Err("malformed"), "{bad}");
        }
    }
}
