//! The Twilio Media Streams codec: Twilio's JSON text frames ⇄ the call's neutral
//! [`CallInput`] / [`CallOutput`].
//!
//! The codec is the only code that knows Twilio's vocabulary (`streamSid`, `media`, `mark`,
//! `clear`, `inbound_track`, …). It keeps the one piece of state a stream's messages are
//! checked against — the `streamSid` from `start` — so that `media`, `dtmf`, `mark` and `stop`
//! arriving before `start` or for another stream are refused alike (counted by the session,
//! never acted on: a `stop` for another stream does not end the call). It does no I/O and
//! never logs; it must not know about engines, playout or quality.

use super::messages::{
    ErrorReason, InboundEvent, OutboundMessage, ProtocolError, decode_payload, parse_inbound,
    write_outbound,
};
use crate::call::frames::{AudioPacket, CallInput, CallOutput, DtmfKey, StreamStart};

/// A frame the codec refused: why (a fixed metrics label) and a short description for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: ErrorReason,
    pub detail: String,
}

impl Refused {
    fn new(reason: ErrorReason, detail: &str) -> Self {
        Self {
            reason,
            detail: detail.to_owned(),
        }
    }
}

impl From<ProtocolError> for Refused {
    fn from(e: ProtocolError) -> Self {
        Self {
            reason: e.reason(),
            detail: e.to_string(),
        }
    }
}

/// One Media Streams WebSocket's codec.
#[derive(Debug)]
pub struct MediaStreamsCodec {
    stream_sid: Option<String>,
    max_payload: usize,
}

