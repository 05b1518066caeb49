//! What rotation functions do outside coffer's own state: the built-in database rotators
//! (`db`) and the invocation of external rotation functions (`invoke`). The rotation engine
//! (the four steps, staging labels, scheduling) lives in `coffer-core`; this crate never
//! reads or writes coffer's store.
#![forbid(unsafe_code)]

pub mod db;
pub mod invoke;
