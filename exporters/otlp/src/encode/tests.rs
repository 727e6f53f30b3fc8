//! Encoding tests: cumulative and delta requests, chunking, histograms,
//! the resource.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, metric::Data, number_data_point::Value as Number,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use overrun::Snapshot;
use overrun::export::{self, Point, Value};

use super::delta::*;
use super::metrics::*;
use super::resource::*;
use super::*;

fn point_int(req: &ExportMetricsServiceRequest, metric: &str, function: &str) -> Option<i64> {
    let m = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == metric)?;
    let Some(Data::Sum(s)) = &m.data else {
        return None;
    };
    s.data_points
        .iter()
        .find(|p| {
            p.attributes.iter().any(|a| {
                a.key == "code.function.name"
                    && a.value == string(format!("{}::{function}", module_path!()))
            })
        })
        .and_then(|p| match p.value {
            Some(Number::AsInt(i)) => Some(i),
            _ => None,
        })
}

#[overrun::measure]
fn encoded_fn(n: u64) -> u64 {
    std::hint::black_box(n * 2)
}

/// The request that carries `encoded_fn` (other tests of this binary
/// register sites too, so there may be several).
fn one(snap: &Snapshot, now: u64) -> ExportMetricsServiceRequest {
    let reqs = metrics(
        snap,
        &Resource::default(),
        &[0.001],
        Health::default(),
        1,
        now,
    );
    reqs.into_iter()
        .find(|r| point_int(r, "overrun.calls", "encoded_fn").is_some())
        .expect("encoded_fn exported")
}

#[test]
fn cumulative_then_delta() {
    for i in 0..10 {
        encoded_fn(i);
    }
    let req = one(&overrun::snapshot(), 2);
    assert_eq!(point_int(&req, "overrun.calls", "encoded_fn"), Some(10));

    let mut delta = DeltaState::new(1);
    let mut first = req.clone();
    let accepted = delta.apply(&mut first);
    assert_eq!(point_int(&first, "overrun.calls", "encoded_fn"), Some(10));
    delta.accept(accepted);

    for i in 0..5 {
        encoded_fn(i);
    }
    let mut req = one(&overrun::snapshot(), 3);
    // A rejected export is not accepted: the next delta covers both.
    let _rejected = delta.apply(&mut req.clone());
    let accepted = delta.apply(&mut req);
    assert_eq!(point_int(&req, "overrun.calls", "encoded_fn"), Some(5));
    let m = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "overrun.duration")
        .unwrap();
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram")
    };
    let p = h
        .data_points
        .iter()
        .find(|p| p.attributes[0].value == string(format!("{}::encoded_fn", module_path!())))
        .unwrap();
    assert_eq!(p.count, 5);
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), 5);
    assert_eq!(p.start_time_unix_nano, 2);
    assert_eq!(
        h.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    delta.accept(accepted);
    let key = series_key(
        "overrun.calls",
        &[kv(
            "code.function.name",
            format!("{}::encoded_fn", module_path!()),
        )],
    );
    assert!(matches!(delta.accepted.get(&key), Some((Prev::Int(15), 3))));
}

#[overrun::measure(budget = "1s")]
fn chunked_fn(site: usize) -> usize {
    site
}

#[test]
fn many_sites_are_split_into_requests() {
    use overrun::__private::{Budget, Guard, Site, SiteKind};
    for i in 0..(SITES_PER_REQUEST * 2 + 1) {
        let name: &'static str = Box::leak(format!("chunk_site_{i}").into_boxed_str());
        let site: &'static Site = Box::leak(Box::new(Site::new(
            name,
            "chunks",
            file!(),
            i as u32,
            SiteKind::Sync,
            Budget::none(),
        )));
        Guard::enter(site).finish(false);
    }
    chunked_fn(1);
    let snap = overrun::snapshot();
    let reqs = metrics(
        &snap,
        &Resource::default(),
        &[0.001],
        Health::default(),
        1,
        2,
    );
    // Sites that ran and those that have not yet (zero series) both count.
    let sites = snap.sites.len() + snap.never_ran.len();
    assert_eq!(reqs.len(), sites.div_ceil(SITES_PER_REQUEST));
    let names = |r: &ExportMetricsServiceRequest| -> Vec<String> {
        r.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.clone())
            .collect()
    };
    // Process-wide series once, in the first request.
    assert!(names(&reqs[0]).contains(&"overrun.export.failures".to_owned()));
    assert!(
        reqs[1..]
            .iter()
            .all(|r| !names(r).contains(&"overrun.export.failures".to_owned()))
    );
    // Every site's calls exactly once across the requests.
    let total: usize = reqs
        .iter()
        .map(|r| {
            r.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .filter(|m| m.name == "overrun.calls")
                .map(|m| match &m.data {
                    Some(Data::Sum(s)) => s.data_points.len(),
                    _ => 0,
                })
                .sum::<usize>()
        })
        .sum();
    assert_eq!(total, sites);
    // A site without budgets has no violation series; one with a time
    // budget has exactly the `time` one.
    let kinds_of = |function: &str| -> Vec<String> {
        reqs.iter()
            .flat_map(|r| &r.resource_metrics[0].scope_metrics[0].metrics)
            .filter(|m| m.name == "overrun.budget.violations")
            .flat_map(|m| match &m.data {
                Some(Data::Sum(s)) => s.data_points.clone(),
                _ => Vec::new(),
            })
            .filter(|p| p.attributes[0].value == string(function))
            .map(|p| match &p.attributes[1].value {
                Some(AnyValue {
                    value: Some(AnyInner::StringValue(k)),
                }) => k.clone(),
                _ => String::new(),
            })
            .collect()
    };
    assert!(kinds_of("chunks::chunk_site_0").is_empty());
    assert_eq!(
        kinds_of(&format!("{}::chunked_fn", module_path!())),
        ["time"]
    );
}

