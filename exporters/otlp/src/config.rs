//! Settings: the builder's values over the standard `OTEL_*` variables over
//! the defaults of the OTLP exporter specification.

use std::time::Duration;

use crate::{Compression, Error, Protocol, Temporality};

/// Reads one environment variable; an empty value (as the specification
/// asks) or one that is not UTF-8 counts as unset.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where and how each signal is sent, fully resolved.
pub(crate) struct Resolved {
    pub(crate) protocol: Protocol,
    /// For HTTP: the full URL of `/v1/metrics`; for gRPC: the channel's URL.
    pub(crate) metrics_url: http::Uri,
    /// For HTTP: the full URL of `/v1/logs`; for gRPC: the channel's URL.
    pub(crate) logs_url: http::Uri,
    /// Sent on every request; values are secrets and never printed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) temporality: Temporality,
    pub(crate) compression: Compression,
    /// Extra trusted CA certificates, PEM.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("protocol", &self.protocol)
            .field("metrics_url", &self.metrics_url)
            .field("logs_url", &self.logs_url)
            .field("headers", &redacted(&self.headers))
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("temporality", &self.temporality)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// Header names with their values hidden, for `Debug` output.
pub(crate) fn redacted(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .map(|(k, _)| format!("{k}: <redacted>"))
        .collect()
}

/// What the builder set explicitly (`None`: take the environment or the
/// default).
#[derive(Default, Clone)]
pub(crate) struct Explicit {
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    pub(crate) temporality: Option<Temporality>,
    pub(crate) compression: Option<Compression>,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

pub(crate) fn resolve(explicit: &Explicit, env: Env<'_>) -> Result<Resolved, Error> {
    let protocol = match explicit.protocol {
        Some(p) => p,
        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => parse_protocol(&v)?,
            None => Protocol::HttpProtobuf,
        },
    };
    let (base, base_setting) = match &explicit.endpoint {
        Some(e) => (e.clone(), "endpoint()"),
        None => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(e) => (e, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            None => (
                match protocol {
                    Protocol::Grpc => "http://localhost:4317",
                    Protocol::HttpProtobuf => "http://localhost:4318",
                }
                .to_owned(),
                "the default endpoint",
            ),
        },
    };
    let signal = |var: &'static str, path: &str| -> Result<http::Uri, Error> {
        // A signal's own variable is a complete URL; the builder's endpoint
        // (and the generic variable) is a base that the path is added to.
        if explicit.endpoint.is_none()
            && let Some(url) = env(var)
        {
            return parse_url(&url, var);
        }
        match protocol {
            Protocol::Grpc => parse_url(&base, base_setting),
            Protocol::HttpProtobuf => {
                parse_url(&base, base_setting)?;
                let joined = format!("{}{path}", base.trim().trim_end_matches('/'));
                parse_url(&joined, base_setting)
            }
        }
    };
    let metrics_url = signal("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics")?;
    let logs_url = signal("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "/v1/logs")?;

    let mut headers = match env("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(v) => parse_headers(&v, "OTEL_EXPORTER_OTLP_HEADERS")?,
        None => Vec::new(),
    };
    for (k, v) in &explicit.headers {
        check_header(k, v, "header()")?;
        headers.retain(|(old, _)| !old.eq_ignore_ascii_case(k));
        headers.push((k.to_ascii_lowercase(), v.clone()));
    }

    // A zero value names where it came from: the builder or the variable.
    let (timeout, timeout_setting) = match explicit.timeout {
        Some(t) => (t, "timeout()"),
        None => match env("OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some(v) => (
                parse_millis(&v, "OTEL_EXPORTER_OTLP_TIMEOUT")?,
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
            None => (Duration::from_secs(10), "timeout"),
        },
    };
    let (interval, interval_setting) = match explicit.interval {
        Some(t) => (t, "interval()"),
        None => match env("OTEL_METRIC_EXPORT_INTERVAL") {
            Some(v) => (
                parse_millis(&v, "OTEL_METRIC_EXPORT_INTERVAL")?,
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            None => (Duration::from_secs(60), "interval"),
        },
    };
    if timeout.is_zero() {
        return Err(Error::invalid(timeout_setting, "must be greater than zero"));
    }
    if interval.is_zero() {
        return Err(Error::invalid(
            interval_setting,
            "must be greater than zero",
        ));
    }
    let temporality = match explicit.temporality {
        Some(t) => t,
        None => match env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" | "lowmemory" => Temporality::Delta,
                _ => {
                    return Err(Error::invalid(
                        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                        format!("{v:?} is not one of cumulative, delta, lowmemory"),
                    ));
                }
            },
            None => Temporality::Cumulative,
        },
    };
    let compression = match explicit.compression {
        Some(c) => c,
        None => match env("OTEL_EXPORTER_OTLP_COMPRESSION") {
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                _ => {
                    return Err(Error::invalid(
                        "OTEL_EXPORTER_OTLP_COMPRESSION",
                        format!("{v:?} is not one of gzip, none"),
                    ));
                }
            },
            None => Compression::None,
        },
    };
    let ca_pem = match &explicit.ca_pem {
        Some(pem) => Some(pem.clone()),
        None => match env("OTEL_EXPORTER_OTLP_CERTIFICATE") {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                Error::invalid(
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    format!("cannot read {path}: {e}"),
                )
            })?),
            None => None,
        },
    };
    Ok(Resolved {
        protocol,
        metrics_url,
        logs_url,
        headers,
        timeout,
        interval,
        temporality,
        compression,
        ca_pem,
    })
}

