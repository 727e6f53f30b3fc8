//! The exporter through its public API and real HTTP on loopback. (The test
//! against a real Prometheus server is `e2e.sh`, run by the test command.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use overrun_prometheus::PrometheusExporter;

fn install() -> PrometheusExporter {
    PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .install()
        .expect("exporter starts")
}

/// One raw HTTP request; returns (status code, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    request_with(addr, method, path, "")
}

/// One raw HTTP request with extra header lines; the whole response.
fn request_raw(addr: SocketAddr, method: &str, path: &str, headers: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

/// One raw HTTP request with extra header lines; returns (status, body).
fn request_with(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String) {
    let resp = request_raw(addr, method, path, headers);
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[overrun::measure(budget = "1ms")]
fn sleepy(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn serves_the_schema() {
    let exporter = install();
    for _ in 0..4 {
        sleepy(2);
    }
    sleepy(0);
    let (status, text) = request(exporter.local_addr(), "GET", "/metrics");
    assert_eq!(status, 200);
    let l = r#"{function="sleepy",module="exporter""#;
    assert_eq!(value(&text, &format!("overrun_calls_total{l}}}")), 5.0);
    assert_eq!(value(&text, &format!("overrun_errors_total{l}}}")), 0.0);
    assert_eq!(value(&text, &format!("overrun_budget_seconds{l}}}")), 0.001);
    assert_eq!(
        value(
            &text,
            &format!("overrun_budget_violations_total{l},kind=\"time\"}}")
        ),
        4.0
    );
    // The histogram: none of the 2 ms calls under 1 ms, all under 10 s.
    assert_eq!(
        value(
            &text,
            &format!("overrun_duration_seconds_bucket{l},le=\"0.001\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("overrun_duration_seconds_bucket{l},le=\"10\"}}")
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            &format!("overrun_duration_seconds_bucket{l},le=\"+Inf\"}}")
        ),
        5.0
    );
    assert_eq!(
        value(&text, &format!("overrun_duration_seconds_count{l}}}")),
        5.0
    );
    assert!(value(&text, &format!("overrun_duration_seconds_sum{l}}}")) >= 0.008);
    assert!(text.contains("# TYPE overrun_duration_seconds histogram"));
    assert!(value(&text, "overrun_process_resident_memory_bytes") > 0.0);
    assert!(
        value(
            &text,
            r#"overrun_exporter_scrapes_total{exporter="prometheus"}"#
        ) >= 1.0
    );
    // Cumulative buckets never decrease.
    let prefix = format!("overrun_duration_seconds_bucket{l}");
    let buckets: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), overrun_prometheus::DEFAULT_BUCKETS.len() + 1);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[test]
fn unknown_paths_methods_and_head() {
    let exporter = install();
    let addr = exporter.local_addr();
    assert_eq!(request(addr, "GET", "/nope").0, 404);
    assert_eq!(request(addr, "GET", "/").0, 404);
    assert_eq!(request(addr, "POST", "/metrics").0, 405);
    let (status, body) = request(addr, "HEAD", "/metrics");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(request(addr, "GET", "/metrics?name[]=x").0, 200);
}

#[test]
fn basic_and_bearer_authentication() {
    // "prometheus:s3cret" in base64.
    let good = "Authorization: Basic cHJvbWV0aGV1czpzM2NyZXQ=\r\n";
    let basic = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .basic_auth("prometheus", "s3cret")
        .install()
        .unwrap();
    let addr = basic.local_addr();
    let (status, body) = request(addr, "GET", "/metrics");
    assert_eq!(status, 401);
    assert!(!body.contains("overrun_"), "nothing leaks: {body}");
    let raw = request_raw(addr, "GET", "/metrics", "");
    assert!(
        raw.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"overrun\""),
        "{raw}"
    );
    // "prometheus:s3creT", and the right value as a bearer token.
    for wrong in [
        "Authorization: Basic cHJvbWV0aGV1czpzM2NyZVQ=\r\n",
        "Authorization: Bearer cHJvbWV0aGV1czpzM2NyZXQ=\r\n",
        "Authorization: Basic cHJvbWV0aGV1czpzM2NyZXQ\r\n",
        "Authorization: Basic cHJvbWV0aGV1czpzM2NyZXQ==\r\n",
    ] {
        assert_eq!(
            request_with(addr, "GET", "/metrics", wrong).0,
            401,
            "{wrong}"
        );
    }
    let (status, body) = request_with(addr, "GET", "/metrics", good);
    assert_eq!(status, 200);
    assert!(body.contains("overrun_exporter_scrapes_total"));
    // Other paths too: nothing is told without credentials.
    assert_eq!(request(addr, "GET", "/nope").0, 401);
    // The scheme is case-insensitive (RFC 9110); the credentials are not.
    let lower = "authorization: basic cHJvbWV0aGV1czpzM2NyZXQ=\r\n";
    assert_eq!(request_with(addr, "GET", "/metrics", lower).0, 200);

    let bearer = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .bearer_token("t0ken")
        .install()
        .unwrap();
    let addr = bearer.local_addr();
    assert_eq!(request(addr, "GET", "/metrics").0, 401);
    assert_eq!(
        request_with(addr, "GET", "/metrics", "Authorization: Bearer t0kem\r\n").0,
        401
    );
    assert_eq!(
        request_with(addr, "GET", "/metrics", "Authorization: Bearer t0ken\r\n").0,
        200
    );
}

#[test]
fn a_port_in_use_is_an_error_naming_the_address() {
    let exporter = install();
    let err = PrometheusExporter::builder()
        .listen(exporter.local_addr())
        .install()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&exporter.local_addr().to_string()), "{text}");
    assert!(text.starts_with("cannot listen on"), "{text}");
    let bad = PrometheusExporter::builder().buckets(&[0.1, 0.01]).build();
    assert!(bad.unwrap_err().to_string().contains("must increase"));
}