/// An encoder of one request, bounds `bounds`, at time 1.
fn encoder(bounds: &[f64]) -> Encoder<'_> {
    Encoder {
        start: 0,
        now: 1,
        bounds,
        metrics: Vec::new(),
    }
}

#[test]
fn histogram_buckets_add_up() {
    let h = overrun::stats::Histogram::from_values([500, 1_500, 2_000_000, 20_000_000_000]);
    // The histogram's point, with a site's thresholds and exemplars.
    let point = |thresholds_ns, exemplars| {
        Point::new(
            Vec::new(),
            Value::Histogram {
                histogram: &h,
                count: 4,
                sum_seconds: 1e-8,
                thresholds_ns,
                exemplars,
            },
        )
    };
    let mut e = encoder(&[0.000_001, 0.001, 1.0]);
    e.add(&export::DURATION, &[point(&[], &[])]);
    let Some(Data::Histogram(hist)) = &e.metrics[0].data else {
        panic!()
    };
    let p = &hist.data_points[0];
    assert_eq!(p.bucket_counts, [1, 1, 1, 1]);
    assert_eq!(p.explicit_bounds, [0.000_001, 0.001, 1.0]);
    assert_eq!(p.max, Some(20.0));

    // A site's budget and objective thresholds are bounds of its own point.
    let slow = [overrun::exemplar::Exemplar::new(
        2_000_000, [7; 16], [8; 8], 42,
    )];
    let mut e = encoder(&[0.000_001, 0.001, 1.0]);
    e.add(
        &export::DURATION,
        &[point(&[1_000_000, 5_000_000_000], &slow)],
    );
    let Some(Data::Histogram(hist)) = &e.metrics[0].data else {
        panic!()
    };
    let p = &hist.data_points[0];
    assert_eq!(p.explicit_bounds, [0.000_001, 0.001, 1.0, 5.0]);
    assert_eq!(p.bucket_counts, [1, 1, 1, 0, 1]);
    // A slow call's trace, as an exemplar of the point.
    assert_eq!(p.exemplars.len(), 1);
    let e = &p.exemplars[0];
    assert_eq!(
        (e.trace_id.as_slice(), e.span_id.as_slice()),
        (&[7; 16][..], &[8; 8][..])
    );
    assert_eq!(e.time_unix_nano, 42);
    assert_eq!(
        e.value,
        Some(opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(0.002))
    );
}

#[test]
fn resource_layers_env_and_builder() {
    let env = |name: &str| match name {
        "OTEL_RESOURCE_ATTRIBUTES" => Some(
            "service.name=from-attrs, team=perf%20tools,deployment.environment=ci,broken".into(),
        ),
        "OTEL_SERVICE_NAME" => Some("from-env".into()),
        _ => None,
    };
    let get = |r: &Resource, k: &str| {
        r.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
    };
    let r = resource(
        None,
        &[("deployment.environment".into(), "prod".into())],
        &[],
        &env,
    );
    assert_eq!(get(&r, "service.name"), string("from-env"));
    assert_eq!(get(&r, "team"), string("perf tools"));
    assert_eq!(get(&r, "deployment.environment"), string("prod"));
    assert_eq!(get(&r, "telemetry.sdk.language"), string("rust"));
    assert_eq!(get(&r, "telemetry.sdk.name"), string("overrun"));
    assert_eq!(
        get(&r, "telemetry.sdk.version"),
        string(env!("CARGO_PKG_VERSION"))
    );
    // A random version 4 UUID, another one in another exporter.
    let uuid = |r: &Resource| match get(r, "service.instance.id") {
        Some(AnyValue {
            value: Some(AnyInner::StringValue(id)),
        }) => id,
        other => panic!("{other:?}"),
    };
    let id = uuid(&r);
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(&id[14..15], "4", "version 4: {id}");
    assert!("89ab".contains(&id[19..20]), "RFC 4122 variant: {id}");
    assert_ne!(uuid(&resource(None, &[], &[], &env)), id);
    // The application's resource: over the environment, under the builder;
    // its instance id is kept, typed values stay typed.
    let app = opentelemetry_sdk::Resource::builder_empty()
        .with_attributes([
            opentelemetry::KeyValue::new("service.name", "checkout"),
            opentelemetry::KeyValue::new("service.instance.id", "app-instance"),
            opentelemetry::KeyValue::new("team", "payments"),
            opentelemetry::KeyValue::new("shard", 7_i64),
        ])
        .build();
    let r = resource(
        None,
        &[("team".into(), "perf".into())],
        &crate::encode::from_sdk(&app),
        &env,
    );
    assert_eq!(get(&r, "service.name"), string("checkout"));
    assert_eq!(get(&r, "service.instance.id"), string("app-instance"));
    assert_eq!(get(&r, "team"), string("perf"));
    assert_eq!(
        get(&r, "shard"),
        Some(AnyValue {
            value: Some(AnyInner::IntValue(7))
        })
    );
    let r = resource(Some("svc"), &[], &[], &env);
    assert_eq!(get(&r, "service.name"), string("svc"));
    let r = resource(None, &[], &[], &|_| None);
    let Some(AnyValue {
        value: Some(AnyInner::StringValue(name)),
    }) = get(&r, "service.name")
    else {
        panic!("no service.name")
    };
    assert!(name.starts_with("unknown_service:"), "{name}");
}

