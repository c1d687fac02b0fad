#!/usr/bin/env python3
"""weir's benchmarks (BENCHMARKS.md): throughput, peak memory, latency, checkpoints, recovery
and the Wasm tax, against a hand-written Rust loop and, when installed, Apache Flink.

    scripts/bench.sh [--runs N] [--events N] [--skip flink,flink-sql,criterion,...]

Every figure comes from running the real binaries; each throughput case runs N times back to
back (median reported, all runs listed). Peak memory is the child's max RSS (wait4).
Flink runs when the venv of shared/bench/README.md exists (FLINK_VENV, default /tmp/flinkenv).
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir/target"))
# The binary users run (`scripts/run.sh`): profile `dist`, link-time optimized.
WEIR = os.path.join(TARGET, "dist", "weir")
LOOP = os.path.join(TARGET, "release", "flagship-loop")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FLINK_VENV = os.environ.get("FLINK_VENV", "/tmp/flinkenv")


# CPU seconds (user + system) of the last child that run() waited for.
LAST_CPU = 0.0


def run(cmd, env=None, timeout=1800):
    """Runs cmd; returns (wall seconds, peak RSS MB, stdout+stderr text)."""
    global LAST_CPU
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        LAST_CPU = usage.ru_utime + usage.ru_stime
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, text


def job_seconds(text):
    m = re.search(r"job finished in ([0-9.]+)(ms|s)", text)
    if not m:
        return None
    return float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, *cells):
        self.rows.append([str(c) for c in cells])
        print(" | ".join(self.rows[-1]), flush=True)


def throughput(name, cmd, runs, events, parse, table, env=None, rss_measured=True):
    walls, rss, notes = [], [], ""
    # One untimed run first: page cache, CPU frequency and the like settle for every case
    # alike (the first of a series had run up to 45 % slower).
    run(cmd, env=env)
    for _ in range(runs):
        wall, mb, text = run(cmd, env=env)
        t = parse(text)
        walls.append(t if t is not None else wall)
        rss.append(mb)
        notes = text
    med = statistics.median(walls)
    # A process tree's peak is only the measured child's own (PyFlink's JVM is a grandchild).
    peak = f"{max(rss):.0f}" if rss_measured else "not measured"
    table.add(name, f"{med:.2f}", f"{events / med:,.0f}", peak, " ".join(f"{w:.2f}" for w in walls))
    return med, max(rss), notes


def ensure_input(path, events):
    if os.path.exists(path):
        return
    gen = os.path.join(SHARED, "conformance")
    if not os.path.exists(os.path.join(gen, "generate.py")):
        sys.exit(f"bench: {path} is missing and shared/conformance/generate.py is not there to make it")
    subprocess.check_call([sys.executable, "-c",
                           f"import sys; sys.path.insert(0, {gen!r}); import generate; generate.main({events}, 11, {path!r}, bad_rate=0.0)"])


def flink_lib():
    py = os.path.join(FLINK_VENV, "bin", "python3")
    if not os.path.exists(py):
        return None, None
    lib = subprocess.check_output([py, "-c", "import pyflink, os; print(os.path.dirname(pyflink.__file__))"], text=True).strip()
    return py, os.path.join(lib, "lib")


def plugin_rustflags():
    """The compiler flags plugins are built with (plugins/.cargo/config.toml)."""
    with open(os.path.join(ROOT, "plugins", ".cargo", "config.toml"), "rb") as f:
        return tomllib.load(f)["build"]["rustflags"]


def ns_per_record(cmd, cwd=ROOT):
    """The best of three runs of a loop that prints `... N ns per record`."""
    best = None
    for _ in range(3):
        text = subprocess.check_output(cmd, cwd=cwd, text=True, env={**os.environ, "ITERS": "1500"})
        ns = float(re.search(r"([0-9.]+) ns per record", text).group(1))
        best = ns if best is None else min(best, ns)
    return best


def wasm_tax_twin():
    """Each plugin against its logic compiled with the plugins' own settings (the plugins
    workspace's profile and plugins/.cargo/config.toml), natively and for wasm32-wasip2 as a
    plain program run on the host's plugin engine: the plugin through the host, the same
    code in Wasm without the plugin boundary, and native code. The criterion rows compare
    with the host workspace's release build, which has no LTO."""
    twin_dir = os.path.expanduser("~/.cache/weir/plugins-twin")
    plugins = os.path.join(ROOT, "plugins")
    twins = [("log-analyzer-parse", "native_twin"), ("map-filter-logic", "map_filter_twin")]
    for target in [[], ["--target", "wasm32-wasip2"]]:
        for package, example in twins:
            subprocess.check_call(["cargo", "build", "-q", "--release", "-p", package, "--example", example, "--target-dir", twin_dir, *target], cwd=plugins)
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "weir-bench", "--example", "plugin_loop", "--example", "wasm_command"], cwd=ROOT)
    examples = os.path.join(TARGET, "release", "examples")
    for (case, plugin), (_, example) in zip([("parse", "parse"), ("map+filter", "map+filter")], twins):
        native = ns_per_record([os.path.join(twin_dir, "release", "examples", example)])
        in_wasm = os.path.join(twin_dir, "wasm32-wasip2", "release", "examples", f"{example}.wasm")
        for label, off in [("", []), (", `plugin-deadline = \"off\"`", ["off"])]:
            through_host = ns_per_record([os.path.join(examples, "plugin_loop"), plugin, *off])
            alone = ns_per_record([os.path.join(examples, "wasm_command"), in_wasm, *off])
            print(f"{case}{label} | {through_host:.0f} | {alone:.0f} | {native:.0f} | {through_host / native:.2f} | {alone / native:.2f}")


