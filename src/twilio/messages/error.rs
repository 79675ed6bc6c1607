//! Protocol error vocabulary: [`ErrorReason`] (a closed set used as a metrics
//! label and as a "logged once per call" bit) and [`ProtocolError`] (what the
//! parsers return).
//!
//! This file must NOT grow free-form labels: every `ErrorReason` becomes a
//! Prometheus label value, so the set stays small and fixed. Error messages must
//! never contain a base64 payload; anything echoed from the wire goes through
//! [`truncate_for_log`] first.

use std::fmt;

/// Longest piece of wire input (event name, serde message) echoed into an error.
pub(crate) const MAX_ECHO_CHARS: usize = 80;

/// Why a message (or frame, or connection) broke the Media Streams protocol.
///
/// Used as the `reason` label of protocol-error metrics and, through
/// [`ErrorReason::index`], as a bit in a per-call "already logged" mask
/// (Twilio itself reports each protocol error once per stream; we do the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    /// Text frame that is not JSON, not a JSON object, or has no string `event`.
    InvalidJson,
    /// Known event, but a required field is missing or malformed.
    InvalidMessage,
    /// Binary WebSocket frame; the protocol is text frames only (Twilio: 31950).
    BinaryFrame,
    /// `event` value we do not know.
    UnknownEvent,
    /// `media` (or `dtmf`/`mark`) arrived before `start`.
    MediaBeforeStart,
    /// `streamSid` differs from the one announced in `start`.
    WrongStreamSid,
    /// A second `start` on the same WebSocket.
    DuplicateStart,
    /// `media.payload` is not valid padded standard base64.
    InvalidBase64,
    /// `media.payload` is empty.
    EmptyPayload,
    /// Decoded payload larger than the server accepts.
    OversizedPayload,
    /// WebSocket message larger than the server accepts.
    MessageTooLarge,
    /// Socket closed (or failed) without a `stop` event.
    AbruptDisconnect,
}

impl ErrorReason {
    /// Every reason, in [`ErrorReason::index`] order.
    pub const ALL: [ErrorReason; 12] = [
        ErrorReason::InvalidJson,
        ErrorReason::InvalidMessage,
        ErrorReason::BinaryFrame,
        ErrorReason::UnknownEvent,
        ErrorReason::MediaBeforeStart,
        ErrorReason::WrongStreamSid,
        ErrorReason::DuplicateStart,
        ErrorReason::InvalidBase64,
        ErrorReason::EmptyPayload,
        ErrorReason::OversizedPayload,
        ErrorReason::MessageTooLarge,
        ErrorReason::AbruptDisconnect,
    ];

    /// Stable snake_case name, used as the metrics label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorReason::InvalidJson => "invalid_json",
            ErrorReason::InvalidMessage => "invalid_message",
            ErrorReason::BinaryFrame => "binary_frame",
            ErrorReason::UnknownEvent => "unknown_event",
            ErrorReason::MediaBeforeStart => "media_before_start",
            ErrorReason::WrongStreamSid => "wrong_stream_sid",
            ErrorReason::DuplicateStart => "duplicate_start",
            ErrorReason::InvalidBase64 => "invalid_base64",
            ErrorReason::EmptyPayload => "empty_payload",
            ErrorReason::OversizedPayload => "oversized_payload",
            ErrorReason::MessageTooLarge => "message_too_large",
            ErrorReason::AbruptDisconnect => "abrupt_disconnect",
        }
    }

    /// Position in [`ErrorReason::ALL`], `0..12`; fits a `u16` bitmask.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Twilio error code Twilio raises for the same fault when *it* is the
    /// receiver (reference, "Messages the server may send"; twilio.com/docs/api/errors):
    /// 31950 "Malformed Message" = binary frame; 31951 "Invalid Message" = not
    /// JSON, unknown event, missing field, wrong Stream SID. Faults Twilio has no
    /// code for (ordering, sizes, disconnects) return `None`.
    pub fn twilio_error_code(self) -> Option<u16> {
        match self {
            ErrorReason::BinaryFrame => Some(31950),
            ErrorReason::InvalidJson
            | ErrorReason::InvalidMessage
            | ErrorReason::UnknownEvent
            | ErrorReason::WrongStreamSid
            | ErrorReason::InvalidBase64 => Some(31951),
            ErrorReason::MediaBeforeStart
            | ErrorReason::DuplicateStart
            | ErrorReason::EmptyPayload
            | ErrorReason::OversizedPayload
            | ErrorReason::MessageTooLarge
            | ErrorReason::AbruptDisconnect => None,
        }
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text frame that could not be turned into a typed message.
///
/// Messages are short and safe to log: wire input is truncated to ~80 chars and
/// payloads are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, not a JSON object, or no string `event` field.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A known event with a missing or malformed required field; `detail` names the field.
    #[error("invalid `{event}` message: {detail}")]
    InvalidMessage {
        /// The `event` value, e.g. `"media"`.
        event: String,
        /// What is wrong, naming the field, e.g. "`media.chunk` must be an integer, got a non-numeric string".
        detail: String,
    },
    /// An `event` value this module does not know (truncated).
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
}

impl ProtocolError {
    /// The metrics / once-per-call reason for this error.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ProtocolError::InvalidJson(_) => ErrorReason::InvalidJson,
            ProtocolError::InvalidMessage { .. } => ErrorReason::InvalidMessage,
            ProtocolError::UnknownEvent(_) => ErrorReason::UnknownEvent,
        }
    }

    /// `InvalidMessage` for `event` with `detail`.
    pub(crate) fn invalid(event: &str, detail: impl Into<String>) -> Self {
        ProtocolError::InvalidMessage {
            event: truncate_for_log(event),
            detail: detail.into(),
        }
    }
}

/// Copies at most [`MAX_ECHO_CHARS`] characters of `s`, marking a cut with `…`.
pub(crate) fn truncate_for_log(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}