#[overrun::measure]
fn relaid_fn() {}

/// The `overrun.duration` point of `relaid_fn` in `req`, if it is there.
fn relaid_point(
    req: &mut ExportMetricsServiceRequest,
) -> Option<&mut opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint> {
    let name = string(format!("{}::relaid_fn", module_path!()));
    req.resource_metrics
        .iter_mut()
        .flat_map(|r| &mut r.scope_metrics)
        .flat_map(|s| &mut s.metrics)
        .filter(|m| m.name == "overrun.duration")
        .find_map(|m| match &mut m.data {
            Some(Data::Histogram(h)) => h
                .data_points
                .iter_mut()
                .find(|p| p.attributes[0].value == name),
            _ => None,
        })
}

/// Every request of a snapshot taken now, at `now`, with one more bound
/// (a threshold a policy added) on `relaid_fn`'s histogram when `moved`.
fn relaid_requests(now: u64, moved: bool) -> Vec<ExportMetricsServiceRequest> {
    let mut reqs = metrics(
        &overrun::snapshot(),
        &Resource::default(),
        &[0.001],
        Health::default(),
        1,
        now,
    );
    if moved {
        for req in &mut reqs {
            if let Some(p) = relaid_point(req) {
                p.explicit_bounds.insert(0, 0.000_5);
                p.bucket_counts.insert(0, 0);
            }
        }
    }
    reqs
}

#[test]
fn a_histogram_whose_bounds_moved_takes_a_new_baseline() {
    let mut delta = DeltaState::new(1);
    let mut export = |now: u64, moved: bool| -> Option<(u64, u64)> {
        let mut reqs = relaid_requests(now, moved);
        let mut found = None;
        for req in &mut reqs {
            let accepted = delta.apply(req);
            delta.accept(accepted);
            if let Some(p) = relaid_point(req) {
                assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                found = Some((p.count, p.start_time_unix_nano));
            }
        }
        found
    };
    relaid_fn();
    relaid_fn();
    assert_eq!(export(2, false), Some((2, 1)));
    relaid_fn();
    // New bounds: no subtraction across layouts; this export only takes the
    // new baseline (the point is left out, not sent wrong).
    assert_eq!(export(3, true), None);
    relaid_fn();
    assert_eq!(
        export(4, true),
        Some((1, 3)),
        "a delta again, from the new baseline"
    );
}

#[overrun::measure]
fn windowed_fn() {}

#[test]
fn a_delta_carries_only_its_windows_exemplars() {
    windowed_fn();
    let mut req = one(&overrun::snapshot(), 20);
    // An exemplar from before the window (time 5) and one in it (15).
    let exemplar = |time_unix_nano| opentelemetry_proto::tonic::metrics::v1::Exemplar {
        time_unix_nano,
        ..Default::default()
    };
    for m in &mut req.resource_metrics[0].scope_metrics[0].metrics {
        if let Some(Data::Histogram(h)) = &mut m.data {
            for p in &mut h.data_points {
                p.exemplars = vec![exemplar(5), exemplar(15)];
            }
        }
    }
    // The window starts at 10.
    let _ = DeltaState::new(10).apply(&mut req);
    let mut seen = 0;
    for m in &req.resource_metrics[0].scope_metrics[0].metrics {
        if let Some(Data::Histogram(h)) = &m.data {
            for p in &h.data_points {
                let times: Vec<u64> = p.exemplars.iter().map(|e| e.time_unix_nano).collect();
                assert_eq!(times, [15]);
                seen += 1;
            }
        }
    }
    assert!(seen > 0);
}
