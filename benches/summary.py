#!/usr/bin/env python3
"""Turns the output of `cargo bench -p overrun-benches` into per-call figures
and the ratios the overhead goals are stated in. Every ratio is between two
figures measured in the same process and run.

    cargo bench -p overrun-benches 2>&1 | tee target/bench.txt
    python3 benches/summary.py target/bench.txt
"""
import re
import sys

BATCH = 64  # calls per iteration (benches/src/lib.rs)
POLLS = 17  # polls per iteration (benches/benches/async_poll.rs)
UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
ROW = re.compile(r"^(?P<indent>[│ ]*)[├╰]─ (?P<name>\S+)\s+(?P<cols>.*)$")
TIME = re.compile(r"([\d.]+)\s*(ps|ns|µs|us|ms|s)\b")


def parse(text):
    """{target: {bench name: median ns per iteration}}"""
    targets, current, stack = {}, None, []
    for line in text.splitlines():
        if "fastest" in line and "median" in line and not line.startswith(("│", "├", "╰")):
            current = line.split()[0]
            targets[current] = {}
            stack = []
            continue
        m = ROW.match(line)
        if not m or current is None:
            continue
        depth = len(m["indent"]) // 3
        stack = stack[:depth] + [m["name"]]
        cols = [c.strip() for c in m["cols"].split("│")]
        if len(cols) >= 3 and TIME.search(cols[2] or ""):
            value, unit = TIME.search(cols[2]).groups()
            targets[current]["/".join(stack)] = float(value) * UNITS[unit]
    return targets


