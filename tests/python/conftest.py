"""Fixtures for the end-to-end suite: a running coffer, boto3 clients, an AWS CLI runner, raw signed requests.

By default each server variant is started once per session from the debug binary
(`$COFFER_BIN`, else `${CARGO_TARGET_DIR:-target}/debug/coffer`) as

    coffer server --dev --listen 127.0.0.1:0 [--manual-clock | --accept-any-credentials]

and its banner (``coffer dev server listening on http://HOST:PORT (account ..., region ...)`` followed by
``export AWS_...=...`` lines, then ``export COFFER_DATA_DIR=...``) tells the endpoint, the root credentials and the
throw-away data directory (where `coffer account create` reaches the running server).

Set ``COFFER_E2E_ENDPOINT`` (plus ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, optionally
``COFFER_E2E_ACCOUNT`` and ``AWS_REGION``) to run the suite against an already running server instead, e.g.
``moto_server`` to debug the test logic. Tests that need the dev-only admin routes (manual clock, purge task) are
skipped then.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import support
from support import make_client_for as make_client

REPO_ROOT = Path(__file__).resolve().parents[2]
BANNER_TIMEOUT_S = 30.0
BANNER_RE = re.compile(
    r"^coffer dev server listening on (?P<url>https?://\S+) "
    r"\(account (?P<account>\d{12}), region (?P<region>[a-z0-9-]+)\)$"
)
EXPORT_RE = re.compile(r"^export (?P<key>AWS_[A-Z_]+)=(?P<value>.*)$")
DATA_DIR_RE = re.compile(r"^export COFFER_DATA_DIR=(?P<value>.*)$")


@dataclass(frozen=True)
class Endpoint:
    """Where a coffer (or another Secrets Manager implementation) answers, and with which credentials."""

    url: str
    access_key: str
    secret_key: str
    region: str
    account: str
    manual_clock: bool = False
    external: bool = False
    # The dev server's data directory (None for an external endpoint).
    data_dir: str | None = None


def coffer_binary() -> Path:
    explicit = os.environ.get("COFFER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "coffer"


class CofferProcess:
    """One `coffer server --dev` child process; reads its banner, then keeps draining its stdout."""

    def __init__(self, extra_flags: list[str]):
        self.extra_flags = extra_flags
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._lines: "collections.deque[str]" = collections.deque()
        self._eof = threading.Event()
        self._cond = threading.Condition()

    def start(self) -> Endpoint:
        binary = coffer_binary()
        if not binary.exists():
            pytest.fail(
                f"coffer binary not found at {binary}: build it with `cargo build -p coffer-cli` "
                "(scripts/test does), or set COFFER_BIN, or point COFFER_E2E_ENDPOINT at a running server",
                pytrace=False,
            )
        cmd = [str(binary), "server", "--dev", "--listen", "127.0.0.1:0", *self.extra_flags]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=REPO_ROOT,
        )
        threading.Thread(target=self._pump, daemon=True, name="coffer-stdout").start()
        return self._read_banner(cmd)

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\r\n")
            self.stdout_tail.append(line)
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof.set()
            self._cond.notify_all()

    def _next_line(self, deadline: float) -> str | None:
        with self._cond:
            while not self._lines:
                if self._eof.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._lines.popleft()

    def _read_banner(self, cmd: list[str]) -> Endpoint:
        deadline = time.monotonic() + BANNER_TIMEOUT_S
        banner: re.Match[str] | None = None
        exports: dict[str, str] = {}
        data_dir: str | None = None
        while "AWS_DEFAULT_REGION" not in exports or data_dir is None:
            line = self._next_line(deadline)
            if line is None:
                self._fail_start(cmd, "exited" if self._eof.is_set() else f"timed out after {BANNER_TIMEOUT_S:.0f} s")
            if banner is None:
                banner = BANNER_RE.match(line)
                continue
            m = EXPORT_RE.match(line)
            if m:
                exports[m["key"]] = m["value"].strip().strip("'\"")
            d = DATA_DIR_RE.match(line)
            if d:
                data_dir = shlex.split(d["value"])[0]
        with self._cond:
            self._lines.clear()
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if key not in exports:
                self._fail_start(cmd, f"banner has no `export {key}=` line")
        assert banner is not None
        return Endpoint(
            url=exports["AWS_ENDPOINT_URL"].rstrip("/"),
            access_key=exports["AWS_ACCESS_KEY_ID"],
            secret_key=exports["AWS_SECRET_ACCESS_KEY"],
            region=exports.get("AWS_REGION", banner["region"]),
            account=banner["account"],
            manual_clock="--manual-clock" in self.extra_flags,
            data_dir=data_dir,
        )

    def _fail_start(self, cmd: list[str], why: str) -> None:
        code = self.proc.poll() if self.proc else None
        self.stop()
        self.stderr_file.seek(0)
        stderr = self.stderr_file.read()[-4000:]
        stdout = "\n".join(self.stdout_tail)[-4000:]
        pytest.fail(
            f"coffer did not print its dev-server banner ({why}; exit code {code}).\n"
            f"command: {' '.join(cmd)}\n"
            "expected: 'coffer dev server listening on http://127.0.0.1:PORT (account N, region R)' then export lines "
            "up to AWS_DEFAULT_REGION, then 'export COFFER_DATA_DIR=...'\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            pytrace=False,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stderr_tail(self, limit: int = 4000) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read()[-limit:]


def external_endpoint() -> Endpoint | None:
    url = os.environ.get("COFFER_E2E_ENDPOINT")
    if not url:
        return None
    return Endpoint(
        url=url.rstrip("/"),
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        account=os.environ.get("COFFER_E2E_ACCOUNT", "000000000000"),
        external=True,
    )


class Servers:
    """Starts each server variant lazily, once per session."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, ...], tuple[CofferProcess, Endpoint]] = {}

    def get(self, *flags: str) -> Endpoint:
        external = external_endpoint()
        if external is not None:
            return external
        key = tuple(flags)
        if key not in self.running:
            proc = CofferProcess(list(flags))
            self.running[key] = (proc, proc.start())
        return self.running[key][1]

    def stop_all(self) -> None:
        for proc, _ in self.running.values():
            proc.stop()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def coffer(servers: Servers) -> Endpoint:
    """The default dev server (real clock, real SigV4 verification)."""
    return servers.get()


