//! podhost library.