def parts():
    """The host's field reader (event time and key, as the source reads them) and one window
    subtask (records as its keyed route delivers them), each alone on one thread."""
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "weir-bench", "--example", "scan_loop", "--example", "window_loop"], cwd=ROOT)
    examples = os.path.join(TARGET, "release", "examples")
    print(f"host field reader (`json::extract`: timestamp, user_id) | {ns_per_record([os.path.join(examples, 'scan_loop')]):.0f}")
    data = os.path.join(os.environ.get("WEIR_BENCH_DIR", "/tmp/weir-bench"), "logs-2000000.jsonl")
    if os.path.exists(data):
        print(f"10 s tumbling count, one subtask, 2 M records | {ns_per_record([os.path.join(examples, 'window_loop'), data]):.0f}")


def wasm_tax(table):
    done = subprocess.run(["cargo", "bench", "-q", "-p", "weir-bench", "--bench", "wasm_tax"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: the wasm_tax bench failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    base = os.path.join(TARGET, "criterion")
    for group in ["map+filter", "parse"]:
        sizes = sorted({int(os.path.basename(d)) for d in glob.glob(os.path.join(base, group, "wasm", "*")) if os.path.basename(d).isdigit()})
        for n in sizes:
            per = {}
            for side in ["wasm", "native"]:
                est = json.load(open(os.path.join(base, group, side, str(n), "new", "estimates.json")))
                per[side] = est["median"]["point_estimate"] / n
            table.add(f"{group}, batch {n}", f"{per['wasm']:.0f}", f"{per['native']:.0f}", f"{per['wasm'] / per['native']:.2f}",
                      f"{1e9 / per['wasm']:,.0f}", f"{1e9 / per['native']:,.0f}")
            fast = os.path.join(base, group, "wasm-no-deadline", str(n), "new", "estimates.json")
            if os.path.exists(fast):
                w = json.load(open(fast))["median"]["point_estimate"] / n
                table.add(f"{group}, batch {n}, `plugin-deadline = \"off\"`", f"{w:.0f}", f"{per['native']:.0f}", f"{w / per['native']:.2f}",
                          f"{1e9 / w:,.0f}", f"{1e9 / per['native']:,.0f}")
    # What the boundary costs with no logic at all: `identity` copies each record back,
    # `passthrough` answers it unchanged.
    for side, what in [("wasm", "identity map, records copied back"), ("wasm-unchanged", "passthrough map, records unchanged")]:
        dirs = glob.glob(os.path.join(base, "boundary", side, "*"))
        for n in sorted(int(os.path.basename(d)) for d in dirs if os.path.basename(d).isdigit()):
            est = json.load(open(os.path.join(base, "boundary", side, str(n), "new", "estimates.json")))
            per = est["median"]["point_estimate"] / n
            table.add(f"boundary alone ({what}), batch {n}", f"{per:.0f}", "-", "-", f"{1e9 / per:,.0f}", "-")


def latency(table, rate, count):
    with tempfile.TemporaryDirectory() as d:
        m = os.path.join(d, "m.json")
        wall, _, _ = run([WEIR, "run", "plugins/log-analyzer/job.toml", "--set", f"source.logs.rate={rate}", "--set", f"source.logs.count={count}",
                          "--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard", "--metrics", m])
        lat = json.load(open(m))["nodes"]["alerts"]["latency"]
        table.add(f"{rate:,} events/s, {count:,} events", lat["count"], lat["p50_us"], lat["p99_us"], lat["p999_us"], lat["max_us"],
                  f"{LAST_CPU / wall:.2f}")


KEYS_JOB = """
[source.logs]
kind = "generator"
count = {count}
users = {count}
seed = 7
event-time = {{ field = "timestamp", unit = "s" }}

[operator.parse]
kind = "map"
input = "logs"
plugin = "{root}/plugins/dist/log_analyzer_parse.wasm"

# A window longer than the input's event time: every key stays in state to the end.
[operator.per-user]
kind = "window"
input = "parse"
key-by = "user_id"
window = {{ type = "tumbling", size = "3650d" }}

[sink.out]
kind = "discard"
input = "per-user"

[state]
backend = "{backend}"
dir = "{dir}/state"

[checkpoint]
interval = "1s"
dir = "{dir}/ck"
"""


def checkpoints(table, keys):
    for backend in ["memory", "rocksdb"]:
        with tempfile.TemporaryDirectory() as d:
            job = os.path.join(d, "job.toml")
            with open(job, "w") as f:
                f.write(KEYS_JOB.format(count=keys, root=ROOT, backend=backend, dir=d))
            # Run 1: 3 events per key (about 95% of the keys show up), rate-limited so that
            # checkpoints of a growing state complete; killed 1.5 s after the 4th completed.
            rate = keys // 2
            events = keys * 3
            args = [WEIR, "run", job, "-p", "2", "--set", f"source.logs.rate={rate}", "--set", f"source.logs.count={events}"]
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
            deadline = time.monotonic() + 120
            seen_at = None
            while time.monotonic() < deadline:
                done = [c for c in glob.glob(os.path.join(d, "ck", "chk-*")) if os.path.exists(os.path.join(c, "_metadata"))]
                if len(done) >= 4 and seen_at is None:
                    seen_at = time.monotonic()
                if seen_at and time.monotonic() - seen_at > 1.5:
                    break
                time.sleep(0.1)
            p.send_signal(signal.SIGKILL)
            p.wait()
            done = sorted((int(c.rsplit("-", 1)[1]), c) for c in glob.glob(os.path.join(d, "ck", "chk-*")) if os.path.exists(os.path.join(c, "_metadata")))
            meta = json.load(open(os.path.join(done[-1][1], "_metadata")))
            size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(done[-1][1], "**"), recursive=True) if os.path.isfile(f))
            # Run 2: restore the newest checkpoint and finish.
            m = os.path.join(d, "m.json")
            wall, _, text = run([WEIR, "run", job, "-p", "2", "--restore", "latest", "--set", f"source.logs.count={events}",
                                 "--set", "checkpoint.interval=1h", "--metrics", m])
            ms = json.load(open(m))["checkpoints"]
            # Checkpoint durations come from a run that does not die: the metrics of run 3.
            m3 = os.path.join(d, "m3.json")
            shutil.rmtree(os.path.join(d, "ck"), ignore_errors=True)
            shutil.rmtree(os.path.join(d, "state"), ignore_errors=True)
            run([WEIR, "run", job, "-p", "2", "--set", f"source.logs.rate={keys}", "--set", f"source.logs.count={events}", "--metrics", m3])
            c3 = json.load(open(m3))["checkpoints"]
            table.add(backend, f"{keys:,}", c3["completed"], c3["last_duration_ms"], c3["max_duration_ms"], f"{c3['last_bytes'] / 1e6:.0f}",
                      ms["restore_ms"], f"{size / 1e6:.0f}", meta.get("id", done[-1][0]))


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reload_pause(table, rate, cached):
    """Runs the hot-reload walkthrough's counter job (plugins/examples/counter/job.toml) at
    `rate` generated events/s with its print sink read here as it comes, swaps in counter_v2
    after 2 s, and reports the longest gap in the output around the swap against the longest
    gap before it. `cached`: v2's compiled code is in the cache."""
    import select
    with tempfile.TemporaryDirectory() as d:
        addr = f"127.0.0.1:{free_port()}"
        job = ["plugins/examples/counter/job.toml", "--set", f"control={addr}", "--set", f"source.logs.rate={rate}",
               "--set", f"source.logs.count={rate * 6}", "--set", "source.logs.users=1000"]
        v2 = os.path.join(ROOT, "plugins", "dist", "counter_v2.wasm")
        env = dict(os.environ, WEIR_CONTROL_DIR=os.path.join(d, "control"), WEIR_CACHE_DIR=os.path.join(d, "cache"))
        if cached:
            subprocess.check_call([WEIR, "inspect", v2], env=env, stdout=subprocess.DEVNULL)
        p = subprocess.Popen([WEIR, "run", *job], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        fd = p.stdout.fileno()
        t0 = time.monotonic()
        arrivals, reload_at, reloader, first_v2, tail = [], None, None, None, b""
        while True:
            now = time.monotonic()
            if reload_at is None and now - t0 > 2.0:
                reload_at = now
                reloader = subprocess.Popen([WEIR, "reload", "counter", v2, "--control", addr], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            t = time.monotonic()
            arrivals.append(t)
            if first_v2 is None and b'"v2"' in tail + chunk:
                first_v2 = t
            tail = chunk[-64:]
        p.wait()
        said = reloader.communicate()[0].decode(errors="replace").strip() if reloader else ""
        if first_v2 is None:
            sys.exit(f"bench: the reload did not happen: {said}")
        gaps = lambda lo, hi: max((b - a for a, b in zip(arrivals, arrivals[1:]) if lo <= a and b <= hi), default=0.0)
        before = gaps(t0 + 0.5, reload_at)
        around = gaps(reload_at, first_v2 + 1.0)
        table.add(f"{rate:,} events/s, v2 {'cached' if cached else 'not cached'}", f"{before * 1000:.0f}", f"{around * 1000:.0f}",
                  f"{(first_v2 - reload_at) * 1000:.0f}")


def start_time(table, runs):
    """Wall time of a short job (the log-analyzer over 1,000 generated events) with its
    plugins' compiled code cached and with an empty cache."""
    args = [WEIR, "run", "plugins/log-analyzer/job.toml", "--set", "source.logs.count=1000", "--set", "source.logs.rate=1e9",
            "--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard"]
    with tempfile.TemporaryDirectory() as d:
        cold, warm = [], []
        for i in range(runs):
            cold.append(run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, f"cold-{i}")))[0])
            warm.append(run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, "warm")))[0])
        # The first warm run filled the cache: it was a cold one.
        warm = warm[1:] + [run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, "warm")))[0]]
        for name, xs in [("plugins not cached", cold), ("plugins cached", warm)]:
            table.add(name, f"{statistics.median(xs):.3f}", ", ".join(f"{x:.3f}" for x in xs))