fn parse_protocol(value: &str) -> Result<Protocol, Error> {
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err(Error::invalid(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "\"http/json\" is not supported by overrun-otlp; use grpc or http/protobuf",
        )),
        other => Err(Error::invalid(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!("{other:?} is not a protocol; expected grpc or http/protobuf"),
        )),
    }
}

/// An absolute `http` or `https` URL with a host.
fn parse_url(url: &str, setting: &str) -> Result<http::Uri, Error> {
    if !url.contains("://") {
        return Err(Error::invalid(
            setting,
            format!("{url:?} has no scheme; write http://{url} or https://{url}"),
        ));
    }
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| Error::invalid(setting, format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(Error::invalid(
                setting,
                format!("{url:?}: scheme {other:?} is not http or https"),
            ));
        }
        None => {
            return Err(Error::invalid(
                setting,
                format!("{url:?} has no scheme; write http://{url} or https://{url}"),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::invalid(setting, format!("{url:?} has no host")));
    }
    Ok(uri)
}

fn parse_millis(value: &str, var: &str) -> Result<Duration, Error> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            Error::invalid(
                var,
                format!("{value:?} is not a whole number of milliseconds"),
            )
        })
}

/// `key1=value1,key2=value2`, values percent-decoded. Errors name the entry
/// and its key, never a value.
fn parse_headers(value: &str, var: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, entry) in value.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(Error::invalid(
                var,
                format!("entry {} has no '=' (expected key=value)", n + 1),
            ));
        };
        let key = percent_decode(k.trim())
            .ok_or_else(|| Error::invalid(var, format!("entry {}: bad %-escape in key", n + 1)))?;
        let val = percent_decode(v.trim())
            .ok_or_else(|| Error::invalid(var, format!("the value of {key:?}: bad %-escape")))?;
        check_header(&key, &val, var)?;
        out.retain(|(old, _)| !old.eq_ignore_ascii_case(&key));
        out.push((key.to_ascii_lowercase(), val));
    }
    Ok(out)
}

