//! podhost's CRI server.
pub mod authority;
