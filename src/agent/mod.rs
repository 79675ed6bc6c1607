//! Agents: who answers the caller. Today the built-in echo agent; the LLM and scripted agents
//! plug in here behind the same seam. An agent never touches sockets or playout timing.

pub mod echo;
