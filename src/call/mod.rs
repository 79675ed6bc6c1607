//! One phone call: the session actor that owns its state, and the pieces it drives.
//!
//! Data flows one way: reader → carrier codec → [`session::CallSession`] → engine, and back
//! through [`playout::Playout`] → [`outbox::Outbox`] → writer. [`frames`] is the neutral
//! vocabulary between codec and session, [`context`] who the call is, [`events`] the stream the
//! [`observers`] read, [`summary`] the call's summary. Nothing here touches sockets directly;
//! the server module wires the I/O tasks around it.

pub mod context;
pub mod ears;
pub mod events;
pub mod frames;
pub mod latency;
pub mod live;
pub mod observers;
pub mod outbox;
pub mod playout;
pub mod recorder;
pub mod services;
pub mod session;
pub mod summary;
