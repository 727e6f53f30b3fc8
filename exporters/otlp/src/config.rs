//! Settings: the builder's values over the standard `OTEL_*` variables over
//! the defaults of the OTLP exporter specification.
//!
//! For each signal (metrics; logs, which carry the violation events) a
//! setting is the builder's value, else the signal's own variable
//! (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`), else the generic one
//! (`OTEL_EXPORTER_OTLP_TIMEOUT`), else the default. A builder value that
//! is not usable is an error naming the method; a variable that is not
//! usable is a warning naming it, and the next level applies (as the
//! specification asks: a bad variable a platform injected must not take a
//! service down).

use std::time::Duration;

use crate::{Compression, Error, Protocol, Temporality};

/// Reads one environment variable; an empty value (as the specification
/// asks) or one that is not UTF-8 counts as unset.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where and how one signal is sent.
pub(crate) struct Signal {
    /// `false` when `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER` is `none`.
    pub(crate) enabled: bool,
    pub(crate) protocol: Protocol,
    /// For HTTP: the full URL (`…/v1/metrics`); for gRPC: the channel's URL.
    pub(crate) url: http::Uri,
    /// Sent on every request; values are secrets and never printed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    /// Extra trusted CA certificates, PEM.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

/// Every setting, fully resolved.
pub(crate) struct Resolved {
    /// `OTEL_SDK_DISABLED=true`: the exporter does nothing.
    pub(crate) disabled: bool,
    pub(crate) metrics: Signal,
    pub(crate) logs: Signal,
    pub(crate) interval: Duration,
    pub(crate) temporality: Temporality,
    /// The violation events' own schedule (OpenTelemetry's batch log
    /// processor): sent every `events_delay`, or as soon as `events_batch`
    /// are waiting, in requests of at most `events_batch`.
    pub(crate) events_delay: Duration,
    pub(crate) events_batch: usize,
    /// Events kept while they cannot be sent.
    pub(crate) events_queue: usize,
    /// Variables that were not usable, and what was done instead.
    pub(crate) warnings: Vec<String>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("enabled", &self.enabled)
            .field("protocol", &self.protocol)
            .field("url", &self.url)
            .field("headers", &redacted(&self.headers))
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("disabled", &self.disabled)
            .field("metrics", &self.metrics)
            .field("logs", &self.logs)
            .field("interval", &self.interval)
            .field("temporality", &self.temporality)
            .field("events_delay", &self.events_delay)
            .field("events_batch", &self.events_batch)
            .field("events_queue", &self.events_queue)
            .field("warnings", &self.warnings)
            .finish()
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
    pub(crate) events_delay: Option<Duration>,
    pub(crate) events_batch: Option<usize>,
    pub(crate) events_queue: Option<usize>,
}

/// The default bound of the event queue: more than the specification's
/// 2 048, as an event is small and an outage should cost few of them.
pub(crate) const EVENTS_QUEUE: usize = 4096;

/// The environment, and the warnings about it.
struct Vars<'a> {
    env: Env<'a>,
    warnings: Vec<String>,
}

impl Vars<'_> {
    /// The first of `vars` that is set and parses; a set one that does not
    /// parse is warned about and skipped.
    fn first<T>(&mut self, vars: &[&str], parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        for var in vars {
            if let Some(value) = (self.env)(var) {
                match parse(&value) {
                    Ok(v) => return Some(v),
                    Err(reason) => self.warnings.push(format!("{var}: {reason}; ignored")),
                }
            }
        }
        None
    }
}

/// `OTEL_EXPORTER_OTLP_{SIGNAL}_{SETTING}` then `OTEL_EXPORTER_OTLP_{SETTING}`.
fn names(signal: &str, setting: &str) -> [String; 2] {
    [
        format!("OTEL_EXPORTER_OTLP_{signal}_{setting}"),
        format!("OTEL_EXPORTER_OTLP_{setting}"),
    ]
}