def main():
    text = open(sys.argv[1], encoding="utf-8").read() if len(sys.argv) > 1 else sys.stdin.read()
    targets = parse(text)
    if not targets:
        sys.exit("no divan reports found")
    per_call = {}
    print(f"{'target':<16} {'bench':<40} {'per call':>12} {'× floor':>8} {'× overrun':>9}")
    for target, benches in targets.items():
        floor = benches.get("quanta_raw_pair", 0) / BATCH or None
        ours = (benches.get("overrun_measure") or benches.get("overrun_measure_counting") or 0) / BATCH or None
        for name, median in benches.items():
            polls = target == "async_poll" or (target == "tasks" and name.startswith("poll_"))
            whole = target == "snapshot" or name.startswith(("render_", "export_", "apply_", "resolve_"))
            span = target == "spans" and name.startswith("registry_")
            div = 1 if whole or span else (POLLS if polls else BATCH)
            value = median / div
            per_call[(target, name)] = value
            unit = "ns/poll" if polls else ("ns" if div == 1 else "ns/call")
            if span:
                print(f"{target:<16} {name:<40} {value:>7.2f} ns/span")
                continue
            if target == "tasks" and name.startswith("spawn_"):
                unit = "ns/spawn"
            shown = f"{value / 1e6:.2f} ms" if div == 1 else f"{value:.2f} {unit}"
            r_floor = f"{value / floor:.2f}" if floor and div == BATCH and target != "tasks" else ""
            r_ours = f"{value / ours:.2f}" if ours and div == BATCH and target != "tasks" else ""
            print(f"{target:<16} {name:<40} {shown:>12} {r_floor:>8} {r_ours:>9}")

    def get(target, name):
        return per_call.get((target, name))

    print("\ngoals (issue: overhead at the limit)")

    def goal(label, value, limit, fmt):
        if value is None:
            print(f"  {label}: not measured")
            return
        verdict = "met" if value <= limit else "NOT met"
        print(f"  {label}: {fmt(value)} (goal ≤ {fmt(limit)}) {verdict}")

    ours, floor = get("overhead", "overrun_measure"), get("overhead", "quanta_raw_pair")
    if ours and floor:
        goal("1. #[measure] / raw TSC pair", ours / floor, 1.3, lambda v: f"{v:.2f}×")
        for target, peer in [("peer_tracing", "tracing_instrument"), ("peer_fastrace", "fastrace_trace"),
                             ("peer_metrics", "metrics_histogram")]:
            p, o = get(target, peer), get(target, "overrun_measure")
            if p and o:
                print(f"     {peer}: {p:.1f} ns vs overrun {o:.1f} ns in the same run → {p / o:.2f}× ahead")
        instant = get("overhead", "instant_pair")
        if instant:
            print(f"     Instant pair: {instant:.1f} ns vs overrun {ours:.1f} ns → {instant / ours:.2f}×")
    lb = get("overhead", "lower_bound_tsc_count_histogram")
    if lb and floor:
        print(f"     lower bound (TSC pair + thread-local count + one histogram bucket): {lb:.1f} ns = {lb / floor:.2f}× floor")
    c, o2 = get("counting_alloc", "overrun_measure_counting"), get("counting_alloc", "quanta_raw_pair")
    if c and o2 and ours and floor:
        # Normalise by each process' own floor before comparing across processes.
        goal("2. with CountingAlloc, minus without", c - ours * (o2 / floor), 2.0, lambda v: f"{v:+.2f} ns")
    dc, ds = get("counting_alloc", "alloc_counting_direct"), get("counting_alloc", "alloc_system_direct")
    if dc and ds:
        goal("3. alloc+free: CountingAlloc − System, same process", dc - ds, 1.0, lambda v: f"{v:+.2f} ns")
    bc, bs = get("counting_alloc", "box_counting"), get("system_alloc", "box_system")
    if bc and bs:
        print(f"     Box::new+drop across processes: counting {bc:.1f} ns, system {bs:.1f} ns (heap state differs)")
    off, bare = get("overhead", "overrun_off"), get("overhead", "bare")
    if off and bare:
        goal("4. OVERRUN=off, minus bare call", off - bare, 2.0, lambda v: f"{v:+.2f} ns")
    t1, t2 = get("overhead", "overrun_same_site_threads/t=1"), get("overhead", "overrun_same_site_threads/t=2")
    if t1 and t2:
        goal("5. same site, 2 threads / 1 thread", t2 / t1, 1.2, lambda v: f"{v:.2f}×")
    m = re.search(r"allocations in (\d+) measured calls after the first: (\d+)", text)
    if m:
        print(f"  6. heap allocations in {m[1]} measured calls after a site's first: {m[2]} (goal 0)"
              f" {'met' if m[2] == '0' else 'NOT met'}")
    bare_f, ours_f, tm = (get("async_poll", n) for n in ("bare_future", "overrun_async_measure", "tokio_metrics_instrument"))
    if bare_f and ours_f and tm:
        print(f"  7. async, added per poll: overrun {ours_f - bare_f:+.2f} ns, tokio-metrics {tm - bare_f:+.2f} ns")
    sp = [get("tasks", n) for n in ("spawn_tokio", "spawn_overrun_tracked", "spawn_tokio_metrics")]
    pp = [get("tasks", n) for n in ("poll_bare", "poll_overrun_tracked", "poll_tokio_metrics")]
    if all(sp) and all(pp):
        print(f"  tasks, per spawn (spawn+run+join): tokio::spawn {sp[0]:.0f} ns, overrun tracked {sp[1]:.0f} ns "
              f"(+{sp[1] - sp[0]:.0f}), tokio-metrics instrument {sp[2]:.0f} ns (+{sp[2] - sp[0]:.0f})")
        print(f"  tasks, added per poll: overrun tracked {pp[1] - pp[0]:+.1f} ns, tokio-metrics {pp[2] - pp[0]:+.1f} ns")
    off, on = get("prometheus", "overrun_measure_exporter/false"), get("prometheus", "overrun_measure_exporter/true")
    render = get("prometheus", "render_1000_sites")
    if off and on and render:
        print(f"  prometheus: call without / with exporter installed {off:.1f} / {on:.1f} ns; "
              f"render 1 000 sites {render / 1e6:.2f} ms")
    none, up, down = (get("otlp", f"overrun_measure_exporter/{c}") for c in ("none", "collector_up", "collector_down"))
    sdk, export = get("otlp", "otel_sdk_histogram_record"), get("otlp", "export_1000_sites")
    if none and up and down and sdk and export:
        print(f"  otlp: call with no exporter / collector up / collector down {none:.1f} / {up:.1f} / {down:.1f} ns "
              f"(×{up / none:.2f}, ×{down / none:.2f}); OpenTelemetry SDK histogram record {sdk:.1f} ns "
              f"(×{sdk / none:.2f} overrun); export round of 1 000 sites {export / 1e6:.2f} ms")
    pl, stdm, plain, wait, hold = (get("locks", n) for n in (
        "parking_lot_mutex", "std_mutex", "overrun_mutex_no_budget",
        "overrun_mutex_wait_budget", "overrun_mutex_hold_budget"))
    lfloor, lbare = get("locks", "quanta_raw_pair"), get("locks", "bare")
    if pl and stdm and plain and wait and hold and lfloor and lbare:
        print(f"  locks, lock + unlock (+ one multiply): parking_lot {pl:.2f} ns, std {stdm:.2f} ns, "
              f"overrun no budget {plain:.2f} ns, wait budget {wait:.2f} ns, hold budget {hold:.2f} ns")
        goal("9. locks: wait budget only, minus parking_lot", wait - pl, 3.0, lambda v: f"{v:+.2f} ns")
        pair = lfloor - lbare
        goal("10. locks: hold budget, minus wait budget only, in clock pairs", (hold - wait) / pair, 1.0,
             lambda v: f"{v:.2f}")
        rpl, rov = get("locks", "parking_lot_rwlock_read"), get("locks", "overrun_rwlock_read")
        if rpl and rov:
            print(f"     read lock: parking_lot {rpl:.2f} ns, overrun {rov:.2f} ns ({rov - rpl:+.2f})")
        cpl, cov = get("locks", "contended_parking_lot"), get("locks", "contended_overrun")
        m = re.search(r"LOCKS\|contended\|(\d+)\|(\d+)\|(.*)\|(.*)", text)
        if cpl and cov and m:
            print(f"     two threads on one lock: parking_lot {cpl:.2f} ns, overrun {cov:.2f} ns per acquisition; "
                  f"overrun counted {m[2]} of {m[1]} acquisitions contended (wait p99 {m[3]} ns, max {m[4]} ns)")
    keep, ov = get("spans", "registry_keep"), get("spans", "registry_overrun")
    if keep and ov:
        alone = get("spans", "registry_alone")
        print(f"  spans, one span's life: registry with a no-op layer {keep:.1f} ns (registry alone {alone:.1f} ns), "
              f"overrun {ov:.1f} ns, tracing-timing {get('spans', 'registry_tracing_timing'):.1f} ns, "
              f"tracing-opentelemetry {get('spans', 'registry_tracing_opentelemetry'):.1f} ns")
        goal("11. spans: overrun's layer, minus the registry with a no-op layer", ov - keep, 30.0,
             lambda v: f"{v:+.1f} ns")
        fk, fo = get("spans", "registry_keep_nothing_filtered_out"), get("spans", "registry_keep_overrun_filtered_out")
        if fk and fo:
            print(f"     a span its filter rejects: {fo - fk:+.1f} ns over the same filter on a no-op layer")
    s1, s10 = get("snapshot", "snapshot/1000"), get("snapshot", "snapshot/10000")
    if s1 and s10:
        print(f"  8. snapshot, 2 threads: 1 000 sites {s1 / 1e6:.2f} ms, 10 000 sites {s10 / 1e6:.2f} ms "
              f"(×{s10 / s1:.1f} for ×10 sites)")

    rows = re.findall(r"^THREADS\|(\d+)\|(\d+)\|([\d.]+)\|([\d.]+)$", text, re.M)
    if rows:
        m = re.search(r"per call: #\[measure\] ([\d.]+) ns, raw TSC pair ([\d.]+) ns", text)
        if m:
            print(f"  threads bench, per call in the same run: #[measure] {m[1]} ns, raw TSC pair {m[2]} ns")
        for threads, per, ms, _ in rows:
            goal(f"12. resident bytes per site per thread, {threads} threads", int(per), 256, lambda v: f"{v} B")
        threads, _, ms, _ = rows[-1]
        goal(f"13. snapshot of 1 000 sites × {threads} threads", float(ms), 10.0, lambda v: f"{v:.2f} ms")
        m = re.search(r"^POOL\|(\d+)\|(\d+)\|([\d.]+)\|([\d.]+)\|([\d.]+)$", text, re.M)
        if m:
            print(f"     a pool of {m[1]} threads: {m[3]} MB resident, shrunk to {m[2]}: {m[4]} MB, "
                  f"grown back: {m[5]} MB")


if __name__ == "__main__":
    main()
