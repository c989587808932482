//! OCI runtime spec builder.