pub(crate) fn resolve(explicit: &Explicit, env: Env<'_>) -> Result<Resolved, Error> {
    let mut vars = Vars {
        env,
        warnings: Vec::new(),
    };
    let disabled = vars
        .first(&["OTEL_SDK_DISABLED"], |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("{v:?} is not true or false")),
            }
        })
        .unwrap_or(false);
    let metrics = signal(explicit, &mut vars, "METRICS", "/v1/metrics")?;
    let logs = signal(explicit, &mut vars, "LOGS", "/v1/logs")?;
    let interval = match explicit.interval {
        Some(t) if t.is_zero() => {
            return Err(Error::invalid("interval()", "must be greater than zero"));
        }
        Some(t) => t,
        None => vars
            .first(&["OTEL_METRIC_EXPORT_INTERVAL"], positive_millis)
            .unwrap_or(Duration::from_secs(60)),
    };
    let temporality = match explicit.temporality {
        Some(t) => t,
        None => vars
            .first(
                &["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"],
                |v| match v.trim().to_ascii_lowercase().as_str() {
                    "cumulative" => Ok(Temporality::Cumulative),
                    "delta" | "lowmemory" => Ok(Temporality::Delta),
                    _ => Err(format!("{v:?} is not one of cumulative, delta, lowmemory")),
                },
            )
            .unwrap_or(Temporality::Cumulative),
    };
    let events_delay = match explicit.events_delay {
        Some(t) if t.is_zero() => {
            return Err(Error::invalid(
                "events_delay()",
                "must be greater than zero",
            ));
        }
        Some(t) => t,
        None => vars
            .first(&["OTEL_BLRP_SCHEDULE_DELAY"], positive_millis)
            .unwrap_or(Duration::from_secs(1)),
    };
    let count = |v: &str| match v.trim().parse::<usize>() {
        Ok(0) => Err("must be greater than zero".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{v:?} is not a whole number")),
    };
    let events_queue = match explicit.events_queue {
        Some(n) => n.max(1),
        None => vars
            .first(&["OTEL_BLRP_MAX_QUEUE_SIZE"], count)
            .unwrap_or(EVENTS_QUEUE),
    };
    let events_batch = match explicit.events_batch {
        Some(0) => {
            return Err(Error::invalid(
                "events_batch()",
                "must be greater than zero",
            ));
        }
        Some(n) => n,
        None => vars
            .first(&["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"], count)
            .unwrap_or(512),
    }
    // As the specification asks: a batch is never larger than the queue.
    .min(events_queue);
    // A generic variable is read for both signals: warned about once.
    let mut warnings = vars.warnings;
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Ok(Resolved {
        disabled,
        metrics,
        logs,
        interval,
        temporality,
        events_delay,
        events_batch,
        events_queue,
        warnings,
    })
}

