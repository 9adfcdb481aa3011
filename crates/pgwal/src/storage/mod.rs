//! Where archives live: a local directory or an object store.

pub mod location;
#[cfg(feature = "object-store")]
pub mod object;
