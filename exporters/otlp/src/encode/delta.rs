//! Delta temporality: cumulative requests turned into the change since the
//! last values the collector accepted.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AnyInner};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, metric::Data, number_data_point::Value as Number,
};

/// The last accepted cumulative value of one series.
#[derive(Debug, Clone)]
pub(crate) enum Prev {
    Int(i64),
    Double(f64),
    Histogram {
        count: u64,
        sum: f64,
        buckets: Vec<u64>,
        bounds: Vec<f64>,
    },
}

/// Turns cumulative requests into deltas against the last values the
/// collector accepted, series by series (a round may send several requests
/// and only some may get through).
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    /// Per series: its last accepted cumulative value and when it was taken
    /// (Unix ns), the start of its next delta.
    pub(super) accepted: HashMap<String, (Prev, u64)>,
    /// Start of a series never accepted before.
    start: u64,
}

/// What [`DeltaState::apply`] hands back for [`DeltaState::accept`].
pub(crate) type Pending = Vec<(String, Prev, u64)>;

pub(super) fn series_key(metric: &str, attributes: &[KeyValue]) -> String {
    let mut key = String::from(metric);
    for a in attributes {
        key.push('\u{1f}');
        key.push_str(&a.key);
        key.push('=');
        if let Some(AnyValue {
            value: Some(AnyInner::StringValue(s)),
        }) = &a.value
        {
            key.push_str(s);
        }
    }
    key
}

impl DeltaState {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            accepted: HashMap::new(),
            start,
        }
    }

    fn baseline(&self, key: &str) -> (Option<&Prev>, u64) {
        match self.accepted.get(key) {
            Some((prev, at)) => (Some(prev), *at),
            None => (None, self.start),
        }
    }

    /// Rewrites the sums and histograms of the cumulative `req` as deltas
    /// since each series' last accepted export; returns the cumulative
    /// values to [`DeltaState::accept`] once the collector took it.
    pub(crate) fn apply(&self, req: &mut ExportMetricsServiceRequest) -> Pending {
        let mut next = Vec::new();
        for m in req
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            match &mut m.data {
                Some(Data::Sum(sum)) => {
                    sum.aggregation_temporality = AggregationTemporality::Delta as i32;
                    for p in &mut sum.data_points {
                        let key = series_key(&m.name, &p.attributes);
                        let (old, since) = self.baseline(&key);
                        p.start_time_unix_nano = since;
                        let now = p.time_unix_nano;
                        match &mut p.value {
                            Some(Number::AsInt(v)) => {
                                let cumulative = *v;
                                if let Some(Prev::Int(old)) = old {
                                    *v -= old;
                                }
                                next.push((key, Prev::Int(cumulative), now));
                            }
                            Some(Number::AsDouble(v)) => {
                                let cumulative = *v;
                                if let Some(Prev::Double(old)) = old {
                                    *v -= old;
                                }
                                next.push((key, Prev::Double(cumulative), now));
                            }
                            None => {}
                        }
                    }
                }
                Some(Data::Histogram(h)) => {
                    h.aggregation_temporality = AggregationTemporality::Delta as i32;
                    h.data_points.retain_mut(|p| {
                        let key = series_key(&m.name, &p.attributes);
                        let (old, since) = self.baseline(&key);
                        p.start_time_unix_nano = since;
                        let cumulative = Prev::Histogram {
                            count: p.count,
                            sum: p.sum.unwrap_or(0.0),
                            buckets: p.bucket_counts.clone(),
                            bounds: p.explicit_bounds.clone(),
                        };
                        // The maximum is over the whole run, not this window.
                        p.max = None;
                        // Only the exemplars of this window: older ones went
                        // with the export that covered them.
                        p.exemplars.retain(|e| e.time_unix_nano >= since);
                        let now = p.time_unix_nano;
                        if let Some(Prev::Histogram {
                            count,
                            sum,
                            buckets,
                            bounds,
                        }) = old
                        {
                            if *bounds != p.explicit_bounds {
                                // Its bounds moved (a policy changed the
                                // site's budget or objectives): buckets of
                                // two layouts cannot be subtracted. This
                                // export only takes the new baseline; the
                                // next one is a delta again.
                                next.push((key, cumulative, now));
                                return false;
                            }
                            p.count -= count;
                            p.sum = p.sum.map(|s| s - sum);
                            for (b, old) in p.bucket_counts.iter_mut().zip(buckets) {
                                *b -= old;
                            }
                        }
                        next.push((key, cumulative, now));
                        true
                    });
                }
                _ => {}
            }
        }
        next
    }

    /// The collector took the request `apply` returned these values for.
    pub(crate) fn accept(&mut self, values: Pending) {
        for (key, prev, at) in values {
            self.accepted.insert(key, (prev, at));
        }
    }
}
