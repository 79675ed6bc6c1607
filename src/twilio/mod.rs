//! Twilio-facing protocol code: Media Streams WebSocket messages
//! ([`messages`]), the TwiML that starts a stream ([`twiml`]), and the REST calls that
//! place, read, hang up or transfer a call ([`rest`]).
//!
//! [`messages`] and [`twiml`] are pure, synchronous translation between Twilio's wire formats
//! and typed values: they must NOT do I/O (sockets, HTTP), keep per-call state, validate
//! request signatures, or log; those live in the server and call layers. [`rest`] is the one
//! exception: a small HTTP client that performs the request it is asked for and logs it.
//! Names follow Twilio's own (`streamSid`, `callSid`, `mark`, `clear`).
//! Protocol reference: `twilio-media-streams.md`.

pub mod codec;
pub mod messages;
pub mod rest;
pub mod signature;
pub mod twiml;

pub use messages::{
    CallSid, ErrorReason, InboundEvent, Media, OutboundMessage, ParsedOutbound, ProtocolError,
    StreamSid, decode_payload, parse_inbound, parse_outbound, write_outbound,
};
pub use twiml::connect_stream;
