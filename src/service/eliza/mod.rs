//! ELIZA: a synchronous, deterministic implementation of Joseph Weizenbaum's
//! script-driven ELIZA (1966), with his DOCTOR script built in.
//!
//! The engine knows nothing about gRPC or Tokio: handlers parse or share a
//! [`Script`] (usually [`Script::doctor`]), start one [`Eliza`] per
//! conversation and call [`Eliza::reply`] for each line the user sends. Given
//! the same script and the same inputs, the replies are always the same; the
//! 1966 sample conversation from the paper is reproduced word for word.
//!
//! Layout:
//! - `script`: the parser for the 1966 script language and the shared data model.
//! - `engine`: one conversation, the keystack, links, MEMORY and NONE.
//! - `matcher`: decomposition patterns against the input's words.
//! - `format`: sentence case, punctuation and question marks for replies.
//! - `goodbye`: recognising that the user is leaving (the 1966 script has no rule for it).
//! - `hash`: the Hollerith hash that picks a MEMORY transformation.
//!
//! `doctor.script` holds the DOCTOR script and documents the script language.

mod engine;
mod format;
mod goodbye;
mod hash;
mod matcher;
mod script;

pub use engine::{Eliza, Reply};
pub use script::{Script, ScriptError};