DETECTORS = [("Rust", "log_analyzer_detect"), ("C", "c_detect"), ("Go", "go_detect"), ("JavaScript", "js_detect"), ("Python", "python_detect")]


def languages(table, runs, work):
    """Each language's detector behind the Rust parser (200,000 lines, p=1): whole-process
    wall time, and what it adds per record to the Rust detector's run."""
    data = os.path.join(work, "logs-200000.jsonl")
    ensure_input(data, 200_000)
    base = None
    for lang, name in DETECTORS:
        args = [WEIR, "run", "bench/jobs/detect.toml", "--set", f"source.logs.path={data}", "--set", f"operator.detect.plugin={ROOT}/plugins/dist/{name}.wasm"]
        run(args)  # fills the compiled-plugin cache and the page cache
        walls = [run(args)[0] for _ in range(runs)]
        med = statistics.median(walls)
        base = med if base is None else base
        table.add(lang, f"{med:.2f}", f"{(med - base) / 200_000 * 1e9:,.0f}", " ".join(f"{w:.2f}" for w in walls))


def language_start(table, runs):
    """A job of 1,000 generated events through each language's detector, its compiled code
    cached or not: what a user waits for before the first record."""
    for lang, name in DETECTORS:
        args = [WEIR, "run", "plugins/log-analyzer/job.toml", "--set", "source.logs.count=1000", "--set", "source.logs.rate=1e9",
                "--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard", "--set", f"operator.detect.plugin={ROOT}/plugins/dist/{name}.wasm"]
        with tempfile.TemporaryDirectory() as d:
            cold = [run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, f"cold-{i}")))[0] for i in range(runs)]
            run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, "warm")))
            warm = [run(args, env=dict(os.environ, WEIR_CACHE_DIR=os.path.join(d, "warm")))[0] for _ in range(runs)]
        size = os.path.getsize(os.path.join(ROOT, "plugins", "dist", f"{name}.wasm")) / 1e6
        table.add(lang, f"{size:.1f}", f"{statistics.median(cold):.2f}", f"{statistics.median(warm):.2f}")


