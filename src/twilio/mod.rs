//! Twilio-facing protocol code: Media Streams WebSocket messages
//! ([`messages`]) and the TwiML that starts a stream ([`twiml`]).
//!
//! Pure, synchronous translation between Twilio's wire formats and typed
//! values. This module must NOT do I/O (sockets, HTTP), keep per-call state,
//! validate request signatures, or log; those live in the server and call
//! layers. Names follow Twilio's own (`streamSid`, `callSid`, `mark`, `clear`).
//! Protocol reference: `twilio-media-streams.md`.

pub mod messages;
pub mod twiml;

pub use messages::{
    CallSid, ErrorReason, InboundEvent, Media, OutboundMessage, ParsedOutbound, ProtocolError,
    StreamSid, decode_payload, parse_inbound, parse_outbound, write_outbound,
};
pub use twiml::connect_stream;
