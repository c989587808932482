//! Pod objects.