@pytest.fixture(scope="session")
def coffer_clock(servers: Servers) -> Endpoint:
    """A dev server whose domain clock only moves through POST /_coffer/clock/advance."""
    return servers.get("--manual-clock")


@pytest.fixture(scope="session")
def coffer_any_creds(servers: Servers) -> Endpoint:
    """A dev server that accepts any access key (like LocalStack's test/test)."""
    return servers.get("--accept-any-credentials")


@pytest.fixture(scope="session")
def sm(coffer: Endpoint):
    """boto3 client for the default server, with botocore's client-side parameter validation."""
    return make_client(coffer)


@pytest.fixture(scope="session")
def sm_raw(coffer: Endpoint):
    """boto3 client without client-side validation, so the server's own validation is what answers."""
    return make_client(coffer, validate=False)


@pytest.fixture(scope="session")
def sm_clock(coffer_clock: Endpoint):
    return make_client(coffer_clock)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A secret name no other test uses."""
    return support.unique_name(request.node.name)


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Factory of unique secret names sharing one prefix (returned as `.prefix`)."""
    return support.NameFactory(support.unique_name(request.node.name))


@pytest.fixture
def secret(sm, name: str) -> dict[str, Any]:
    """A fresh secret with one string version."""
    value = f"value-{uuid.uuid4()}"
    created = sm.create_secret(Name=name, SecretString=value, Description="fixture secret")
    return {"Name": name, "ARN": created["ARN"], "VersionId": created["VersionId"], "Value": value}


@pytest.fixture(scope="session")
def raw(coffer: Endpoint) -> support.RawClient:
    """Raw HTTP requests to the Secrets Manager endpoint, signed (or not) with botocore's SigV4Auth."""
    return support.RawClient(coffer)


@pytest.fixture(scope="session")
def admin(coffer_clock: Endpoint) -> support.Admin:
    """The dev-only admin routes of the manual-clock server (skips the test against an external endpoint)."""
    if not coffer_clock.manual_clock:
        pytest.skip("needs coffer's --manual-clock admin routes (not available on COFFER_E2E_ENDPOINT)")
    return support.Admin(coffer_clock)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None


@pytest.fixture(scope="session")
def aws_cli(coffer: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., CliResult]:
    """Runs the venv's `aws` (AWS CLI v1) against the server, isolated from any ~/.aws configuration."""
    candidate = Path(sys.executable).parent / "aws"
    aws = str(candidate) if candidate.exists() else shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI (`aws`) is not installed in this Python environment")
    home = tmp_path_factory.mktemp("aws-cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        AWS_ACCESS_KEY_ID=coffer.access_key,
        AWS_SECRET_ACCESS_KEY=coffer.secret_key,
        AWS_DEFAULT_REGION=coffer.region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        AWS_MAX_ATTEMPTS="1",
    )

    def run(*args: str, check: bool = True) -> CliResult:
        cmd = [aws, "--endpoint-url", coffer.url, "--output", "json", *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        result = CliResult(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            pytest.fail(f"`aws {' '.join(args)}` exited {done.returncode}:\n{done.stderr}", pytrace=False)
        return result

    return run


@dataclass(frozen=True)
class Account:
    """An account created with `coffer account create`, with its root credentials."""

    account: str
    access_key: str
    secret_key: str
    endpoint: Endpoint  # the same server, seen with this account's root credentials


def run_coffer(*args: str, data_dir: str | None = None, check: bool = True) -> CliResult:
    """Runs the `coffer` binary (e.g. `account create`) with COFFER_DATA_DIR set to `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("AWS_") or k.startswith("COFFER_"))}
    if data_dir is not None:
        env["COFFER_DATA_DIR"] = data_dir
    env.setdefault("RUST_LOG", "warn")
    done = subprocess.run([str(coffer_binary()), *args], env=env, capture_output=True, text=True, timeout=60)
    result = CliResult(done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        pytest.fail(f"`coffer {' '.join(args)}` exited {done.returncode}:\n{done.stderr}", pytrace=False)
    return result


@pytest.fixture(scope="session")
def new_account(coffer: Endpoint) -> Callable[..., Account]:
    """Creates another account in the default dev server's store through `coffer account create --output json`
    (the CLI reaches the running server through its admin socket); skips against an external endpoint."""
    if coffer.external or coffer.data_dir is None:
        pytest.skip("needs coffer's dev data directory (not available with COFFER_E2E_ENDPOINT)")

    def create(account_id: str | None = None) -> Account:
        args = ["account", "create", "--output", "json"]
        if account_id is not None:
            args += ["--account-id", account_id]
        created = run_coffer(*args, data_dir=coffer.data_dir).json
        endpoint = Endpoint(
            url=coffer.url,
            access_key=created["access_key_id"],
            secret_key=created["secret_access_key"],
            region=coffer.region,
            account=created["account_id"],
        )
        return Account(created["account_id"], created["access_key_id"], created["secret_access_key"], endpoint)

    return create


@pytest.fixture(scope="session")
def second_account(new_account: Callable[..., Account]) -> Account:
    """Account B: a second account of the default dev server, made once per session."""
    return new_account()
