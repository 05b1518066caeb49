#!/usr/bin/env python3
"""Rotation benchmark: rotate N secrets (default 1,000) with a no-op webhook rotator while readers
keep reading them; report secrets rotated per second and whether any read failed.

    .venv/bin/python bench/rotation.py                  # N=1000, 4 readers
    .venv/bin/python bench/rotation.py --secrets 200 --readers 0

(`scripts/setup-python` makes `.venv` with boto3.) What it does:

1. builds `target/release/coffer` (`cargo build --release -p coffer-cli`; `--no-build` skips that,
   `--coffer-bin` uses another binary), starts `coffer server --dev --listen 127.0.0.1:0` and reads
   the endpoint, root credentials and `COFFER_DATA_DIR` from its banner;
2. starts a no-op webhook in a child process (asyncio, one connection per request as coffer makes
   them): every POST gets `200` with an empty body, and the arrival time of each step is kept;
   a rotation function that stores no value, so coffer drops the AWSPENDING placeholder and records
   the rotation as succeeded;
3. creates N secrets (a few threads) and registers the webhook with
   `coffer rotation function register --webhook`;
4. starts R reader threads (in a child process, so they do not share a GIL with the webhook or
   with the RotateSecret callers) looping GetSecretValue over the N secrets, one attempt each (no
   SDK retries): any exception, or a value other than the one created, is a failure;
5. calls RotateSecret on all N (a few threads) and times from the first call until
   `coffer rotation status --output json` lists every secret with a `last_rotated` (polled every
   0.5 s); then prints a markdown block: secrets/s, webhook calls, reads and read failures, the CPU
   each process used during the rotation, the spread of per-rotation and per-step times seen by
   the webhook, and the machine (nproc, load average before and after); DescribeSecret of 20 of
   the secrets afterwards must show LastRotatedDate and no AWSPENDING left;
6. stops the readers, the webhook and the server. Exit status 1 if a secret did not rotate, a
   read failed or the webhook did not see exactly 4 calls per secret.

`--trace-fsync` also records coffer's fsync/fdatasync calls with `perf record` (tracepoints,
CLOCK_MONOTONIC) during the rotation: how many commits reached the disk per secret, how long
each took and what share of the time the store's single writer spent in one. `--rust-log
info,coffer_rotation=debug` logs each webhook call's elapsed time in rotation-coffer.log.

Logs and a JSON summary land in bench/out/ (rotation-coffer.log, rotation-top.txt — a `top`
snapshot half-way through — and rotation.json). See docs/benchmarks.md, "Rotation: 1,000 secrets with a no-op webhook".
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import multiprocessing
import os
import platform
import random
import re
import secrets as pysecrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "bench" / "out"
BANNER_RE = re.compile(
    r"^coffer dev server listening on (?P<url>https?://\S+) "
    r"\(account (?P<account>\d{12}), region (?P<region>[a-z0-9-]+)\)$"
)
EXPORT_RE = re.compile(r"^export (?P<key>AWS_[A-Z_]+|COFFER_DATA_DIR)=(?P<value>.*)$")
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Keep boto3 away from any profile or metadata service of the machine.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


# ---------------------------------------------------------------------------------------------
# The no-op webhook (child process)


def webhook_main(conn, ready) -> None:
    """Answers 200 with an empty body to every request; records (arrival time, step, secret)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seen: list[tuple[float, str, str]] = []
    bad: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            at = time.time()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            try:
                event = json.loads(body)
                seen.append((at, event["Step"], event["SecretId"]))
            except (ValueError, KeyError, TypeError) as e:
                bad.append(f"{e}: {body[:200]!r}")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            bad.append(f"connection: {e!r}")
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        conn.send(port)
        ready.set()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        # The parent sends anything on the pipe to stop us.
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        conn.recv()
        server.close()

    asyncio.run(main())
    conn.send({"seen": seen, "bad": bad})


# ---------------------------------------------------------------------------------------------
# The readers (child process with R threads)


