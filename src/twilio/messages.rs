//! Typed Twilio Media Streams messages, both directions (protocol:
//! `twilio-media-streams.md`, "Messages Twilio sends" / "Messages the server
//! may send").
//!
//! - Server side: [`parse_inbound`] + [`decode_payload`] for Twilio's frames,
//!   [`write_outbound`] for ours.
//! - Simulated Twilio leg: the `*_json` builders produce Twilio's frames and
//!   [`parse_outbound`] reads ours.
//!
//! This module does no I/O, keeps no call state (no sequence/chunk tracking,
//! no stream-sid or ordering checks, no once-per-call logging: the call
//! layer owns those, using [`ErrorReason`]), never logs and never panics on
//! wire input. Protocol quirks worth knowing, all from the reference:
//! integers arrive as strings; `sequenceNumber` counts every message while
//! `chunk` counts media (only a `chunk` gap is lost audio); dtmf says
//! `inbound_track` where media says `inbound`; marks come back all at once
//! after `clear`.

mod builders;
mod error;
mod inbound;
mod inbound_parse;
mod json;
mod outbound;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_roundtrip;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use builders::{connected_json, dtmf_json, mark_json, media_json, start_json, stop_json};
pub use error::{ErrorReason, ProtocolError};
pub use inbound::{Connected, Dtmf, InboundEvent, Mark, Media, MediaFormat, Start, Stop, Track};
pub use inbound_parse::{decode_payload, parse_inbound};
pub use outbound::{OutboundMessage, ParsedOutbound, parse_outbound, write_outbound};

/// A Media Stream SID (`MZ…`), announced in `start` and required on every
/// message after it, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamSid(pub String);

/// A Call SID (`CA…`), from `start.callSid` / `stop.callSid` (and the voice webhook).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallSid(pub String);

macro_rules! sid_impls {
    ($t:ident) => {
        impl $t {
            /// The SID as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<String> for $t {
            fn from(s: String) -> Self {
                $t(s)
            }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                $t(s.to_owned())
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
sid_impls!(StreamSid);
sid_impls!(CallSid);
