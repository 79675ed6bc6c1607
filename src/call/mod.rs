//! One phone call: the session actor that owns its state, and the pieces it drives.
//!
//! Data flows one way: reader → [`session::CallSession`] → [`outbox::Outbox`] → writer.
//! [`turn`] finds the caller's turns, [`playout`] paces responses, [`summary`] records the call.
//! Nothing here touches sockets directly; the server module wires the I/O tasks around it.

pub mod conversation;
pub mod latency;
pub mod outbox;
pub mod playout;
pub mod recorder;
pub mod services;
pub mod session;
pub mod summary;
pub mod turn;
