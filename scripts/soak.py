#!/usr/bin/env python3
"""The soak: the service example under steady load for a while, its OTLP
collector (rotel) killed and restarted every 20 s, a real Prometheus server
scraping it every second.

    soak.py SERVICE ROTEL SECONDS ROWS

Judged at the end: the service's resident memory stays flat (start after a
warm-up, end and maximum reported), its thread count does not grow, and the
final counts in the collector and in Prometheus equal the requests sent.
Each figure is appended to ROWS as a `RELIABILITY|soak|what|figure|verdict`
line (scripts/reliability.sh turns them into RELIABILITY.md). Exits non-zero
when a check fails or a server cannot start.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "exporters", "otlp"))
import e2e  # noqa: E402  (Collector, parse, free_port)

SERVICE, ROTEL, SECONDS, ROWS = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
WORK = tempfile.mkdtemp(prefix="overrun-soak-")
e2e.ROTEL, e2e.WORK = ROTEL, WORK
RATE = 100  # requests per second, steady
KILL_EVERY = 20  # seconds between collector kills
FAILED = []


def row(what, figure, ok):
    line = f"RELIABILITY|soak|{what}|{figure}|{'pass' if ok else 'FAIL'}"
    print(line, flush=True)
    with open(ROWS, "a") as f:
        f.write(line + "\n")
    if not ok:
        FAILED.append(what)


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


def wait_port(port, proc, what, log):
    deadline = time.time() + 30
    while not e2e.Collector.accepts(port):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"{what} did not start:\n" + open(log).read()[-3000:])
        time.sleep(0.05)


def main():
    grpc, http = e2e.free_port(), e2e.free_port()
    port, prom_port = e2e.free_port(), e2e.free_port()
    run = f"soak-{os.getpid()}"
    generation = 0
    collector = e2e.Collector(grpc, http, f"collector-{generation}")
    CHILDREN.append(collector.proc)

    env = dict(os.environ)
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
        "OTEL_RESOURCE_ATTRIBUTES": f"test.run={run}",
        "OVERRUN_REPORT": "off",
    })
    service_log = os.path.join(WORK, "service.log")
    service = subprocess.Popen([SERVICE, "--listen", f"127.0.0.1:{port}"],
                               stdout=open(service_log, "wb"), stderr=subprocess.STDOUT, env=env)
    CHILDREN.append(service)
    wait_port(port, service, "the service example", service_log)

    with open(os.path.join(WORK, "prometheus.yml"), "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: soak
    static_configs:
      - targets: ["127.0.0.1:{port}"]
""")
    prom_log = os.path.join(WORK, "prometheus.log")
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={WORK}/prometheus.yml", f"--storage.tsdb.path={WORK}/data",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=open(prom_log, "wb"), stderr=subprocess.STDOUT)
    CHILDREN.append(prometheus)
    wait_port(prom_port, prometheus, "Prometheus", prom_log)

    # The load: RATE requests a second from four threads, paced; every one
    # must be answered 200.
    sent = [0]
    errors = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(offset):
        n = 0
        start = time.time()
        while not stop.is_set():
            n += 1
            due = start + n * 4 / RATE
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/{1 + (n + offset) % 3}",
                                            timeout=10) as r:
                    r.read()
                    failure = None if r.status == 200 else f"status {r.status}"
            except Exception as e:  # noqa: BLE001 (counted, reported)
                failure = repr(e)
            with lock:
                sent[0] += 1
                if failure:
                    errors.append(failure)

    # And two slow calls a second, over their 20 ms budget: violations.
    slow_sent = [0]

    def slow_load():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow?ms=30", timeout=10) as r:
                    r.read()
                    failure = None if r.status == 200 else f"slow: status {r.status}"
            except Exception as e:  # noqa: BLE001 (counted, reported)
                failure = f"slow: {e!r}"
            with lock:
                slow_sent[0] += 1
                if failure:
                    errors.append(failure)
            stop.wait(0.5)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=slow_load))
    for t in threads:
        t.start()

    samples = []
    kills = 0
    begin = time.time()
    next_kill = begin + KILL_EVERY
    while time.time() - begin < SECONDS:
        time.sleep(1)
        samples.append((time.time() - begin, *status(service.pid)))
        if time.time() >= next_kill and time.time() - begin < SECONDS - 5:
            # Killed, not stopped: nothing is flushed. Down for 2 s, then a
            # new collector on the same ports.
            collector.proc.kill()
            collector.proc.wait()
            collector.out.close()
            kills += 1
            time.sleep(2)
            generation += 1
            collector = e2e.Collector(grpc, http, f"collector-{generation}")
            CHILDREN.append(collector.proc)
            next_kill += KILL_EVERY
    stop.set()
    for t in threads:
        t.join()
    total = sent[0]

    # The final counts: the collector that is up now (cumulative figures)
    # and Prometheus, within 20 s.
    def collector_calls():
        points, _ = e2e.parse(collector.text())
        points = e2e.ours(points, run)
        p = e2e.last_value(points, "overrun.calls", function="get_user")
        return int(p["value"]) if p else None

    def collector_violations():
        points, _ = e2e.parse(collector.text())
        points = e2e.ours(points, run)
        p = e2e.last_value(points, "overrun.budget.violations", function="slow", kind="time")
        return int(p["value"]) if p else None

    def query_prometheus(query):
        q = urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?{q}", timeout=5) as r:
            result = json.load(r)["data"]["result"]
        return int(float(result[0]["value"][1])) if result else None

    def prometheus_calls():
        return query_prometheus('overrun_calls_total{job="soak",function="get_user"}')

    def prometheus_violations():
        return query_prometheus('overrun_budget_violations_total{job="soak",function="slow",kind="time"}')

    slow_total = slow_sent[0]
    deadline = time.time() + 20
    while time.time() < deadline:
        got_collector, got_prometheus = collector_calls(), prometheus_calls()
        got = (got_collector, got_prometheus, collector_violations(), prometheus_violations())
        if got == (total, total, slow_total, slow_total):
            break
        time.sleep(0.5)
    violations_collector, violations_prometheus = got[2], got[3]
    samples.append((time.time() - begin, *status(service.pid)))

    service.send_signal(signal.SIGTERM)
    code = service.wait(30)
    prometheus.terminate()
    prometheus.wait(30)
    collector.stop()

    warm = [s for s in samples if s[0] >= min(10, SECONDS / 4)] or samples
    rss_start, rss_end = warm[0][1], warm[-1][1]
    rss_max = max(s[1] for s in warm)
    threads_start, threads_max = warm[0][2], max(s[2] for s in warm)
    minutes = f"{SECONDS // 60} min" if SECONDS % 60 == 0 and SECONDS >= 120 else f"{SECONDS} s"
    row(f"requests over {minutes} at {RATE}/s, the collector killed every {KILL_EVERY} s (down 2 s; {kills} times)",
        f"{total} sent, {len(errors)} failed{': ' + errors[0] if errors else ''}", not errors and kills >= 1)
    row("get_user calls in the collector (after the last restart, cumulative)",
        f"{got_collector} of {total}", got_collector == total)
    row("get_user calls in Prometheus (scraping every second)",
        f"{got_prometheus} of {total}", got_prometheus == total)
    # Flat: after the warm-up the resident set grows by under 10 % (and
    # under 8 MiB), however long the run.
    grew = rss_end - rss_start
    row("slow calls over budget (30 ms, budget 20 ms): violations in the collector and in Prometheus",
        f"{violations_collector} and {violations_prometheus} of {slow_total}",
        violations_collector == slow_total and violations_prometheus == slow_total)
    row("the service's resident memory (after a warm-up)",
        f"{rss_start / 1024:.1f} MiB at the start, {rss_end / 1024:.1f} MiB at the end, {rss_max / 1024:.1f} MiB at most",
        grew < max(rss_start * 0.10, 1024) and rss_max - rss_start < 8 * 1024)
    row("the service's threads", f"{threads_start} at the start, {threads_max} at most, {warm[-1][2]} at the end",
        threads_max <= threads_start)
    row("graceful stop after the soak (SIGTERM)", f"exit {code}", code == 0)
    if FAILED:
        print(f"soak: {len(FAILED)} check(s) failed; files in {WORK}")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("soak: every check passed")


CHILDREN = []


def cleanup():
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    # Stopped from outside (a CI timeout): leave no server behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    finally:
        cleanup()