/// One signal's settings; `kind` is `METRICS` or `LOGS`, `path` its HTTP
/// path.
fn signal(
    explicit: &Explicit,
    vars: &mut Vars<'_>,
    kind: &str,
    path: &str,
) -> Result<Signal, Error> {
    let exporter_var = format!("OTEL_{kind}_EXPORTER");
    let enabled = vars
        .first(&[exporter_var.as_str()], |v| {
            // The specification's names: with `otlp` in the list this
            // exporter sends; `none`, or only other exporters, it does not.
            const KNOWN: &[&str] = &["otlp", "none", "prometheus", "console", "logging"];
            let list: Vec<&str> = v.split(',').map(str::trim).collect();
            match list.iter().find(|e| !KNOWN.contains(e)) {
                Some(unknown) => Err(format!(
                    "{unknown:?} is not an exporter of the specification (otlp, prometheus, console, none)"
                )),
                None => Ok(list.contains(&"otlp")),
            }
        })
        .unwrap_or(true);
    // Settings the specification has and overrun-otlp does not support:
    // said, so a collector that needs them fails with a hint.
    for setting in ["CLIENT_KEY", "CLIENT_CERTIFICATE", "INSECURE"] {
        for var in names(kind, setting) {
            if (vars.env)(&var).is_some() {
                vars.warnings.push(format!(
                    "{var}: not supported by overrun-otlp (no client certificates; \
                     use an https:// or http:// endpoint); ignored"
                ));
            }
        }
    }

    let [own, generic] = names(kind, "PROTOCOL");
    let protocol = match explicit.protocol {
        Some(p) => p,
        None => vars
            .first(&[own.as_str(), generic.as_str()], parse_protocol)
            .unwrap_or(Protocol::HttpProtobuf),
    };

    let default_base = match protocol {
        Protocol::Grpc => "http://localhost:4317",
        Protocol::HttpProtobuf => "http://localhost:4318",
    };
    // The builder's endpoint and the generic variable are a base the path
    // is added to (over HTTP); the signal's own variable is a whole URL.
    let with_path = |base: &str| -> Result<http::Uri, String> {
        let base_uri = parse_url(base)?;
        match protocol {
            Protocol::Grpc => Ok(base_uri),
            Protocol::HttpProtobuf => {
                parse_url(&format!("{}{path}", base.trim().trim_end_matches('/')))
            }
        }
    };
    let url = match &explicit.endpoint {
        Some(base) => with_path(base).map_err(|reason| Error::invalid("endpoint()", reason))?,
        None => {
            let [own, generic] = names(kind, "ENDPOINT");
            match vars.first(&[own.as_str()], parse_url) {
                Some(url) => url,
                None => match vars.first(&[generic.as_str()], with_path) {
                    Some(url) => url,
                    None => with_path(default_base).expect("the default endpoint is a URL"),
                },
            }
        }
    };

    let [own, generic] = names(kind, "HEADERS");
    let mut headers = vars
        .first(&[own.as_str(), generic.as_str()], parse_headers)
        .unwrap_or_default();
    for (k, v) in &explicit.headers {
        check_header(k, v).map_err(|reason| Error::invalid("header()", reason))?;
        headers.retain(|(old, _)| !old.eq_ignore_ascii_case(k));
        headers.push((k.to_ascii_lowercase(), v.clone()));
    }

    let [own, generic] = names(kind, "TIMEOUT");
    let timeout = match explicit.timeout {
        Some(t) if t.is_zero() => {
            return Err(Error::invalid("timeout()", "must be greater than zero"));
        }
        Some(t) => t,
        None => vars
            .first(&[own.as_str(), generic.as_str()], positive_millis)
            .unwrap_or(Duration::from_secs(10)),
    };

    let [own, generic] = names(kind, "COMPRESSION");
    let compression = match explicit.compression {
        Some(c) => c,
        None => vars
            .first(&[own.as_str(), generic.as_str()], |v| {
                match v.trim().to_ascii_lowercase().as_str() {
                    "gzip" => Ok(Compression::Gzip),
                    "none" => Ok(Compression::None),
                    _ => Err(format!("{v:?} is not one of gzip, none")),
                }
            })
            .unwrap_or(Compression::None),
    };

    let [own, generic] = names(kind, "CERTIFICATE");
    let ca_pem = match &explicit.ca_pem {
        Some(pem) => Some(pem.clone()),
        None => vars.first(&[own.as_str(), generic.as_str()], |path| {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            crate::transport::ca_certificates(&pem).map_err(|e| format!("{path}: {e}"))?;
            Ok(pem)
        }),
    };

    Ok(Signal {
        enabled,
        protocol,
        url,
        headers,
        timeout,
        compression,
        ca_pem,
    })
}

fn parse_protocol(value: &str) -> Result<Protocol, String> {
    // The specification's values, exactly (`GRPC` is not one).
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => {
            Err("\"http/json\" is not supported by overrun-otlp; use grpc or http/protobuf".into())
        }
        other => Err(format!(
            "{other:?} is not a protocol; expected grpc or http/protobuf"
        )),
    }
}

/// An absolute `http` or `https` URL with a host.
pub(crate) fn parse_url(url: &str) -> Result<http::Uri, String> {
    if !url.contains("://") {
        return Err(format!(
            "{url:?} has no scheme; write http://{url} or https://{url}"
        ));
    }
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("{url:?}: scheme {other:?} is not http or https")),
        None => {
            return Err(format!(
                "{url:?} has no scheme; write http://{url} or https://{url}"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

/// Whole milliseconds, more than zero.
fn positive_millis(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(0) => Err("must be greater than zero".into()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(format!("{value:?} is not a whole number of milliseconds")),
    }
}

/// `key1=value1,key2=value2`, values percent-decoded. Errors name the entry
/// and its key, never a value.
fn parse_headers(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, entry) in value.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!("entry {} has no '=' (expected key=value)", n + 1));
        };
        let key = percent_decode(k.trim())
            .ok_or_else(|| format!("entry {}: bad %-escape in key", n + 1))?;
        let val = percent_decode(v.trim())
            .ok_or_else(|| format!("the value of {key:?}: bad %-escape"))?;
        check_header(&key, &val)?;
        out.retain(|(old, _)| !old.eq_ignore_ascii_case(&key));
        out.push((key.to_ascii_lowercase(), val));
    }
    Ok(out)
}