impl MediaStreamsCodec {
    /// `max_payload`: the largest decoded media payload accepted, in bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            stream_sid: None,
            max_payload,
        }
    }

    /// The stream's id, once `start` has arrived.
    pub fn stream_sid(&self) -> Option<&str> {
        self.stream_sid.as_deref()
    }

    /// Decode one text frame. Media payloads are base64-decoded into `payload` (reused across
    /// frames, so no allocation per frame).
    pub fn decode<'a>(
        &mut self,
        text: &'a str,
        payload: &mut Vec<u8>,
    ) -> Result<CallInput<'a>, Refused> {
        let event = parse_inbound(text)?;
        if let InboundEvent::Connected(_) = event {
            return Ok(CallInput::Connected);
        }
        if let InboundEvent::Start(start) = event {
            if self.stream_sid.is_some() {
                return Err(Refused::new(
                    ErrorReason::DuplicateStart,
                    "second start event ignored",
                ));
            }
            self.stream_sid = Some(start.stream_sid.0.clone());
            let fmt = &start.media_format;
            return Ok(CallInput::Start(StreamStart {
                mulaw_8k: fmt.encoding == "audio/x-mulaw" && fmt.sample_rate == 8000,
                format: format!("{} {} Hz", fmt.encoding, fmt.sample_rate),
                call_sid: start.call_sid.0,
                stream_sid: start.stream_sid.0,
                parameters: start.custom_parameters,
            }));
        }
        self.check_stream(&event)?;
        Ok(match event {
            InboundEvent::Media(media) => {
                decode_payload(media.payload, payload)
                    .map_err(|reason| Refused::new(reason, "unusable media payload"))?;
                if payload.len() > self.max_payload {
                    return Err(Refused::new(
                        ErrorReason::OversizedPayload,
                        "media payload over cap",
                    ));
                }
                CallInput::Audio(AudioPacket {
                    chunk: media.chunk,
                    timestamp_ms: media.timestamp,
                    payload_b64: media.payload,
                })
            }
            InboundEvent::Dtmf(dtmf) => {
                // One key per event: 0-9 * # A-D. Anything else is not a keypress.
                let mut chars = dtmf.digit.chars();
                match (chars.next().and_then(DtmfKey::from_char), chars.next()) {
                    (Some(key), None) => CallInput::Dtmf(key),
                    _ => {
                        return Err(Refused::new(
                            ErrorReason::InvalidMessage,
                            "dtmf digit is not one key",
                        ));
                    }
                }
            }
            InboundEvent::Mark(mark) => CallInput::MarkPlayed(mark.name),
            InboundEvent::Stop(_) => CallInput::Stop,
            InboundEvent::Connected(_) | InboundEvent::Start(_) => CallInput::Connected,
        })
    }

    /// Every message after `start` must carry its `streamSid`.
    fn check_stream(&self, event: &InboundEvent<'_>) -> Result<(), Refused> {
        let Some(sid) = self.stream_sid.as_deref() else {
            return Err(Refused::new(
                ErrorReason::MediaBeforeStart,
                match event {
                    InboundEvent::Media(_) => "media before start",
                    _ => "dtmf, mark or stop before start",
                },
            ));
        };
        if event.stream_sid() != Some(sid) {
            return Err(Refused::new(
                ErrorReason::WrongStreamSid,
                "message for another stream",
            ));
        }
        Ok(())
    }

    /// Write `out` as one Twilio text frame into `buf` (cleared first). Nothing is written
    /// before `start` (there is no stream to address).
    pub fn encode(&self, out: &CallOutput, buf: &mut String) -> bool {
        let Some(sid) = self.stream_sid.as_deref() else {
            buf.clear();
            return false;
        };
        let msg = match out {
            CallOutput::Audio(payload) => OutboundMessage::Media {
                payload: payload.clone(),
            },
            CallOutput::Mark(name) => OutboundMessage::Mark { name: name.clone() },
            CallOutput::Clear => OutboundMessage::Clear,
        };
        write_outbound(&msg, sid, buf);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::messages as msg;

    fn started() -> MediaStreamsCodec {
        let mut c = MediaStreamsCodec::new(8000);
        let params = [("agent".to_owned(), "sales".to_owned())];
        let start = msg::start_json(1, "AC1", "MZ1", "CA1", &params);
        let mut buf = Vec::new();
        match c.decode(&start, &mut buf) {
            Ok(CallInput::Start(s)) => {
                assert_eq!(s.call_sid, "CA1");
                assert_eq!(s.parameters.get("agent").map(String::as_str), Some("sales"));
                assert!(s.mulaw_8k);
            }
            other => panic!("{other:?}"),
        }
        c
    }

    #[test]
    fn every_stream_message_is_checked_against_the_stream() {
        let mut buf = Vec::new();
        let mut fresh = MediaStreamsCodec::new(8000);
        for text in [
            msg::media_json(2, "MZ1", 1, 0, &[0xFF; 160]),
            msg::dtmf_json(2, "MZ1", "5"),
            msg::mark_json(2, "MZ1", "resp-1"),
            msg::stop_json(2, "AC1", "MZ1", "CA1"),
        ] {
            let e = fresh.decode(&text, &mut buf).unwrap_err();
            assert_eq!(e.reason, ErrorReason::MediaBeforeStart, "{text}");
        }
        let mut c = started();
        for text in [
            msg::media_json(2, "MZ2", 1, 0, &[0xFF; 160]),
            msg::dtmf_json(2, "MZ2", "5"),
            msg::mark_json(2, "MZ2", "resp-1"),
            msg::stop_json(2, "AC1", "MZ2", "CA1"),
        ] {
            let e = c.decode(&text, &mut buf).unwrap_err();
            assert_eq!(e.reason, ErrorReason::WrongStreamSid, "{text}");
        }
        assert_eq!(
            c.decode(&msg::stop_json(3, "AC1", "MZ1", "CA1"), &mut buf),
            Ok(CallInput::Stop)
        );
    }

    #[test]
    fn media_dtmf_and_marks_decode() {
        let mut c = started();
        let mut buf = Vec::new();
        let media = msg::media_json(2, "MZ1", 7, 120, &[0x7F; 160]);
        match c.decode(&media, &mut buf) {
            Ok(CallInput::Audio(p)) => {
                assert_eq!((p.chunk, p.timestamp_ms), (7, 120));
                assert_eq!(buf, vec![0x7F; 160]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.decode(&msg::dtmf_json(3, "MZ1", "#"), &mut buf),
            Ok(CallInput::Dtmf(DtmfKey::Pound))
        );
        let two_keys = msg::dtmf_json(3, "MZ1", "12");
        let bad = c.decode(&two_keys, &mut buf);
        assert_eq!(bad.unwrap_err().reason, ErrorReason::InvalidMessage);
        assert_eq!(
            c.decode(&msg::mark_json(4, "MZ1", "resp-3"), &mut buf),
            Ok(CallInput::MarkPlayed("resp-3".into()))
        );
        let big = msg::media_json(5, "MZ1", 8, 140, &[0x7F; 9000]);
        let e = c.decode(&big, &mut buf).unwrap_err();
        assert_eq!(e.reason, ErrorReason::OversizedPayload);
        let dup = msg::start_json(6, "AC1", "MZ1", "CA1", &[]);
        assert_eq!(
            c.decode(&dup, &mut buf).unwrap_err().reason,
            ErrorReason::DuplicateStart
        );
    }

    #[test]
    fn outputs_encode_only_after_start() {
        let mut buf = String::new();
        let fresh = MediaStreamsCodec::new(8000);
        assert!(!fresh.encode(&CallOutput::Clear, &mut buf));
        let c = started();
        assert!(c.encode(&CallOutput::Clear, &mut buf));
        assert_eq!(buf, r#"{"event":"clear","streamSid":"MZ1"}"#);
        assert!(c.encode(&CallOutput::Mark("m".into()), &mut buf));
        assert!(buf.contains(r#""mark":{"name":"m"}"#));
    }
}
