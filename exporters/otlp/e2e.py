#!/usr/bin/env python3
"""End-to-end test of overrun-otlp against a real OTLP collector (rotel).

Started by e2e.sh, which installs rotel from PyPI and builds the driver
(examples/otlp_driver.rs). For each protocol (gRPC, HTTP/protobuf; plain, gzipped, and
over TLS through nginx with a test CA) the driver makes a known number of
calls and budget violations; the test reads what the
collector printed (--debug-log metrics/logs, detailed) and checks the metric
values, the violation log records and their attributes exactly. Then it
stops the collector mid-run, checks the failures are counted, restarts it and
checks that the final cumulative figures and every violation event arrived.
Last, processes that end without dropping the exporter (process::exit from a
thread, SIGTERM, under #[overrun::main]) and the service example stopped by
SIGTERM (its graceful shutdown) must deliver the last interval's counts and
events.

Any failure, including a collector that cannot start, exits non-zero.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Set from the command line when run; a script that imports this module
# (scripts/soak.py, for Collector and parse) sets ROTEL and WORK itself.
DRIVER = ROTEL = SERVICE = WORK = None
if __name__ == "__main__":
    DRIVER, ROTEL, SERVICE = sys.argv[1:4]
    WORK = tempfile.mkdtemp(prefix="overrun-otlp-e2e-")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SECRET = "e2e-s3cret-value"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """One rotel-agent process; its stdout goes to a file we parse."""

    def __init__(self, grpc, http, name):
        self.grpc, self.http = grpc, http
        self.out_path = os.path.join(WORK, name + ".out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [
                ROTEL, "start",
                "--exporter", "blackhole",
                "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                "--otlp-http-endpoint", f"127.0.0.1:{http}",
                "--debug-log", "metrics", "--debug-log", "logs",
                "--debug-log-verbosity", "detailed",
                "--pid-file", os.path.join(WORK, name + ".pid"),
                "--log-file", os.path.join(WORK, name + ".log"),
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while not (self.accepts(grpc) and self.accepts(http)):
            if self.proc.poll() is not None or time.time() > deadline:
                print(self.text()[-3000:])
                sys.exit(f"rotel-agent did not start (exit {self.proc.poll()})")
            time.sleep(0.05)

    @staticmethod
    def accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def text(self):
        with open(self.out_path, "rb") as f:
            return ANSI.sub("", f.read().decode("utf-8", "replace"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def parse(text):
    """The collector's detailed debug output as metric points and log records.

    Returns (points, logs): points are dicts with resource, metric, attrs and
    value / count / sum / buckets (and exemplars: dicts with Trace ID, Span
    ID, Timestamp, Value); logs are dicts with resource, event, body, attrs,
    trace_id, span_id.
    """
    points, logs = [], []
    resource, metric, current, section = {}, None, None, None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("ResourceMetrics #", "ResourceLog #")):
            resource, section, current = {}, "resource", None
        elif line == "Resource attributes:":
            section = "resource"
        elif line == "Descriptor:":
            metric, section = {}, "descriptor"
        elif line.startswith(("NumberDataPoints #", "HistogramDataPoints #")):
            current = {"resource": resource, "metric": metric.get("Name"),
                       "attrs": {}, "buckets": []}
            points.append(current)
            section = None
        elif line.startswith("LogRecord #"):
            current = {"resource": resource, "attrs": {}, "trace_id": None,
                       "span_id": None}
            logs.append(current)
            section = None
        elif line in ("Data point attributes:", "Attributes:"):
            section = "attrs"
        elif line.startswith("Exemplar #") and current is not None:
            current.setdefault("exemplars", []).append({})
            section = "exemplar"
        elif line.startswith("-> "):
            key, _, value = line[3:].partition(": ")
            m = re.fullmatch(r"(Str|Int|Double|Bool)\((.*)\)", value)
            if m:
                kind, v = m.groups()
                value = int(v) if kind == "Int" else float(v) if kind == "Double" else v
            if section == "resource":
                resource[key] = value
            elif section == "descriptor":
                metric[key] = value
            elif section == "attrs" and current is not None:
                current["attrs"][key] = value
            elif section == "exemplar" and current is not None:
                current["exemplars"][-1][key] = value
        elif current is not None:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "Value":
                current["value"] = float(value)
            elif key == "Count":
                current["count"] = int(value)
            elif key == "Sum":
                current["sum"] = float(value)
            elif key.startswith("Buckets #"):
                current["buckets"].append(int(line.rsplit(":", 1)[1]))
            elif key == "EventName":
                current["event"] = value
            elif key == "SeverityText":
                current["severity"] = value
            elif key == "Body":
                current["body"] = value
            elif key == "Trace ID":
                current["trace_id"] = value or None
            elif key == "Span ID":
                current["span_id"] = value or None
    return points, logs


class Driver:
    """The instrumented program, commanded line by line."""

    def __init__(self, protocol, collector, extra_env=None):
        port = collector.grpc if protocol == "grpc" else collector.http
        env = dict(os.environ)
        env.update({
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
            "OVERRUN_REPORT": "off",
        })
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.output = []
        self.expect("ready")

    def expect(self, prefix, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith(prefix):
                return line.strip()
        sys.exit(f"driver: no {prefix!r} line; output:\n{''.join(self.output)}")

    def send(self, command, answer):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.expect(answer)

    def finish(self):
        line = self.send("quit", "stats")
        self.proc.wait(30)
        return dict(kv.split("=") for kv in line.split()[1:])


def ours(items, pid):
    return [i for i in items if i["resource"].get("test.run") == str(pid)]


# The schema's label names, as OTLP's attribute keys (docs/metrics.md).
OTLP_KEYS = {"kind": "overrun.kind", "signal": "overrun.signal", "task": "overrun.task",
             "lock": "overrun.lock", "mode": "overrun.lock.mode",
             "contended": "overrun.lock.contended"}


def site_name(attrs):
    """The function of a point or record: `code.function.name` is fully
    qualified (`otlp_driver::handle`); the test names it `handle`."""
    return str(attrs.get("code.function.name", "")).rsplit("::", 1)[-1]


def matches(attrs, key, value):
    if key == "function":
        return site_name(attrs) == value
    return attrs.get(OTLP_KEYS.get(key, key)) == value


def last_value(points, metric, **attrs):
    matching = [p for p in points if p["metric"] == metric
                and all(matches(p["attrs"], k, v) for k, v in attrs.items())]
    return matching[-1] if matching else None


def wait_for(collector, pid, metric, expected, timeout=15, **attrs):
    """Waits until the collector printed `metric` at `expected` (it batches)."""
    deadline = time.time() + timeout
    while True:
        points, logs = parse(collector.text())
        points, logs = ours(points, pid), ours(logs, pid)
        p = last_value(points, metric, **attrs)
        if (p and p.get("value", p.get("count")) == expected) or time.time() > deadline:
            return points, logs
        time.sleep(0.1)


def check_run(points, logs, label, calls, slow, events=None, trace=None, traced=0, failures=0):
    events = slow if events is None else events
    handle = {"function": "handle"}
    p = last_value(points, "overrun.calls", **handle)
    check(p is not None and p["attrs"].get("code.function.name") == "otlp_driver::handle"
          and "function" not in p["attrs"] and "module" not in p["attrs"],
          f"{label}: the site is code.function.name, fully qualified")
    check(p is not None and p["value"] == calls,
          f"{label}: overrun.calls = {calls} (got {p and p['value']})")
    p = last_value(points, "overrun.errors", **handle)
    check(p is not None and p["value"] == 0, f"{label}: overrun.errors = 0")
    p = last_value(points, "overrun.budget.violations", kind="time", **handle)
    check(p is not None and p["value"] == slow,
          f"{label}: overrun.budget.violations{{kind=time}} = {slow} (got {p and p['value']})")
    p = last_value(points, "overrun.budget", **handle)
    check(p is not None and p["value"] == 0.02, f"{label}: overrun.budget = 0.02 s")
    h = last_value(points, "overrun.duration", **handle)
    ok = h is not None and h["count"] == calls and sum(h["buckets"]) == calls
    check(ok, f"{label}: overrun.duration count = bucket total = {calls}")
    if h:
        # Bounds ..., 0.025, 0.05, ...: the 30 ms calls land above 0.025 (most
        # in (0.025, 0.05]; a sleep on a loaded machine can overshoot 50 ms).
        check(sum(h["buckets"][14:]) == slow and sum(h["buckets"][:13]) == calls - slow,
              f"{label}: {slow} slow calls above 25ms, the rest under 10ms "
              f"(buckets {h['buckets']})")
        check(0.030 * slow <= h["sum"] < 0.030 * slow + 0.02 * (calls - slow) + 0.05 * slow,
              f"{label}: overrun.duration sum {h['sum']:.4f} s plausible")
    p = last_value(points, "overrun.export.failures", signal="metrics")
    check(p is not None and (p["value"] >= 1 if failures else p["value"] == 0),
          f"{label}: overrun.export.failures{{signal=metrics}} "
          f"{'>= 1' if failures else '= 0'} (got {p and p['value']})")
    if points:
        res = points[-1]["resource"]
        check(res.get("service.name") == "overrun-otlp-e2e" and "service.instance.id" in res,
              f"{label}: resource has service.name and service.instance.id")

    check(len(logs) == events, f"{label}: {events} violation log records (got {len(logs)})")
    good = [
        lg for lg in logs
        if lg.get("event") == "overrun.budget.violation"
        and lg["attrs"].get("code.function.name") == "otlp_driver::handle"
        and lg["attrs"].get("overrun.kind") == "time"
        and lg["attrs"].get("overrun.limit") == 20_000_000
        and isinstance(lg["attrs"].get("overrun.observed"), int)
        and lg["attrs"]["overrun.observed"] >= 30_000_000
        and lg["attrs"].get("overrun.unit") == "ns"
        and lg["attrs"].get("thread.name") == "main"
        and str(lg["attrs"].get("code.file.path", "")).endswith("otlp_driver.rs")
    ]
    check(len(good) == len(logs) and logs,
          f"{label}: every record has event name and attributes "
          f"code.function.name, overrun.kind/observed/limit/unit, thread.name, code.*")
    if trace and h:
        # The slow calls made inside the span are exemplars of the duration
        # point, with its trace and span id; those made outside none.
        trace_id, span_id = trace
        ex = h.get("exemplars", [])
        check(len(ex) == min(traced, 4)
              and all(e.get("Trace ID") == trace_id and e.get("Span ID") == span_id
                      and float(e.get("Value", 0)) > 0.02 for e in ex),
              f"{label}: the duration point carries the {traced} traced slow calls as "
              f"exemplars, with the span's trace/span id (got {ex})")
    if trace:
        trace_id, span_id = trace
        with_trace = [lg for lg in logs if lg["trace_id"] == trace_id and lg["span_id"] == span_id]
        without = [lg for lg in logs if lg["trace_id"] is None]
        check(len(with_trace) == traced and len(without) == events - traced,
              f"{label}: {traced} records carry the active span's trace/span id, "
              f"{events - traced} (no span) carry none")


def protocol_run(protocol, collector):
    label = protocol
    d = Driver(protocol, collector, {
        "OTEL_EXPORTER_OTLP_HEADERS": f"api-key={SECRET}",
        "OTLP_DRIVER_TRACE": "1",
        # The builder's service name wins over the variable; attributes add up.
        "OTEL_SERVICE_NAME": "name-from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=e2e,team=perf%20tools",
    })
    trace = d.send("calls 40 3 traced", "trace").split()[1:]
    d.expect("called")
    d.send("export", "exported")
    d.send("calls 10 2", "called")
    stats = d.finish()
    check(stats["metric_failures"] == "0" and stats["log_failures"] == "0",
          f"{label}: driver counted no failed export ({stats})")
    check(stats["events_sent"] == "5", f"{label}: driver sent 5 events")
    traced_lines = sum(1 for line in d.output if " TRACE " in line or " DEBUG " in line)
    check(traced_lines > 0 and SECRET not in "".join(d.output),
          f"{label}: header value in none of the {traced_lines} TRACE/DEBUG lines "
          f"of the transport crates")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 55,
                            function="handle")
    check_run(points, logs, label, calls=55, slow=5, trace=trace, traced=3)
    for items, what in ((points, "metrics"), (logs, "logs")):
        res = items[-1]["resource"] if items else {}
        check(res.get("service.name") == "overrun-otlp-e2e"
              and res.get("deployment.environment") == "e2e"
              and res.get("team") == "perf tools"
              and res.get("host.name"),
              f"{label}: {what} resource = builder + OTEL_RESOURCE_ATTRIBUTES + host ({res})")
    check(SECRET not in collector.text(), f"{label}: header value not in the collector's output")


def objective_run(protocol, collector):
    """A p99 objective crossed and met again: one violation record of kind
    objective, then one recovery record (INFO, its own event name)."""
    label = f"{protocol} objective"
    d = Driver(protocol, collector)
    d.send("objective", "objective breached")
    d.expect("objective met")
    d.send("export", "exported")
    d.finish()
    deadline = time.time() + 15
    while True:
        _, logs = parse(collector.text())
        logs = [lg for lg in ours(logs, d.proc.pid)
                if lg["attrs"].get("code.function.name") == "otlp_driver::served"]
        if len(logs) >= 2 or time.time() > deadline:
            break
        time.sleep(0.1)
    breach = [lg for lg in logs if lg.get("event") == "overrun.budget.violation"]
    recovered = [lg for lg in logs if lg.get("event") == "overrun.objective.recovered"]
    check(len(breach) == 1 and breach[0]["attrs"].get("overrun.kind") == "objective"
          and breach[0]["attrs"].get("overrun.objective") == "p99"
          and breach[0]["attrs"].get("overrun.unit") == "ns"
          and breach[0]["attrs"].get("overrun.limit") == 20_000_000
          and breach[0]["attrs"].get("overrun.observed", 0) > 20_000_000,
          f"{label}: one violation record, kind objective, p99, observed over 20 ms ({breach})")
    check(len(recovered) == 1 and recovered[0].get("severity") == "INFO"
          and recovered[0]["attrs"].get("overrun.objective") == "p99"
          and recovered[0]["attrs"].get("overrun.window_ns") == 1_000_000_000
          and recovered[0]["attrs"].get("overrun.observed", 10**12) <= 20_000_000,
          f"{label}: one recovery record, INFO, event overrun.objective.recovered ({recovered})")


def trace_order_run(protocol, collector):
    """Trace ids on violation events whatever the order of
    `#[tracing::instrument]` and `#[overrun::measure]` (spans made
    OpenTelemetry spans by tracing-opentelemetry), and on a leaked task's
    lifetime violation, raised on the watchdog thread: the trace it was
    spawned in."""
    label = f"{protocol} trace order"
    # No metrics export before the end: only the watchdog checks lifetimes.
    d = Driver(protocol, collector, {"OTEL_METRIC_EXPORT_INTERVAL": "3600000"})
    _, trace, above, below = d.send("ordered", "ordered").split()
    _, leak_trace, leak_span = d.send("leak", "leak").split()
    d.finish()
    deadline = time.time() + 15
    while True:
        _, logs = parse(collector.text())
        logs = ours(logs, d.proc.pid)
        if len(logs) >= 3 or time.time() > deadline:
            break
        time.sleep(0.1)
    by_site = {}
    for lg in logs:
        name = lg["attrs"].get("overrun.task") or site_name(lg["attrs"])
        by_site.setdefault(name, []).append(lg)
    for function, span in (("traced_above", above), ("traced_below", below)):
        got = [(lg["trace_id"], lg["span_id"]) for lg in by_site.get(function, [])]
        check(got == [(trace, span)],
              f"{label}: {function}'s event carries the trace and the function's own span "
              f"({got} against {(trace, span)})")
    got = [(lg["attrs"].get("overrun.kind"), lg["attrs"].get("thread.name"), lg["trace_id"],
            lg["span_id"]) for lg in by_site.get("leaky", [])]
    check(got == [("lifetime", "overrun-watchdog", leak_trace, leak_span)],
          f"{label}: the leaked task's lifetime event, raised on the watchdog thread, carries "
          f"the span it was spawned in ({got} against {(leak_trace, leak_span)})")


def outage_run(protocol):
    label = f"{protocol} outage"
    grpc, http = free_port(), free_port()
    first = Collector(grpc, http, f"outage-{protocol.replace('/', '-')}-1")
    d = Driver(protocol, first)
    pid = d.proc.pid
    d.send("calls 20 2", "called")
    d.send("export", "exported")
    first.stop()
    d.send("calls 30 3", "called")
    failed = d.send("fail", "failed")
    check("connect" in failed.lower(),
          f"{label}: the failure is counted with its reason, a refused connection ({failed})")
    second = Collector(grpc, http, f"outage-{protocol.replace('/', '-')}-2")
    d.send("export", "exported")
    d.send("calls 5 1", "called")
    stats = d.finish()
    check(int(stats["metric_failures"]) >= 1, f"{label}: driver counted failed exports ({stats})")
    # Told on stderr once per reason, and once when it recovered: not once a
    # round.
    said = [line for line in d.output if line.startswith("overrun-otlp: metrics export")]
    failing = [line for line in said if " failing: " in line]
    reasons = {line.split(" failing: ", 1)[1] for line in failing}
    check(len(failing) >= 1 and len(failing) == len(reasons),
          f"{label}: each failure reason told once on stderr ({len(failing)} lines, "
          f"{len(reasons)} reasons, {stats['metric_failures']} failures)")
    check(sum(" recovered after " in line for line in said) == 1,
          f"{label}: the recovery told once on stderr ({said})")
    check(stats["queue_dropped"] == "0" and stats["events_pending"] == "0",
          f"{label}: no event dropped or left pending")
    _, logs_before = parse(first.text())
    logs_before = ours(logs_before, pid)
    points, logs_after = wait_for(second, pid, "overrun.calls", 61, function="handle")
    check(len(logs_before) == 2, f"{label}: 2 events reached the first collector")
    # The restarted collector sees only exports made after it came back:
    # the cumulative figures must still be complete, and the events raised
    # while it was down must arrive there.
    check_run(points, logs_after, label + " (after restart)", calls=61, slow=6, events=4,
              failures=1)
    second.stop()


class TlsProxy:
    """nginx terminating TLS (a test CA's certificate for 127.0.0.1) in
    front of the collector: HTTP/1.1 to its HTTP receiver, HTTP/2 to gRPC."""

    def __init__(self, collector):
        d = os.path.join(WORK, "tls")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        self.ca = os.path.join(d, "ca.pem")
        run = lambda *args: subprocess.run(args, check=True, capture_output=True, cwd=d)
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=overrun e2e test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
        self.grpc, self.http = free_port(), free_port()
        tls = f"ssl_certificate {d}/server.pem; ssl_certificate_key {d}/server.key;"
        conf = f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx.err;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.http} ssl;
        {tls}
        location / {{ proxy_pass http://127.0.0.1:{collector.http}; }}
    }}
    server {{
        listen 127.0.0.1:{self.grpc} ssl http2;
        {tls}
        location / {{ grpc_pass grpc://127.0.0.1:{collector.grpc}; }}
    }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", os.path.join(d, "nginx.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not (Collector.accepts(self.grpc) and Collector.accepts(self.http)):
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("nginx (TLS proxy) did not start: "
                         + open(os.path.join(d, "nginx.err")).read()[-2000:])
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def short_run(label, protocol, collector, env):
    """10 calls, one over budget: all of it must arrive."""
    d = Driver(protocol, collector, env)
    d.send("calls 9 1", "called")
    d.send("export", "exported")
    stats = d.finish()
    check(stats["metric_failures"] == "0", f"{label}: exports accepted ({stats})")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 10, function="handle")
    p = last_value(points, "overrun.calls", function="handle")
    check(p is not None and p["value"] == 10, f"{label}: overrun.calls = 10 arrived")
    check(len(logs) == 1 and site_name(logs[0]["attrs"]) == "handle",
          f"{label}: the violation event arrived")


def environment_runs(collector):
    """The specification's variables against the real collector: invalid
    values warned about and replaced (the data still arrives), a signal
    turned off, the SDK disabled, and one signal over another protocol."""
    label = "invalid variables"
    d = Driver("http/protobuf", collector, {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
        "OTEL_EXPORTER_OTLP_HEADERS": "broken",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "10s",
        "OTEL_SDK_DISABLED": "maybe",
    })
    d.send("calls 9 1", "called")
    d.send("export", "exported")
    stats = d.finish()
    said = "".join(d.output)
    for var in ("OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_SDK_DISABLED"):
        check(said.count(f"overrun-otlp: {var}: ") == 1, f"{label}: {var} warned about once")
    check(stats["metric_failures"] == "0", f"{label}: exports accepted ({stats})")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 10, function="handle")
    p = last_value(points, "overrun.calls", function="handle")
    check(p is not None and p["value"] == 10 and len(logs) == 1,
          f"{label}: the defaults applied and everything arrived")

    label = "OTEL_LOGS_EXPORTER=none"
    d = Driver("http/protobuf", collector, {"OTEL_LOGS_EXPORTER": "none"})
    d.send("calls 9 1", "called")
    d.send("export", "exported")
    stats = d.finish()
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 10, function="handle")
    p = last_value(points, "overrun.calls", function="handle")
    check(p is not None and p["value"] == 10, f"{label}: metrics arrived")
    check(not logs and stats["events_pending"] == "0", f"{label}: no violation event kept or sent")

    label = "OTEL_SDK_DISABLED=true"
    d = Driver("http/protobuf", collector, {"OTEL_SDK_DISABLED": "true"})
    d.send("calls 9 1", "called")
    check(d.send("flush", "flushed") == "flushed true", f"{label}: flush has nothing to do")
    stats = d.finish()
    time.sleep(1)
    points, logs = parse(collector.text())
    check(not ours(points, d.proc.pid) and not ours(logs, d.proc.pid),
          f"{label}: nothing reached the collector")
    check(all(v == "0" for v in stats.values()), f"{label}: nothing counted ({stats})")

    label = "logs over gRPC, metrics over HTTP"
    d = Driver("http/protobuf", collector, {
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://127.0.0.1:{collector.grpc}",
    })
    d.send("calls 9 1", "called")
    d.send("export", "exported")
    stats = d.finish()
    check(stats["metric_failures"] == "0" and stats["log_failures"] == "0",
          f"{label}: both accepted ({stats})")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 10, function="handle")
    check(len(logs) == 1, f"{label}: the violation event arrived over gRPC")


def storm_run(collector):
    """A storm of violations of one function: its events are limited, each
    carries `overrun.suppressed`, and events plus suppressed add up to every
    violation; another function's one event still arrives."""
    label = "storm"
    d = Driver("http/protobuf", collector, {"OTEL_BLRP_SCHEDULE_DELAY": "100"})
    d.send("storm 3000", "stormed")
    d.send("calls 0 1", "called")  # one slow `handle`: its only event
    time.sleep(1.2)  # the next second: the storm's last event carries the rest
    d.send("storm 1", "stormed")
    d.send("export", "exported")
    stats = d.finish()
    deadline = time.time() + 15
    while True:
        _, logs = parse(collector.text())
        logs = ours(logs, d.proc.pid)
        storm = [lg for lg in logs if site_name(lg["attrs"]) == "stormy"]
        total = sum(1 + int(lg["attrs"].get("overrun.suppressed", 0)) for lg in storm)
        if total >= 3001 or time.time() > deadline:
            break
        time.sleep(0.2)
    check(total == 3001, f"{label}: events plus overrun.suppressed = 3001 violations "
          f"({len(storm)} events, total {total})")
    check(0 < len(storm) < 3001 and any("overrun.suppressed" in lg["attrs"] for lg in storm),
          f"{label}: the storm was limited, its events carry overrun.suppressed")
    handle = [lg for lg in logs if site_name(lg["attrs"]) == "handle"]
    check(len(handle) == 1, f"{label}: another function's only event arrived ({len(handle)})")
    check(int(stats["rate_limited"]) == 3001 - len(storm),
          f"{label}: the rest counted as rate limited ({stats})")


def tls_run(protocol, collector, proxy):
    label = f"{protocol} over TLS"
    port = proxy.grpc if protocol == "grpc" else proxy.http
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{port}"}
    short_run(label, protocol, collector, dict(endpoint, OTEL_EXPORTER_OTLP_CERTIFICATE=proxy.ca))
    # Without the test CA the server is not trusted: a counted failure.
    d = Driver(protocol, collector, endpoint)
    failed = d.send("fail", "failed")
    check("certificate" in failed.lower() or "unknownissuer" in failed.lower(),
          f"{label}: an untrusted certificate is a counted failure ({failed})")
    d.finish()


def ending_runs(protocol, collector):
    """The process ends without the exporter being dropped: process::exit
    from a thread, and SIGTERM. Nothing is exported on the interval (an
    hour); the last export on the way out must carry every count and event."""
    hour = {"OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
    d = Driver(protocol, collector, hour)
    d.send("calls 5 2", "called")
    d.proc.stdin.write("exit\n")
    d.proc.stdin.flush()
    code = d.proc.wait(30)
    check(code == 0, f"{protocol} process::exit: exit status kept (got {code})")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 7, function="handle")
    p = last_value(points, "overrun.calls", function="handle")
    check(p is not None and p["value"] == 7,
          f"{protocol} process::exit: the last export carried 7 calls (got {p and p['value']})")
    check(len(logs) == 2, f"{protocol} process::exit: 2 violation events arrived (got {len(logs)})")

    d = Driver(protocol, collector, hour)
    d.send("calls 4 1", "called")
    d.send("wait", "waiting")
    d.proc.send_signal(signal.SIGTERM)
    code = d.proc.wait(30)
    check(code == -signal.SIGTERM, f"{protocol} SIGTERM: the process ended by SIGTERM (got {code})")
    points, logs = wait_for(collector, d.proc.pid, "overrun.calls", 5, function="handle")
    p = last_value(points, "overrun.calls", function="handle")
    check(p is not None and p["value"] == 5,
          f"{protocol} SIGTERM: the last export carried 5 calls (got {p and p['value']})")
    check(len(logs) == 1, f"{protocol} SIGTERM: the violation event arrived (got {len(logs)})")


def silent_exit_run(protocol):
    """A collector that accepts connections and never answers delays the
    exit by at most the exporter's timeout (2 s here)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]

    class Silent:
        grpc = http = port

    try:
        d = Driver(protocol, Silent, {"OTEL_METRIC_EXPORT_INTERVAL": "3600000"})
        d.send("calls 3 0", "called")
        started = time.time()
        d.proc.stdin.write("exit\n")
        d.proc.stdin.flush()
        code = d.proc.wait(30)
        took = time.time() - started
        check(code == 0 and took < 4.0,
              f"{protocol} silent collector: exit after {took:.1f} s, bounded by the timeout (status {code})")
    finally:
        silent.close()


def service_run(collector):
    """The service example, stopped by SIGTERM: its graceful shutdown calls
    `shutdown()` on the exporter, and the last interval's counts and events
    reach the collector."""
    import urllib.request
    port, run = free_port(), f"service-{os.getpid()}"
    env = dict(os.environ)
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.http}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        "OTEL_RESOURCE_ATTRIBUTES": f"test.run={run}",
    })
    log = open(os.path.join(WORK, "service.log"), "wb")
    proc = subprocess.Popen([SERVICE, "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 20
    while not Collector.accepts(port):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("the service example did not start:\n"
                     + open(os.path.join(WORK, "service.log")).read()[-3000:])
        time.sleep(0.05)
    for path in ["/users/1", "/users/2", "/users/3", "/slow?ms=40", "/slow?ms=40",
                 "/search?ms=30", "/search?ms=1"]:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}").read()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    check(code == 0, f"service: graceful shutdown on SIGTERM, exit 0 (got {code})")
    points, logs = wait_for(collector, run, "overrun.calls", 2, function="slow")
    for function, calls in (("get_user", 3), ("slow", 2)):
        p = last_value(points, "overrun.calls", function=function)
        check(p is not None and p["value"] == calls,
              f"service: {function} calls = {calls} in the last export (got {p and p['value']})")
    slow = [lg for lg in logs if site_name(lg["attrs"]) == "slow"]
    check(len(slow) == 2, f"service: the 2 slow-call events arrived (got {len(slow)})")
    # The `search` handler's tracing span, budgeted by its own field.
    p = last_value(points, "overrun.calls", function="search")
    check(p is not None and p["value"] == 2
          and p["attrs"].get("code.function.name") == "service::search",
          f"service: the tracing span search has its calls, as service::search "
          f"({p and (p['value'], p['attrs'])})")
    p = last_value(points, "overrun.budget.violations", function="search", kind="time")
    check(p is not None and p["value"] == 1,
          f"service: the span's time violation is counted (got {p and p['value']})")
    search = [lg for lg in logs if site_name(lg["attrs"]) == "search"]
    check(len(search) == 1 and search[0]["attrs"].get("overrun.limit") == 10_000_000,
          f"service: the span's violation event arrived ({len(search)})")
    # The database connection's lock: one acquisition, wait and hold per
    # user lookup (requests one at a time: none contended).
    p = last_value(points, "overrun.lock.acquisitions", lock="db", mode="exclusive",
                   contended="false")
    check(p is not None and p["value"] == 3,
          f"service: the db lock's 3 acquisitions arrived (got {p and p['value']})")
    for metric in ("overrun.lock.wait", "overrun.lock.hold"):
        p = last_value(points, metric, lock="db")
        check(p is not None and p.get("count") == 3,
              f"service: {metric} has the db lock's 3 (got {p and p.get('count')})")


def main():
    grpc, http = free_port(), free_port()
    collector = Collector(grpc, http, "main")
    proxy = None
    try:
        for protocol in ("grpc", "http/protobuf"):
            protocol_run(protocol, collector)
            short_run(f"{protocol} gzip", protocol, collector,
                      {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
        for protocol in ("grpc", "http/protobuf"):
            trace_order_run(protocol, collector)
        objective_run("grpc", collector)
        environment_runs(collector)
        storm_run(collector)
        proxy = TlsProxy(collector)
        for protocol in ("grpc", "http/protobuf"):
            tls_run(protocol, collector, proxy)
        for protocol in ("grpc", "http/protobuf"):
            ending_runs(protocol, collector)
            silent_exit_run(protocol)
        service_run(collector)
    finally:
        if proxy:
            proxy.stop()
        collector.stop()
    for protocol in ("grpc", "http/protobuf"):
        outage_run(protocol)
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed; collector output in {WORK}")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("\nall OTLP end-to-end checks passed")


if __name__ == "__main__":
    main()