/// A header the transports can send (the reason never shows the value).
fn check_header(key: &str, value: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(key.as_bytes()).is_err() || key.is_empty() {
        return Err(format!("{key:?} is not a valid header name"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header {key:?} has characters a header cannot carry"
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

    fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn resolve_env(pairs: &[(&'static str, &str)]) -> Resolved {
        let pairs = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        resolve(&Explicit::default(), &env_of(pairs)).expect("variables never fail start-up")
    }

    #[test]
    fn defaults_follow_the_specification() {
        let r = resolve_env(&[]);
        assert!(!r.disabled && r.metrics.enabled && r.logs.enabled);
        assert_eq!(r.metrics.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.metrics.url, "http://localhost:4318/v1/metrics");
        assert_eq!(r.logs.url, "http://localhost:4318/v1/logs");
        assert_eq!(r.metrics.timeout, Duration::from_secs(10));
        assert_eq!(r.interval, Duration::from_secs(60));
        assert_eq!(r.temporality, Temporality::Cumulative);
        assert_eq!(r.metrics.compression, Compression::None);
        assert!(r.warnings.is_empty());
        let r = resolve_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(r.metrics.url, "http://localhost:4317/");
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
        ]);
        assert_eq!(r.metrics.url, "https://collector:4318/v1/metrics");
        assert_eq!(r.logs.url, "http://other:9/custom/logs");
        assert_eq!(
            r.metrics.headers,
            [
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("x-team".to_owned(), "core".to_owned())
            ]
        );
        assert_eq!(r.logs.timeout, Duration::from_millis(2500));
        assert_eq!(r.interval, Duration::from_millis(100));
        assert_eq!(r.temporality, Temporality::Delta);
        assert_eq!(r.logs.compression, Compression::Gzip);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn a_signals_own_variables_win_over_the_generic_ones() {
        let r = resolve_env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=metrics"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ]);
        assert_eq!(r.metrics.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.logs.protocol, Protocol::Grpc);
        assert_eq!(r.metrics.url, "http://collector:4318/v1/metrics");
        assert_eq!(r.logs.url, "http://collector:4317/");
        assert_eq!(r.metrics.headers, [("a".to_owned(), "metrics".to_owned())]);
        assert_eq!(r.logs.headers, [("a".to_owned(), "generic".to_owned())]);
        assert_eq!(r.metrics.timeout, Duration::from_secs(3));
        assert_eq!(r.logs.timeout, Duration::from_secs(1));
        assert_eq!(r.metrics.compression, Compression::None);
        assert_eq!(r.logs.compression, Compression::Gzip);
    }

    #[test]
    fn violation_events_follow_the_batch_log_processor_variables() {
        let r = resolve_env(&[]);
        assert_eq!(
            (r.events_delay, r.events_batch, r.events_queue),
            (Duration::from_secs(1), 512, EVENTS_QUEUE)
        );
        let r = resolve_env(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "512"),
        ]);
        assert_eq!(
            (r.events_delay, r.events_batch, r.events_queue),
            (Duration::from_millis(250), 100, 100)
        );
        let r = resolve_env(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0"),
        ]);
        assert_eq!(
            (r.events_delay, r.events_batch),
            (Duration::from_secs(1), 512)
        );
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn sdk_disabled_and_exporters_none() {
        let r = resolve_env(&[("OTEL_SDK_DISABLED", "TRUE")]);
        assert!(r.disabled);
        let r = resolve_env(&[
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "otlp,console"),
        ]);
        assert!(!r.disabled && !r.metrics.enabled && r.logs.enabled);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let r = resolve_env(&[("OTEL_LOGS_EXPORTER", "none")]);
        assert!(r.metrics.enabled && !r.logs.enabled);
        // Another exporter of the specification only: this one is off.
        let r = resolve_env(&[("OTEL_METRICS_EXPORTER", "prometheus")]);
        assert!(!r.metrics.enabled && r.logs.enabled && r.warnings.is_empty());
        let r = resolve_env(&[
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_METRICS_EXPORTER", "jaeger"),
        ]);
        assert!(!r.disabled && r.metrics.enabled);
        assert_eq!(
            r.warnings,
            [
                "OTEL_SDK_DISABLED: \"yes\" is not true or false; ignored",
                "OTEL_METRICS_EXPORTER: \"jaeger\" is not an exporter of the specification (otlp, prometheus, console, none); ignored",
            ]
        );
        let r = resolve_env(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("OTEL_EXPORTER_OTLP_CLIENT_KEY: not supported"));
    }

    #[test]
    fn builder_wins_over_environment() {
        let explicit = Explicit {
            endpoint: Some("http://127.0.0.1:4317".into()),
            protocol: Some(Protocol::Grpc),
            headers: vec![("API-Key".into(), "mine".into())],
            timeout: Some(Duration::from_millis(300)),
            ..Explicit::default()
        };
        let env = env_of(vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:1".into()),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://elsewhere:2".into(),
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=theirs,a=b".into()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s".into()),
        ]);
        let r = resolve(&explicit, &env).unwrap();
        assert_eq!(r.metrics.protocol, Protocol::Grpc);
        assert_eq!(r.metrics.url, "http://127.0.0.1:4317/");
        assert_eq!(
            r.metrics.headers,
            [
                ("a".to_owned(), "b".to_owned()),
                ("api-key".to_owned(), "mine".to_owned())
            ]
        );
        assert_eq!(r.metrics.timeout, Duration::from_millis(300));
        assert!(
            r.warnings.is_empty(),
            "an overridden variable is not read: {:?}",
            r.warnings
        );
    }

    /// The specification: an invalid value is warned about and the default
    /// (or the generic variable) used; start-up goes on.
    #[test]
    fn invalid_variables_are_warned_about_and_replaced() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "GRPC",
                "\"GRPC\" is not a protocol; expected grpc or http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
                "\"http/json\" is not supported",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "localhost:4317",
                "\"localhost:4317\" has no scheme; write http://localhost:4317",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "ftp://h:1",
                "scheme \"ftp\" is not http or https",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://exa mple:1",
                "is not a URL",
            ),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "10s",
                "\"10s\" is not a whole number of milliseconds",
            ),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "zstd",
                "\"zstd\" is not one of gzip, none",
            ),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "0",
                "must be greater than zero",
            ),
            // Found by the `otel_env` fuzzer: the error named no variable.
            (
                "OTEL_METRIC_EXPORT_INTERVAL",
                "0000",
                "must be greater than zero",
            ),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "/nonexistent/ca.pem",
                "cannot read /nonexistent/ca.pem",
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sometimes",
                "is not one of cumulative",
            ),
        ];
        let defaults = resolve_env(&[]);
        for (var, value, reason) in cases {
            let r = resolve_env(&[(var, value)]);
            assert!(
                r.warnings.iter().any(|w| w.starts_with(&format!("{var}: "))
                    && w.contains(reason)
                    && w.ends_with("; ignored")),
                "{var}={value}: {:?}",
                r.warnings
            );
            assert_eq!(
                format!("{:?}", r.metrics),
                format!("{:?}", defaults.metrics),
                "{var}={value}: the default"
            );
            assert_eq!(r.interval, defaults.interval);
            assert!(r.metrics.ca_pem.is_none());
        }
        // A bad signal variable falls back to the generic one.
        let r = resolve_env(&[
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
        ]);
        assert_eq!(r.metrics.timeout, Duration::from_millis(1500));
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn builder_values_that_are_not_usable_are_errors() {
        for (explicit, expected) in [
            (
                Explicit {
                    timeout: Some(Duration::ZERO),
                    ..Explicit::default()
                },
                "timeout(): must be greater than zero",
            ),
            (
                Explicit {
                    interval: Some(Duration::ZERO),
                    ..Explicit::default()
                },
                "interval(): must be greater than zero",
            ),
            (
                Explicit {
                    endpoint: Some("localhost:4317".into()),
                    ..Explicit::default()
                },
                "endpoint(): \"localhost:4317\" has no scheme",
            ),
            (
                Explicit {
                    headers: vec![("bad key".into(), "v".into())],
                    ..Explicit::default()
                },
                "header(): \"bad key\" is not a valid header name",
            ),
        ] {
            let err = resolve(&explicit, &env_of(Vec::new()))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn header_warnings_never_show_values() {
        for bad in [
            "api-key=topsecret,broken",
            "api-key=top%ZZsecret",
            "bad key=topsecret",
            "api-key=top\u{7f}secret",
        ] {
            let r = resolve_env(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]);
            assert_eq!(
                r.warnings.len(),
                1,
                "told once for both signals: {:?}",
                r.warnings
            );
            for w in &r.warnings {
                assert!(w.starts_with("OTEL_EXPORTER_OTLP_HEADERS: "), "{w}");
                assert!(!w.contains("secret"), "{w}");
            }
            assert!(r.metrics.headers.is_empty());
        }
        let r = resolve_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=topsecret")]);
        let shown = format!("{r:?}");
        assert!(shown.contains("api-key: <redacted>") && !shown.contains("topsecret"));
    }
}