def client(endpoint: dict, attempts: int):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=endpoint["url"],
        region_name=endpoint["region"],
        aws_access_key_id=endpoint["access_key"],
        aws_secret_access_key=endpoint["secret_key"],
        config=Config(
            retries={"mode": "standard", "max_attempts": attempts},
            max_pool_connections=4,
            connect_timeout=10,
            read_timeout=30,
        ),
    )


def readers_main(endpoint: dict, items: list[tuple[str, str]], threads: int, stop, started, out) -> None:
    """R threads loop GetSecretValue over `items` (name, expected value) until `stop` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    clients = [client(endpoint, 1) for _ in range(threads)]  # made here: Session is not thread-safe
    results: list[dict] = [None] * threads  # type: ignore[list-item]

    def loop(i: int) -> None:
        sm = clients[i]
        order = list(items)
        random.Random(i).shuffle(order)
        ok = 0
        failures: collections.Counter[str] = collections.Counter()
        first_failures: list[tuple[float, str, str]] = []
        samples: list[tuple[float, float]] = []  # (start, latency) of successful reads
        n = 0
        while not stop.is_set():
            name, expected = order[n % len(order)]
            n += 1
            t0 = time.time()
            try:
                got = sm.get_secret_value(SecretId=name)
                if got.get("SecretString") != expected:
                    raise AssertionError(f"wrong value (version {got.get('VersionId')})")
                ok += 1
                samples.append((t0, time.time() - t0))
            except Exception as e:  # noqa: BLE001 - any failure counts
                msg = f"{type(e).__name__}: {e}"
                failures[msg[:300]] += 1
                if len(first_failures) < 20:
                    first_failures.append((t0, name, msg[:300]))
        results[i] = {"ok": ok, "failures": dict(failures), "first_failures": first_failures, "samples": samples}

    workers = [threading.Thread(target=loop, args=(i,), name=f"reader-{i}") for i in range(threads)]
    for w in workers:
        w.start()
    started.set()
    for w in workers:
        w.join()
    out.put(results)


# ---------------------------------------------------------------------------------------------
# Helpers


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet"], cwd=REPO_ROOT).returncode != 0
        return head + (" (dirty tree)" if dirty else "")
    except OSError:
        return "unknown"


class Coffer:
    """`coffer server --dev` with its output in a log file; the banner tells where it listens."""

    def __init__(self, binary: Path, log: Path, rust_log: str | None):
        self.binary = binary
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "COFFER_DATA_DIR"}
        if rust_log:
            env["RUST_LOG"] = rust_log
        self.logf = open(log, "w")
        self.proc = subprocess.Popen(
            [str(binary), "server", "--dev", "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
        )
        self.endpoint = self._banner()

    def _banner(self) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"coffer exited ({self.proc.returncode}):\n{self.log.read_text()}")
            banner, exports = None, {}
            for line in self.log.read_text(errors="replace").splitlines():
                banner = banner or BANNER_RE.match(line)
                m = EXPORT_RE.match(line)
                if m:
                    exports[m["key"]] = m["value"].strip().strip("'\"")
            if banner and "AWS_SECRET_ACCESS_KEY" in exports and "COFFER_DATA_DIR" in exports:
                return {
                    "url": banner["url"],
                    "account": banner["account"],
                    "region": banner["region"],
                    "access_key": exports["AWS_ACCESS_KEY_ID"],
                    "secret_key": exports["AWS_SECRET_ACCESS_KEY"],
                    "data_dir": exports["COFFER_DATA_DIR"],
                }
            time.sleep(0.1)
        self.stop()
        sys.exit(f"coffer printed no banner within 60 s:\n{self.log.read_text()}")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["COFFER_DATA_DIR"] = self.endpoint["data_dir"]
        p = subprocess.run([str(self.binary), *args], env=env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"coffer {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class FsyncTrace:
    """`perf record` of coffer's fsync/fdatasync calls (tracepoints, cheap): how many commits
    reached the disk, how long each took, and for what share of the time one was in progress.
    SQLite commits with synchronous=FULL through one writer connection, so this is the time
    the store's writer spends waiting for the disk."""

    EVENTS = ["syscalls:sys_enter_fsync", "syscalls:sys_exit_fsync",
              "syscalls:sys_enter_fdatasync", "syscalls:sys_exit_fdatasync"]

    def __init__(self, pid: int, data: Path):
        self.data = data
        # CLOCK_MONOTONIC timestamps, as time.monotonic(): the window can be cut to the rotation.
        cmd = ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-o", str(data), "-p", str(pid)]
        for e in self.EVENTS:
            cmd += ["-e", e]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attach before the clock starts
        if self.proc.poll() is not None:
            raise RuntimeError(f"perf record failed: {self.proc.stderr.read().strip()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def summary(self, start: float, end: float) -> dict:
        """The calls that began between `start` and `end` (time.monotonic())."""
        out = subprocess.run(["perf", "script", "-i", str(self.data), "-F", "tid,time,event"],
                             capture_output=True, text=True).stdout
        events = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                events.append((float(parts[1].rstrip(":")), int(parts[0]), "sys_enter" in parts[2]))
        events.sort()
        open_, spans = {}, []
        for t, tid, enter in events:
            if enter:
                open_[tid] = t
            elif tid in open_:
                spans.append((open_.pop(tid), t))
        spans = sorted((a, min(b, end)) for a, b in spans if start <= a < end)
        if not spans:
            return {"fsyncs": 0}
        busy, cur = 0.0, None
        for a, b in spans:
            if cur is None or a > cur[1]:
                if cur:
                    busy += cur[1] - cur[0]
                cur = [a, b]
            else:
                cur[1] = max(cur[1], b)
        busy += cur[1] - cur[0]
        span = end - start
        d = [b - a for a, b in spans]
        return {
            "fsyncs": len(spans), "traced_s": span, "per_s": len(spans) / span if span else 0.0,
            "p50_ms": pct(d, 50) * 1000, "p99_ms": pct(d, 99) * 1000, "mean_ms": sum(d) / len(d) * 1000,
            "in_fsync": busy / span if span else 0.0, "concurrent": sum(d) / busy if busy else 0.0,
        }


def run_pool(threads: int, fn, items) -> list:
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secrets", type=int, default=1000, help="secrets to create and rotate (default 1000)")
    ap.add_argument("--readers", type=int, default=4, help="GetSecretValue reader threads (default 4; 0 for none)")
    ap.add_argument("--rotate-threads", type=int, default=4, help="threads calling RotateSecret (default 4)")
    ap.add_argument("--create-threads", type=int, default=4, help="threads calling CreateSecret (default 4)")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between `coffer rotation status` polls (default 0.5)")
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds of rotation (default 900)")
    ap.add_argument("--coffer-bin", type=Path, help="coffer binary to use (default: build target/release/coffer)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build first")
    ap.add_argument("--rust-log", default=None, help="RUST_LOG for the server (default: the server's own)")
    ap.add_argument("--label", default="", help="label for this run in the output")
    ap.add_argument("--trace-fsync", action="store_true",
                    help="trace coffer's fsync/fdatasync calls with `perf record` during the rotation (needs perf)")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    binary = args.coffer_bin or target / "release" / "coffer"
    if not args.coffer_bin and not args.no_build:
        print("== build (release)", flush=True)
        if subprocess.run(["cargo", "build", "--release", "-p", "coffer-cli"], cwd=REPO_ROOT).returncode != 0:
            sys.exit("cargo build failed (--no-build runs the binary already in target/release)")
    if not binary.exists():
        sys.exit(f"no coffer binary at {binary}")

    n = args.secrets
    machine = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "binary": f"{binary} (modified {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(binary.stat().st_mtime))})",
    }
    mp = multiprocessing.get_context("spawn")

    print("== coffer server --dev", flush=True)
    coffer = Coffer(binary, OUT / "rotation-coffer.log", args.rust_log)
    ep = coffer.endpoint
    hook_proc = readers_proc = sampler = None
    hook_conn = None
    stop_readers = mp.Event()
    try:
        # -- the webhook
        hook_conn, child_conn = mp.Pipe()
        hook_ready = mp.Event()
        hook_proc = mp.Process(target=webhook_main, args=(child_conn, hook_ready), name="noop-webhook", daemon=True)
        hook_proc.start()
        if not hook_ready.wait(30):
            sys.exit("the webhook did not start")
        hook_port = hook_conn.recv()
        hook_url = f"http://127.0.0.1:{hook_port}/rotate"

        # -- the secrets
        run_id = pysecrets.token_hex(3)
        items = [(f"bench/rotation-{run_id}/{i:05d}", json.dumps({"username": f"app{i}", "password": pysecrets.token_urlsafe(24)})) for i in range(n)]
        print(f"== creating {n} secrets ({args.create_threads} threads)", flush=True)
        local = threading.local()
        create_lock = threading.Lock()

        def sm():
            """This thread's client (boto3 makes clients thread-safely only one at a time)."""
            if not hasattr(local, "sm"):
                with create_lock:
                    local.sm = client(ep, 3)
            return local.sm

        t0 = time.monotonic()
        arns = run_pool(args.create_threads, lambda it: sm().create_secret(Name=it[0], SecretString=it[1])["ARN"], items)
        create_s = time.monotonic() - t0
        print(f"   {n} secrets in {create_s:.1f} s ({n / create_s:.0f}/s)", flush=True)

        fn_arn = f"arn:aws:lambda:{ep['region']}:{ep['account']}:function:bench-noop"
        coffer.cli("rotation", "function", "register", "--arn", fn_arn, "--webhook", hook_url, "--timeout", "30")

        # -- the readers
        reader_out = mp.Queue()
        readers_started = mp.Event()
        if args.readers > 0:
            readers_proc = mp.Process(
                target=readers_main, args=(ep, items, args.readers, stop_readers, readers_started, reader_out),
                name="readers", daemon=True,
            )
            readers_proc.start()
            if not readers_started.wait(60):
                sys.exit("the readers did not start")
            time.sleep(2.0)  # let them reach a steady state before rotating

        # -- rotate
        pids = {"coffer": coffer.proc.pid, "webhook": hook_proc.pid, "benchmark (RotateSecret, polls)": os.getpid()}
        if readers_proc:
            pids["readers"] = readers_proc.pid
        if args.trace_fsync:
            sampler = FsyncTrace(coffer.proc.pid, OUT / "rotation-fsync.perf.data")
        print(f"== rotating {n} secrets ({args.rotate_threads} threads calling RotateSecret)", flush=True)
        rotate_at: dict[str, float] = {}
        rotate_lat: list[float] = []
        rotate_errors: collections.Counter[str] = collections.Counter()

        def rotate(arn: str) -> None:
            try:
                rotate_at[arn] = t = time.time()
                sm().rotate_secret(SecretId=arn, RotationLambdaARN=fn_arn, RotationRules={"AutomaticallyAfterDays": 30})
                rotate_lat.append(time.time() - t)
            except Exception as e:  # noqa: BLE001
                rotate_errors[f"{type(e).__name__}: {e}"[:300]] += 1

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.rotate_threads) as pool:
            # Every thread makes its client before the clock starts.
            barrier = threading.Barrier(args.rotate_threads)
            warm = [pool.submit(lambda: (sm(), barrier.wait(30))) for _ in range(args.rotate_threads)]
            for w in warm:
                w.result()
            load_before = loadavg()
            cpu_before = {k: proc_cpu_seconds(p) for k, p in pids.items()}
            mach_before = machine_cpu()
            start_wall = time.time()
            start = time.monotonic()
            futures = [pool.submit(rotate, a) for a in arns]
            for f in futures:
                f.result()
        submitted_s = time.monotonic() - start
        print(f"   RotateSecret x{n} returned after {submitted_s:.1f} s", flush=True)

        polls: list[float] = []
        done = 0
        states: collections.Counter[str] = collections.Counter()
        top_taken = False
        end = None
        while True:
            p0 = time.monotonic()
            status = json.loads(coffer.cli("rotation", "status", "--output", "json").stdout)
            polls.append(time.monotonic() - p0)
            mine = [s for s in status.get("secrets", []) if s["name"].startswith(f"bench/rotation-{run_id}/")]
            done = sum(1 for s in mine if s.get("last_rotated"))
            states = collections.Counter(s["state"]["state"] for s in mine)
            elapsed = time.monotonic() - start
            if not top_taken and done >= n // 2:
                top_taken = True
                top = subprocess.run(["top", "-b", "-n1", "-w", "200"], capture_output=True, text=True).stdout
                (OUT / "rotation-top.txt").write_text(top)
            if done >= n:
                end = time.monotonic()
                break
            stuck = states.get("failed", 0) + states.get("retrying", 0)
            if stuck and done + stuck >= n:
                print(f"   {stuck} rotations failed or are retrying; stopping", flush=True)
                break
            if elapsed > args.timeout:
                print(f"   timed out after {elapsed:.0f} s", flush=True)
                break
            print(f"   {elapsed:6.1f} s: {done}/{n} rotated, states {dict(states)}", flush=True)
            time.sleep(max(0.0, args.poll - (time.monotonic() - p0)))
        wall = (end or time.monotonic()) - start
        cpu_after = {k: proc_cpu_seconds(p) for k, p in pids.items()}
        mach_after = machine_cpu()
        load_after = loadavg()
        if sampler:
            sampler.stop()
        # Spot check through the API: LastRotatedDate set, the AWSPENDING placeholder gone.
        checked, check_problems = 0, []
        for arn in random.sample(arns, min(20, len(arns))):
            d = sm().describe_secret(SecretId=arn)
            checked += 1
            if "LastRotatedDate" not in d:
                check_problems.append(f"{arn}: no LastRotatedDate")
            if any("AWSPENDING" in st for st in d.get("VersionIdsToStages", {}).values()):
                check_problems.append(f"{arn}: AWSPENDING left: {d['VersionIdsToStages']}")
        time.sleep(1.0)  # readers keep reading a moment after the last rotation
    finally:
        if sampler:
            sampler.stop()
        stop_readers.set()
        reader_results = []
        if readers_proc:
            try:
                reader_results = reader_out.get(timeout=120)
            except Exception as e:  # noqa: BLE001
                print(f"readers gave no results: {e}", file=sys.stderr)
            readers_proc.join(30)
        hook = {"seen": [], "bad": []}
        if hook_proc and hook_proc.is_alive() and hook_conn:
            hook_conn.send("stop")
            if hook_conn.poll(30):
                hook = hook_conn.recv()
            hook_proc.join(30)
        coffer.stop()

    # ---- figures
    seen = hook["seen"]
    step_calls = collections.Counter(step for _, step, _ in seen)
    by_secret: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for at, step, arn in seen:
        by_secret[arn].setdefault(step, at)
    durations, gaps, waits = [], {s: [] for s in STEPS[1:]}, []
    for arn, steps in by_secret.items():
        if all(s in steps for s in STEPS):
            durations.append(steps["finishSecret"] - steps["createSecret"])
            for a, b in zip(STEPS, STEPS[1:]):
                gaps[b].append(steps[b] - steps[a])
        if "createSecret" in steps and arn in rotate_at:
            waits.append(steps["createSecret"] - rotate_at[arn])
    last_finish = max((at for at, step, _ in seen if step == "finishSecret"), default=None)
    # Rotations in flight (createSecret arrived, finishSecret not yet) over time.
    mean_in_flight = sum(durations) / wall if wall else 0.0

    reads_ok = sum(r["ok"] for r in reader_results)
    read_failures: collections.Counter[str] = collections.Counter()
    first_failures = []
    for r in reader_results:
        read_failures.update(r["failures"])
        first_failures.extend(r["first_failures"])
    window = [lat for r in reader_results for t, lat in r["samples"] if start_wall <= t <= start_wall + wall]
    reads_in_window = len(window)

    cpu = {}
    for k in pids:
        if cpu_before.get(k) is not None and cpu_after.get(k) is not None:
            cpu[k] = cpu_after[k] - cpu_before[k]
    busy = (mach_after[0] - mach_before[0]) / max(1, mach_after[1] - mach_before[1])
    # Jiffies of all CPUs over the window, as CPU-seconds: what the rest of the machine used.
    busy_cpu_s = (mach_after[0] - mach_before[0]) / CLK_TCK
    others_cpu_s = max(0.0, busy_cpu_s - sum(cpu.values()))

    rotated = done
    rate = rotated / wall if wall else 0.0
    res = {
        "label": args.label, "machine": machine, "secrets": n, "readers": args.readers,
        "rotated": rotated, "wall_s": wall, "secrets_per_s": rate, "rotate_calls_s": submitted_s,
        "rotate_latency_ms": {"p50": pct(rotate_lat, 50) * 1000, "p99": pct(rotate_lat, 99) * 1000, "max": max(rotate_lat, default=float("nan")) * 1000},
        "rotate_errors": dict(rotate_errors), "states": dict(states),
        "webhook_calls": len(seen), "webhook_calls_by_step": dict(step_calls), "webhook_bad": hook["bad"][:20],
        "last_finish_after_s": (last_finish - start_wall) if last_finish else None,
        "rotation_s": {"p50": pct(durations, 50), "p90": pct(durations, 90), "p99": pct(durations, 99), "max": max(durations, default=float("nan"))},
        "step_gap_s": {s: {"p50": pct(v, 50), "p90": pct(v, 90), "max": max(v, default=float("nan"))} for s, v in gaps.items()},
        "queue_wait_s": {"p50": pct(waits, 50), "max": max(waits, default=float("nan"))},
        "mean_in_flight": mean_in_flight,
        "reads_ok": reads_ok, "reads_in_window": reads_in_window,
        "read_p50_ms": pct(window, 50) * 1000, "read_p99_ms": pct(window, 99) * 1000, "read_max_ms": max(window, default=float("nan")) * 1000,
        "read_failures": sum(read_failures.values()), "read_failure_kinds": dict(read_failures.most_common(10)),
        "first_read_failures": sorted(first_failures)[:10],
        "spot_check": {"checked": checked, "problems": check_problems}, "cpu_s": cpu, "machine_busy": busy, "others_cpu_s": others_cpu_s, "load_before": load_before, "load_after": load_after,
        "create_s": create_s, "polls": len(polls), "poll_p50_s": pct(polls, 50), "poll_max_s": max(polls, default=float("nan")),
        "fsync": sampler.summary(start, start + wall) if sampler else None,
        "command": " ".join([".venv/bin/python", "bench/rotation.py", *sys.argv[1:]]),
    }
    (OUT / "rotation.json").write_text(json.dumps(res, indent=2, default=str))

    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"#### Rotation benchmark{' — ' + args.label if args.label else ''} ({machine['date']}, {machine['commit']})",
        "",
        f"`{res['command']}` — {n} secrets, {args.readers} reader threads, {args.rotate_threads} RotateSecret threads",
        "",
        "| | |",
        "|---|---:|",
        f"| secrets rotated | {rotated:,} of {n:,} |",
        f"| wall time (first RotateSecret → all show LastRotatedDate) | {wall:.1f} s |",
        f"| **secrets/s** | **{rate:.1f}** |",
        f"| RotateSecret calls all returned after | {submitted_s:.1f} s ({n / submitted_s:.0f} calls/s; each p50 {res['rotate_latency_ms']['p50']:.0f} ms, p99 {res['rotate_latency_ms']['p99']:.0f} ms) |",
        f"| last finishSecret reached the webhook after | {res['last_finish_after_s']:.1f} s |" if last_finish else "| last finishSecret | — |",
        f"| webhook calls | {len(seen):,} ({', '.join(f'{s} {step_calls.get(s, 0)}' for s in STEPS)}) |",
        f"| one rotation, createSecret → finishSecret at the webhook | p50 {ms(res['rotation_s']['p50'])}, p90 {ms(res['rotation_s']['p90'])}, max {ms(res['rotation_s']['max'])} |",
        f"| between steps (p50: setSecret, testSecret, finishSecret) | {', '.join(ms(res['step_gap_s'][s]['p50']) for s in STEPS[1:])} |",
        f"| RotateSecret → createSecret at the webhook | p50 {res['queue_wait_s']['p50']:.1f} s, max {res['queue_wait_s']['max']:.1f} s |",
        f"| rotations in flight (mean) | {mean_in_flight:.1f} |",
        f"| reads during the rotation | {reads_in_window:,} ({reads_in_window / wall:.0f}/s; p50 {res['read_p50_ms']:.1f} ms, p99 {res['read_p99_ms']:.1f} ms, max {res['read_max_ms']:.0f} ms) |" if args.readers else "| reads | no readers |",
        f"| reads in all (before, during, after) | {reads_ok:,} |",
        f"| **read failures** | **{res['read_failures']}** |",
        f"| RotateSecret errors | {sum(rotate_errors.values())} |",
        f"| DescribeSecret of {checked} random secrets afterwards | {'LastRotatedDate set, no AWSPENDING left' if not check_problems else '; '.join(check_problems[:3])} |",
        f"| CPU during the rotation (of {wall:.1f} s wall) | {', '.join(f'{k} {v:.1f} s ({v / wall * 100:.0f}%)' for k, v in cpu.items())} |",
        f"| machine busy during the rotation | {busy * 100:.0f}% of {machine['nproc']} CPUs (outside these four processes — other work, interrupts: {others_cpu_s:.1f} CPU-s) |",
        f"| machine | {machine['nproc']} × {machine['cpu']}, {machine['kernel']}, Python {machine['python']} |",
        f"| binary | `{machine['binary']}` |",
        f"| load average before → after | {load_before} → {load_after} |",
        *([f"| coffer's fsync/fdatasync (perf) | {res['fsync']['fsyncs']:,} ({res['fsync']['fsyncs'] / max(1, rotated):.1f} per secret rotated, {res['fsync']['per_s']:.0f}/s); each p50 {res['fsync']['p50_ms']:.2f} ms, mean {res['fsync']['mean_ms']:.2f} ms, p99 {res['fsync']['p99_ms']:.1f} ms; one in progress {res['fsync']['in_fsync'] * 100:.0f}% of the time, {res['fsync']['concurrent']:.2f} at once |"] if sampler and res['fsync'].get('fsyncs') else []),
        f"| status polls | {len(polls)}, p50 {ms(res['poll_p50_s'])}, max {ms(res['poll_max_s'])} each |",
    ]
    print("\n".join(lines))
    if read_failures:
        print("\nread failures:")
        for msg, count in read_failures.most_common(10):
            print(f"  {count} × {msg}")
    if rotate_errors:
        print("\nRotateSecret errors:")
        for msg, count in rotate_errors.most_common(10):
            print(f"  {count} × {msg}")
    if hook["bad"]:
        print(f"\nwebhook: {len(hook['bad'])} malformed requests, e.g. {hook['bad'][:3]}")
    if rotated < n:
        print(f"\nnot every secret rotated: states {dict(states)}")
    ok = rotated == n and not read_failures and not rotate_errors and len(seen) == 4 * n and not check_problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