def python_log_analyzer(table, runs, work, lines):
    """The log-analyzer with its plugins in Python: weir (plugins/log-analyzer-py/job.toml)
    against PyFlink with Python functions (shared/bench/pyflink_log_analyzer.py), p=2, whole
    processes, on the same file."""
    py, _ = flink_lib()
    for n in lines:
        data = os.path.join(work, f"logs-{n}.jsonl")
        ensure_input(data, n)
        args = [WEIR, "run", "plugins/log-analyzer-py/job.toml", "-p", "2", "--set", "source.logs.kind=file", "--set", f"source.logs.path={data}",
                "--set", "source.logs.rate=1e9", "--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard"]
        weir_s, weir_rss, _ = throughput(f"weir, Python plugins, {n:,} lines", args, runs, n, lambda _: None, table)  # whole-process wall time
        if py and n <= 50_000:
            env = dict(os.environ, PATH=os.path.join(FLINK_VENV, "bin") + ":" + os.environ["PATH"])
            wall, _, text = run([py, os.path.join(SHARED, "bench", "pyflink_log_analyzer.py"), data, "2"], env=env)
            table.add(f"PyFlink 2.3, Python functions, {n:,} lines", f"{wall:.2f}", f"{n / wall:,.0f}", "not measured", f"{wall:.2f}")
            print(f"weir / PyFlink, {n:,} lines, whole processes: {wall / weir_s:.0f}x", flush=True)