#[test]
fn survives_a_thousand_concurrent_scrapes() {
    let exporter = install();
    let addr = exporter.local_addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(1000));
    let clients: Vec<_> = (0..1000)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    request(addr, "GET", "/metrics")
                })
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    for c in clients {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("overrun_exporter_scrapes_total"));
        ok += 1;
    }
    assert_eq!(ok, 1000);
    let (_, text) = request(addr, "GET", "/metrics");
    assert_eq!(
        value(
            &text,
            r#"overrun_export_failures_total{exporter="prometheus"}"#
        ),
        0.0
    );
    drop(exporter);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "stopped on drop"
    );
}

#[test]
fn appended_text_shares_the_endpoint() {
    let exporter = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .append(|| "# TYPE app_requests_total counter\napp_requests_total 3".to_string())
        .install()
        .unwrap();
    let (_, text) = request(exporter.local_addr(), "GET", "/metrics");
    assert_eq!(value(&text, "app_requests_total"), 3.0);
    assert!(text.ends_with('\n'));
}

#[test]
fn task_metrics_and_poll_histogram() {
    overrun::tasks::block_on(overrun::track("exported-task", async {}));
    let text = PrometheusExporter::builder().build().unwrap().render();
    let l = r#"{task="exported-task"}"#;
    assert_eq!(
        value(&text, &format!("overrun_tasks_spawned_total{l}")),
        1.0
    );
    assert_eq!(
        value(&text, &format!("overrun_tasks_completed_total{l}")),
        1.0
    );
    assert_eq!(value(&text, &format!("overrun_tasks_live{l}")), 0.0);
    assert_eq!(value(&text, &format!("overrun_task_polls_total{l}")), 1.0);
    assert_eq!(
        value(
            &text,
            &format!("overrun_task_poll_duration_seconds_count{l}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"overrun_task_poll_duration_seconds_bucket{task="exported-task",le="10"}"#
        ),
        1.0
    );
    assert!(text.contains("# TYPE overrun_task_poll_duration_seconds histogram"));
}

/// Started and stopped inside the application's async context: the
/// exporter's runtime lives on its own thread, so neither panics
/// ("cannot drop a runtime in a context where blocking is not allowed").
#[tokio::test]
async fn starts_and_stops_inside_a_tokio_runtime() {
    let exporter = install();
    let addr = exporter.local_addr();
    let (status, _) = tokio::task::spawn_blocking(move || request(addr, "GET", "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    drop(exporter);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// An exporter whose render takes 300 ms (an appended closure sleeps),
/// with a receiver told as each render starts.
fn slow_render(max_connections: usize) -> (PrometheusExporter, Receiver<()>) {
    let (started, renders) = std::sync::mpsc::channel();
    let exporter = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .max_connections(max_connections)
        .append(move || {
            let _ = started.send(());
            std::thread::sleep(Duration::from_millis(300));
            String::new()
        })
        .install()
        .unwrap();
    (exporter, renders)
}

/// A scrape started on another thread, its render under way on return.
fn scrape_being_answered(
    addr: SocketAddr,
    renders: &Receiver<()>,
) -> std::thread::JoinHandle<(u16, String)> {
    let scrape = std::thread::spawn(move || request(addr, "GET", "/metrics"));
    renders
        .recv_timeout(Duration::from_secs(10))
        .expect("the scrape's render started");
    scrape
}

/// Past `max_connections`, the oldest connection still waiting for its
/// request is closed; a scrape being answered never is.
#[test]
fn the_oldest_waiting_connection_makes_room() {
    let (exporter, renders) = slow_render(4);
    let addr = exporter.local_addr();
    let answering = scrape_being_answered(addr, &renders);
    // Ten connections that send nothing, while the scrape is rendered.
    let idle: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (status, body) = answering.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("overrun_exporter_scrapes_total"),
        "a full answer"
    );
    // The scrape and 10 idle ones, 4 at a time: 7 idle ones were closed
    // (the scrape, answering, was not). Its end left room for the next one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while exporter.closed().evicted < 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(exporter.closed().evicted, 7, "{:?}", exporter.closed());
    assert_eq!(request(addr, "GET", "/metrics").0, 200);
    assert_eq!(exporter.closed().evicted, 7, "{:?}", exporter.closed());
    drop(idle);
}

/// A panicking `append` closure fails that scrape (500, counted), not the
/// exporter: the next scrape is answered.
#[test]
fn a_panicking_append_fails_only_the_scrape() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = calls.clone();
    let exporter = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .append(move || {
            if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                panic!("the application's render broke");
            }
            String::new()
        })
        .install()
        .unwrap();
    let addr = exporter.local_addr();
    assert_eq!(request(addr, "GET", "/metrics").0, 500);
    assert_eq!(exporter.closed().errors, 1);
    assert_eq!(request(addr, "GET", "/metrics").0, 200);
}

/// Stopping the exporter lets a scrape being answered finish.
#[test]
fn a_scrape_being_answered_finishes_when_the_exporter_stops() {
    let (exporter, renders) = slow_render(1024);
    let addr = exporter.local_addr();
    let scrape = scrape_being_answered(addr, &renders);
    drop(exporter);
    let (status, body) = scrape.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("overrun_exporter_scrapes_total"),
        "a full answer"
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
