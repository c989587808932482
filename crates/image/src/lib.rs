//! Image store.