fn check_header(key: &str, value: &str, setting: &str) -> Result<(), Error> {
    if http::HeaderName::from_bytes(key.as_bytes()).is_err() || key.is_empty() {
        return Err(Error::invalid(
            setting,
            format!("{key:?} is not a valid header name"),
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(Error::invalid(
            setting,
            format!("the value of header {key:?} has characters a header cannot carry"),
        ));
    }
    Ok(())
}

/// Decodes `%XX` escapes (W3C Baggage style, as the specification asks for
/// `OTEL_EXPORTER_OTLP_HEADERS`). `None` for a malformed escape (a `%` not
/// followed by two hex digits) or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_malformed_ones_are_refused() {
        assert_eq!(
            percent_decode("perf%20tools").as_deref(),
            Some("perf tools")
        );
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("50%"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%C3"), None, "not UTF-8");
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn resolve_env(pairs: &'static [(&'static str, &'static str)]) -> Result<Resolved, Error> {
        resolve(&Explicit::default(), &env_of(pairs))
    }

    #[test]
    fn defaults_follow_the_specification() {
        let r = resolve_env(&[]).unwrap();
        assert_eq!(r.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.metrics_url, "http://localhost:4318/v1/metrics");
        assert_eq!(r.logs_url, "http://localhost:4318/v1/logs");
        assert_eq!(r.timeout, Duration::from_secs(10));
        assert_eq!(r.interval, Duration::from_secs(60));
        assert_eq!(r.temporality, Temporality::Cumulative);
        assert_eq!(r.compression, Compression::None);
        let r = resolve_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
        assert_eq!(r.metrics_url, "http://localhost:4317/");
    }

    #[test]
    fn environment_is_read() {
        let r = resolve_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://other:9/custom/logs",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, X-Team = core ",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .unwrap();
        assert_eq!(r.metrics_url, "https://collector:4318/v1/metrics");
        assert_eq!(r.logs_url, "http://other:9/custom/logs");
        assert_eq!(
            r.headers,
            [
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("x-team".to_owned(), "core".to_owned())
            ]
        );
        assert_eq!(r.timeout, Duration::from_millis(2500));
        assert_eq!(r.interval, Duration::from_millis(100));
        assert_eq!(r.temporality, Temporality::Delta);
        assert_eq!(r.compression, Compression::Gzip);
    }

    #[test]
    fn builder_wins_over_environment() {
        let explicit = Explicit {
            endpoint: Some("http://127.0.0.1:4317".into()),
            protocol: Some(Protocol::Grpc),
            headers: vec![("API-Key".into(), "mine".into())],
            ..Explicit::default()
        };
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:1"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://elsewhere:2"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=theirs,a=b"),
        ]);
        let r = resolve(&explicit, &env).unwrap();
        assert_eq!(r.protocol, Protocol::Grpc);
        assert_eq!(r.metrics_url, "http://127.0.0.1:4317/");
        assert_eq!(
            r.headers,
            [
                ("a".to_owned(), "b".to_owned()),
                ("api-key".to_owned(), "mine".to_owned())
            ]
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")],
                "OTEL_EXPORTER_OTLP_PROTOCOL: \"http/xml\" is not a protocol; expected grpc or http/protobuf",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL: \"http/json\" is not supported",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT: \"localhost:4317\" has no scheme; write http://localhost:4317",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://h:1")],
                "scheme \"ftp\" is not http or https",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://exa mple:1")],
                "is not a URL",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT: \"10s\" is not a whole number of milliseconds",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")],
                "OTEL_EXPORTER_OTLP_COMPRESSION: \"brotli\" is not one of gzip, none",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_TIMEOUT: must be greater than zero",
            ),
            // Found by the `otel_env` fuzzer: the error named no variable.
            (
                &[("OTEL_METRIC_EXPORT_INTERVAL", "0000")],
                "OTEL_METRIC_EXPORT_INTERVAL: must be greater than zero",
            ),
        ];
        for (pairs, expected) in cases {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(pairs.to_vec().into_boxed_slice());
            let err = resolve_env(pairs).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn header_errors_never_show_values() {
        for bad in [
            "api-key=topsecret,broken",
            "api-key=top%ZZsecret",
            "bad key=topsecret",
            "api-key=top\u{7f}secret",
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(
                vec![(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    &*Box::leak(bad.to_owned().into_boxed_str()),
                )]
                .into_boxed_slice(),
            );
            let err = match resolve_env(pairs) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{bad:?} accepted"),
            };
            assert!(err.starts_with("OTEL_EXPORTER_OTLP_HEADERS: "), "{err}");
            assert!(
                !err.contains("topsecret") && !err.contains("secret"),
                "{err}"
            );
        }
        let r = resolve_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=topsecret")]).unwrap();
        let shown = format!("{r:?}");
        assert!(shown.contains("api-key: <redacted>") && !shown.contains("topsecret"));
    }
}