def scrape_cost(table, runs, events, work):
    """The flagship job with the Prometheus endpoint off, and on with a scrape every second
    (a thread of this script, as Prometheus would)."""
    import threading
    import urllib.request
    data = os.path.join(work, f"logs-{events}.jsonl")
    ensure_input(data, events)
    job = [WEIR, "run", "tests/conformance/tumble10s.toml", "-p", "2", "--set", f"source.logs.path={data}", "--set", "sink.out.kind=discard"]
    off, _, _ = throughput("endpoint off", job, runs, events, job_seconds, table)
    for every, label in [(1.0, "every second"), (0.1, "every 100 ms (ten times Prometheus's fastest usual rate)")]:
        port = free_port()
        stop, scrapes = threading.Event(), []

        def scraper():
            while not stop.wait(every):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                        scrapes.append(len(r.read()))
                except OSError:
                    pass

        t = threading.Thread(target=scraper, daemon=True)
        t.start()
        on, _, _ = throughput(f"endpoint on, scraped {label}", [*job, "--metrics-addr", f"127.0.0.1:{port}"], runs, events, job_seconds, table)
        stop.set()
        t.join()
        print(f"scrapes answered {label}: {len(scrapes)}; endpoint on / off: {on / off:.3f}", flush=True)



def thread_cpu(cmd):
    """Runs cmd, reading each thread's CPU time (user + system, /proc/PID/task/TID/stat)
    every 100 ms until it exits; returns (wall s, {thread name: CPU s}), threads of one name
    summed (the last reading of each thread counts)."""
    tick = os.sysconf("SC_CLK_TCK")
    seen = {}
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while p.poll() is None:
        for tid in os.listdir(f"/proc/{p.pid}/task") if os.path.exists(f"/proc/{p.pid}/task") else []:
            try:
                with open(f"/proc/{p.pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            seen[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
        time.sleep(0.1)
    wall = time.monotonic() - t0
    by_name = {}
    for name, cpu in seen.values():
        by_name[name] = by_name.get(name, 0.0) + cpu
    return wall, by_name


def where_the_cores_go(data, work):
    """CPU seconds per thread of the whole log-analyzer, weir's and Flink's (Java DataStream),
    p=2, one run each."""
    weir = [WEIR, "run", "plugins/log-analyzer/job.toml", "-p", "2", "--set", "source.logs.kind=file", "--set", f"source.logs.path={data}",
            "--set", "source.logs.format=text", "--set", "source.logs.rate=1e12", "--set", "sink.alerts.kind=discard",
            "--set", "sink.metrics.kind=discard"]
    cases = [("weir", weir)]
    py, lib = flink_lib()
    if py:
        classes = os.path.join(work, "LogAnalyzerJob-classes")
        os.makedirs(classes, exist_ok=True)
        subprocess.check_call(["javac", "-d", classes, "-cp", f"{lib}/*", os.path.join(SHARED, "bench", "LogAnalyzerJob.java")])
        cases.append(("Flink 2.3 DataStream (Java)", ["java", "-cp", f"{classes}:{lib}/*", "LogAnalyzerJob", data, "2"]))
    for name, cmd in cases:
        wall, threads = thread_cpu(cmd)
        total = sum(threads.values())
        print(f"{name}: {wall:.2f} s wall, {total:.2f} s CPU in all threads\n")
        print("thread (same names summed) | CPU s | share")
        print("--- | --- | ---")
        for t, cpu in sorted(threads.items(), key=lambda kv: -kv[1]):
            if cpu >= 0.05:
                print(f"{t} | {cpu:.2f} | {cpu / total:.0%}")
        print()


def whole_jobs(runs, data, work):
    """Whole processes side by side, as a user waits for them: the log-analyzer and the window
    flagship in weir (memory and RocksDB state) and in Flink's Java DataStream API, p=2, runs
    interleaved (case after case, round after round) so that a noisy minute hits all alike.
    Wall time from fork to exit, peak RSS, and user + system CPU of each process."""
    py, lib = flink_lib()
    # The log lines are read as text, as Flink's job reads them (its flatMap parses and drops
    # malformed lines; weir's `parse` refuses them), not checked as JSON at the source first.
    jobs = {
        "log-analyzer": ["run", "plugins/log-analyzer/job.toml", "-p", "2", "--set", "source.logs.kind=file", "--set", f"source.logs.path={data}",
                         "--set", "source.logs.format=text", "--set", "source.logs.rate=1e12", "--set", "sink.alerts.kind=discard",
                         "--set", "sink.metrics.kind=discard"],
        "flagship": ["run", "tests/conformance/tumble10s.toml", "-p", "2", "--set", f"source.logs.path={data}", "--set", "sink.out.kind=discard"],
    }
    rocks = ["--set", "state.backend=rocksdb", "--set", f"state.dir={work}/state"]
    cases = []
    for job, args in jobs.items():
        cases.append((job, "weir, memory", [WEIR, *args]))
        cases.append((job, "weir, RocksDB", [WEIR, *args, *rocks]))
    if py:
        for job, cls, src in [("log-analyzer", "LogAnalyzerJob", "LogAnalyzerJob.java"), ("flagship", "FlagshipJob", "FlagshipJob.java")]:
            classes = os.path.join(work, f"{cls}-classes")
            os.makedirs(classes, exist_ok=True)
            subprocess.check_call(["javac", "-d", classes, "-cp", f"{lib}/*", os.path.join(SHARED, "bench", src)])
            cases.append((job, "Flink 2.3 DataStream (Java)", ["java", "-cp", f"{classes}:{lib}/*", cls, data, "2"]))
    for _, _, cmd in cases:
        run(cmd)  # one untimed run of each first: page cache and CPU frequency settle for all alike
    got = {(job, name): [] for job, name, _ in cases}
    for _ in range(runs):
        for job, name, cmd in cases:
            wall, mb, _ = run(cmd)
            got[(job, name)].append((wall, mb, LAST_CPU))
    print("job | case | median wall s | peak RSS MB | CPU s (user + system) | runs, wall s")
    print("--- | --- | --- | --- | --- | ---")
    med = {}
    for (job, name), rs in got.items():
        walls = [r[0] for r in rs]
        med[(job, name)] = statistics.median(walls)
        print(f"{job} | {name} | {med[(job, name)]:.2f} | {max(r[1] for r in rs):.0f} | {statistics.median(r[2] for r in rs):.2f} | "
              + " ".join(f"{w:.2f}" for w in walls))
    print()
    for job in jobs:
        flink = med.get((job, "Flink 2.3 DataStream (Java)"))
        mem, rdb = med[(job, "weir, memory")], med[(job, "weir, RocksDB")]
        line = f"{job}: RocksDB / memory speed {mem / rdb:.2f}"
        if flink:
            line += f"; Flink / weir whole process: {flink / mem:.1f}x (memory), {flink / rdb:.1f}x (RocksDB)"
        print(line)
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--skip", default="", help="comma list of: whole,flagship,flink,flink-sql,latency,checkpoints,reload,languages,pyflink,scrape,criterion")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    work = os.environ.get("WEIR_BENCH_DIR", "/tmp/weir-bench")
    os.makedirs(work, exist_ok=True)
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "weir-bench", "--bins"], cwd=ROOT)
    subprocess.check_call(["cargo", "build", "-q", "--profile", "dist", "-p", "weir-host"], cwd=ROOT)
    subprocess.check_call([os.path.join(ROOT, "scripts", "build-plugins.sh"), "--languages"], cwd=ROOT)
    cpu = subprocess.check_output(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], text=True).strip()
    print(f"# machine: {os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M')}\n")

    if "whole" not in skip:
        data = os.path.join(work, f"logs-{a.events}.jsonl")
        ensure_input(data, a.events)
        print(f"## Whole jobs against Flink, {a.events:,} lines, p=2, whole processes, interleaved\n")
        whole_jobs(a.runs, data, work)
        print(f"## Where the cores go in the whole log-analyzer, {a.events:,} lines, p=2\n")
        where_the_cores_go(data, work)

    if "flagship" not in skip:
        data = os.path.join(work, f"logs-{a.events}.jsonl")
        ensure_input(data, a.events)
        print(f"## Flagship: {a.events:,} JSON lines, key by user, 10 s tumbling count, 2 cores\n")
        print("case | median s | events/s | peak RSS MB | runs (s)")
        print("--- | --- | --- | --- | ---")
        t = Table()
        job = ["run", "tests/conformance/tumble10s.toml", "-p", "2", "--set", f"source.logs.path={data}", "--set", "sink.out.kind=discard"]
        weir_mem, weir_rss, _ = throughput("weir, memory backend", [WEIR, *job], a.runs, a.events, job_seconds, t)
        # The same query with event time and key read from each line at the source (the
        # shape before operator watermarks and record keys).
        source_time = ["run", "tests/conformance/tumble10s_source_time.toml", *job[2:]]
        throughput("weir, memory backend, event time read at the source", [WEIR, *source_time], a.runs, a.events, job_seconds, t)
        rocks = ["--set", "state.backend=rocksdb", "--set", f"state.dir={work}/state"]
        weir_rocks, _, _ = throughput("weir, RocksDB backend", [WEIR, *job, *rocks], a.runs, a.events, job_seconds, t)
        # The parse plugin in a task of its own (pipelined with the reading source).
        unchained = ["--set", "operator.parse.chain=false"]
        weir_mem_u, weir_rss_u, _ = throughput("weir, memory backend, `chain = false`", [WEIR, *job, *unchained], a.runs, a.events, job_seconds, t)
        weir_rocks_u, _, _ = throughput("weir, RocksDB backend, `chain = false`", [WEIR, *job, *unchained, *rocks], a.runs, a.events, job_seconds, t)
        # Plugins compiled without the call deadline's interruption checks (trusted plugins).
        off = ["--set", "plugin-deadline=off"]
        weir_off, _, _ = throughput("weir, memory backend, `plugin-deadline = \"off\"`", [WEIR, *job, *off], a.runs, a.events, job_seconds, t)
        weir_off_u, weir_rss_off_u, _ = throughput("weir, memory backend, `chain = false`, `plugin-deadline = \"off\"`", [WEIR, *job, *unchained, *off],
                                                   a.runs, a.events, job_seconds, t)
        # The whole log-analyzer job (parse, detect, two windows) on the same file (its Flink
        # twin runs in the `whole` section, as whole processes).
        bundle = ["run", "plugins/log-analyzer/job.toml", "-p", "2", "--set", "source.logs.kind=file", "--set", f"source.logs.path={data}",
                  "--set", "source.logs.rate=1e9", "--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard"]
        throughput("weir, whole log-analyzer job (parse, detect, 2 windows), memory", [WEIR, *bundle], a.runs, a.events, job_seconds, t)
        loop_s, _, text = throughput("hand-written Rust loop, 1 thread", [LOOP, data], a.runs, a.events,
                                     lambda x: float(re.search(r"wall_s=([0-9.]+)", x).group(1)), t)
        # The same loop built like the plugins (LTO, one codegen unit, plugins/.cargo's
        # inline threshold): the host workspace's release profile has none of them.
        alike_dir = os.path.expanduser("~/.cache/weir/loop-alike")
        alike_env = dict(os.environ, CARGO_PROFILE_RELEASE_LTO="true", CARGO_PROFILE_RELEASE_CODEGEN_UNITS="1",
                         RUSTFLAGS=" ".join(plugin_rustflags()))
        subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "weir-bench", "--bin", "flagship-loop", "--target-dir", alike_dir], cwd=ROOT, env=alike_env)
        alike_s, _, _ = throughput("hand-written Rust loop, 1 thread, built like the plugins", [os.path.join(alike_dir, "release", "flagship-loop"), data],
                                   a.runs, a.events, lambda x: float(re.search(r"wall_s=([0-9.]+)", x).group(1)), t)
        py, lib = flink_lib()
        flink = None
        if py and "flink" not in skip:
            classes = os.path.join(work, "flagship-classes")
            os.makedirs(classes, exist_ok=True)
            subprocess.check_call(["javac", "-d", classes, "-cp", f"{lib}/*", os.path.join(SHARED, "bench", "FlagshipJob.java")])
            flink, flink_rss, _ = throughput("Flink 2.3 DataStream (Java), p=2", ["java", "-cp", f"{classes}:{lib}/*", "FlagshipJob", data, "2"],
                                             a.runs, a.events, lambda x: float(re.search(r"wall_s=([0-9.]+)", x).group(1)), t)
        if py and "flink-sql" not in skip:
            env = dict(os.environ, PATH=os.path.join(FLINK_VENV, "bin") + ":" + os.environ["PATH"])
            throughput("Flink 2.3 SQL, p=2", [py, os.path.join(SHARED, "bench", "flink_flagship.py"), data, "2"], max(1, a.runs // 2), a.events,
                       lambda x: float(re.search(r"wall_s=([0-9.]+)", x).group(1)), t, env=env, rss_measured=False)
        print()
        for how, mem, rocksdb, rss in [("chained (default)", weir_mem, weir_rocks, weir_rss), ("chain = false", weir_mem_u, weir_rocks_u, weir_rss_u),
                                       ("plugin-deadline = off", weir_off, None, weir_rss), ("chain = false, plugin-deadline = off", weir_off_u, None, weir_rss_off_u)]:
            print(f"{how}: weir / Rust loop throughput: {loop_s / mem:.2f} ({alike_s / mem:.2f} against the loop built alike)", end="")
            if rocksdb:
                print(f"; RocksDB / memory: {mem / rocksdb:.2f}", end="")
            if flink:
                print(f"; weir / Flink DataStream throughput: {flink / mem:.2f}x; peak memory weir / Flink: {rss / flink_rss:.3f}", end="")
            print()
        print()

    if "latency" not in skip:
        print("## Latency: failed login in → security alert out (log-analyzer job, generator, p=2)\n")
        print("rate | alerts | p50 µs | p99 µs | p99.9 µs | max µs | CPU cores busy")
        print("--- | --- | --- | --- | --- | --- | ---")
        latency(Table(), 100_000, 1_000_000)
        print()

    if "checkpoints" not in skip:
        print("## Checkpoints and recovery: keys in window state, p=2\n")
        print("backend | keys | checkpoints | last ms | max ms | last MB | restore ms | restored checkpoint MB | restored id")
        print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
        checkpoints(Table(), a.keys)
        print()

    if "reload" not in skip:
        print("## Hot reload: output pauses while the counter plugin is swapped (print sink read as it comes)\n")
        print("case | longest gap before, ms | longest gap around the swap, ms | reload asked → first v2 row, ms")
        print("--- | --- | --- | ---")
        t = Table()
        for cached in [True, False]:
            reload_pause(t, 100_000, cached)
        print()
        print("## Start time: a short job with its plugins' compiled code cached or not\n")
        print("case | median s | runs (s)")
        print("--- | --- | ---")
        start_time(Table(), a.runs)
        print()

    if "scrape" not in skip:
        print(f"## Prometheus endpoint: the flagship job ({a.events:,} lines, p=2) with it off, and on and scraped every second\n")
        print("case | median s | events/s | peak RSS MB | runs (s)")
        print("--- | --- | --- | --- | ---")
        scrape_cost(Table(), a.runs, a.events, work)
        print()

    if "languages" not in skip:
        print("## Plugin languages: the log-analyzer's detector behind the Rust parser, 200,000 lines, p=1\n")
        print("detector | median s | ns per record more than Rust | runs (s)")
        print("--- | --- | --- | ---")
        languages(Table(), a.runs, work)
        print()
        print("## Plugin languages: start time of a 1,000-event job, compiled plugins cached or not\n")
        print("detector | component MB | not cached, s | cached, s")
        print("--- | --- | --- | ---")
        language_start(Table(), a.runs)
        print()
        print("## The log-analyzer in Python: weir against PyFlink with Python functions, p=2, whole processes\n")
        print("case | median s | lines/s | peak RSS MB | runs (s)")
        print("--- | --- | --- | --- | ---")
        python_log_analyzer(Table(), a.runs, work, [20_000, 200_000] if "pyflink" not in skip else [200_000])
        print()

    if "criterion" not in skip:
        print("## Wasm tax: ns per record, plugin vs the same logic in native Rust (criterion, median)\n")
        print("case | wasm ns | native ns | ratio | wasm records/s | native records/s")
        print("--- | --- | --- | --- | --- | ---")
        wasm_tax(Table())
        print()
        print("## Wasm tax, same build settings: plugin, its logic alone in Wasm, and native (4,096 a batch; best of 3 loops)\n")
        print("case | plugin ns | logic alone in Wasm ns | native ns | plugin ratio | logic alone ratio")
        print("--- | --- | --- | --- | --- | ---")
        wasm_tax_twin()
        print()
        print("## Parts of the flagship job alone, one thread (best of 3 loops)\n")
        print("part | ns per record")
        print("--- | ---")
        parts()
        print()


if __name__ == "__main__":
    main()
