//! Timestamps: unix nanoseconds <-> RFC 3339 and Kubernetes `Time`.

pub use podhost_runtime::clock::now_nanos;

/// RFC 3339 with second precision, as Kubernetes prints `metav1.Time`.
pub fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "<invalid>".into())
}

/// RFC 1123 with a numeric zone (Go's `time.RFC1123Z`), as `kubectl describe` prints
/// times: `Mon, 07 Dec 2026 05:35:04 +0000` (UTC).
pub fn rfc1123z(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| {
            t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
                .strftime("%a, %d %b %Y %H:%M:%S %z")
                .to_string()
        })
        .unwrap_or_else(|_| "<invalid>".into())
}

/// A `k8s_openapi` Time from unix nanoseconds.
pub fn k8s_time(nanos: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts = k8s_openapi::jiff::Timestamp::from_nanosecond(nanos as i128)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}

/// Unix nanoseconds of a `k8s_openapi` Time.
pub fn from_k8s_time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_nanosecond() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc1123z(1_700_000_000_000_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }
}
