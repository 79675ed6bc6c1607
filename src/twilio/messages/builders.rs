//! JSON builders for the *simulated Twilio leg*: they produce inbound
//! messages exactly as Twilio shapes them (key order as in Twilio's docs,
//! `sequenceNumber`/`chunk`/`timestamp` as strings holding integers,
//! `sampleRate`/`channels` as numbers).
//!
//! Must NOT: be used by the server to talk to Twilio (that is
//! [`super::write_outbound`]), keep sequence state (callers count), or
//! validate sids. Strings are JSON-escaped, so any input yields valid JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::json::{push_json_str, push_quoted_u64};

/// `{"event":"connected","protocol":"Call","version":"1.0.0"}` — always the
/// first message, with no `streamSid` and no `sequenceNumber`.
pub fn connected_json() -> String {
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
}

/// A `start` message: tracks `["inbound"]` (all `<Connect><Stream>` carries),
/// mediaFormat `audio/x-mulaw` 8000 Hz 1 channel, `customParameters` in the
/// given order. `streamSid` appears inside `start` and at top level.
pub fn start_json(
    seq: u64,
    account_sid: &str,
    stream_sid: &str,
    call_sid: &str,
    custom_parameters: &[(String, String)],
) -> String {
    let mut out = String::with_capacity(320);
    out.push_str(r#"{"event":"start","sequenceNumber":"#);
    push_quoted_u64(&mut out, seq);
    out.push_str(r#","start":{"accountSid":"#);
    push_json_str(&mut out, account_sid);
    out.push_str(r#","streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push_str(r#","callSid":"#);
    push_json_str(&mut out, call_sid);
    out.push_str(r#","tracks":["inbound"],"customParameters":{"#);
    for (i, (name, value)) in custom_parameters.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        out.push(':');
        push_json_str(&mut out, value);
    }
    out.push_str(r#"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push('}');
    out
}

/// A `media` message on track `"inbound"` carrying `mulaw` as base64.
/// `chunk` counts media messages from 1; `timestamp_ms` is ms since stream
/// start (advance it by `mulaw.len() / 8` per message at 8 kHz).
pub fn media_json(
    seq: u64,
    stream_sid: &str,
    chunk: u64,
    timestamp_ms: u64,
    mulaw: &[u8],
) -> String {
    let mut out = String::with_capacity(140 + mulaw.len().div_ceil(3) * 4);
    out.push_str(r#"{"event":"media","sequenceNumber":"#);
    push_quoted_u64(&mut out, seq);
    out.push_str(r#","media":{"track":"inbound","chunk":"#);
    push_quoted_u64(&mut out, chunk);
    out.push_str(r#","timestamp":"#);
    push_quoted_u64(&mut out, timestamp_ms);
    out.push_str(r#","payload":""#);
    STANDARD.encode_string(mulaw, &mut out);
    out.push_str(r#""},"streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push('}');
    out
}

/// A `dtmf` message. Note the track is `"inbound_track"` here, not
/// `"inbound"` as on media (reference, "Messages Twilio sends").
pub fn dtmf_json(seq: u64, stream_sid: &str, digit: &str) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(r#"{"event":"dtmf","streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push_str(r#","sequenceNumber":"#);
    push_quoted_u64(&mut out, seq);
    out.push_str(r#","dtmf":{"track":"inbound_track","digit":"#);
    push_json_str(&mut out, digit);
    out.push_str("}}");
    out
}

/// A `mark` message: Twilio echoing the server's mark `name`.
pub fn mark_json(seq: u64, stream_sid: &str, name: &str) -> String {
    let mut out = String::with_capacity(112 + name.len());
    out.push_str(r#"{"event":"mark","sequenceNumber":"#);
    push_quoted_u64(&mut out, seq);
    out.push_str(r#","streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push_str(r#","mark":{"name":"#);
    push_json_str(&mut out, name);
    out.push_str("}}");
    out
}

/// A `stop` message (stream ended or caller hung up).
pub fn stop_json(seq: u64, account_sid: &str, stream_sid: &str, call_sid: &str) -> String {
    let mut out = String::with_capacity(192);
    out.push_str(r#"{"event":"stop","sequenceNumber":"#);
    push_quoted_u64(&mut out, seq);
    out.push_str(r#","stop":{"accountSid":"#);
    push_json_str(&mut out, account_sid);
    out.push_str(r#","callSid":"#);
    push_json_str(&mut out, call_sid);
    out.push_str(r#"},"streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push('}');
    out
}
