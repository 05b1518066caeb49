"""The audit trail end to end: every API call of every service (allowed or denied, authenticated or not) is exactly
one CloudTrail-format event in DATA_DIR/audit/, found by the request id the client saw; no secret value, plaintext,
data key, password, credential or MFA seed ever reaches the log or the database; `coffer audit verify` names the
first tampered place of a sealed log; LookupEvents (boto3 and the AWS CLI) pages, filters and stays inside the
caller's account; `coffer audit tail`; file and webhook sinks that catch up after an outage without slowing requests,
and alert rules that match an EventBridge-style pattern.

The log is written before the response is sent, so an API call's event is in the file when the client has its
answer; the helpers still poll for a few seconds so a slow disk cannot make a test flaky. Sinks and alerts are
asynchronous and are waited for with a timeout."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from conftest import CofferProcess, Endpoint, coffer_binary, run_coffer
from support import RawClient, current_step, totp, unique_name

SOURCES = {
    "secretsmanager": "secretsmanager.amazonaws.com",
    "kms": "kms.amazonaws.com",
    "iam": "iam.amazonaws.com",
    "sts": "sts.amazonaws.com",
    "cloudtrail": "cloudtrail.amazonaws.com",
}
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LOOKUP_PAGE_MAX = 50


# --- clients -----------------------------------------------------------------------------------------------------------
def client(endpoint: Endpoint, service: str, creds: dict | None = None, *, validate: bool = True):
    creds = creds or {"AccessKeyId": endpoint.access_key, "SecretAccessKey": endpoint.secret_key}
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=Config(
            retries={"mode": "standard", "max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
            parameter_validation=validate,
        ),
    )


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def rid(response: dict) -> str:
    request_id = response["ResponseMetadata"].get("RequestId")
    assert request_id, f"no request id in {response['ResponseMetadata']}"
    return request_id


@dataclass
class Outcome:
    """One call as the client saw it."""

    response: dict | None
    error: str | None
    message: str | None
    request_id: str | None


def attempt(fn: Callable[..., dict], **kwargs: Any) -> Outcome:
    try:
        response = fn(**kwargs)
    except ClientError as e:
        meta = e.response.get("ResponseMetadata", {})
        err = e.response.get("Error", {})
        return Outcome(None, err.get("Code"), err.get("Message"), meta.get("RequestId"))
    return Outcome(response, None, None, response["ResponseMetadata"].get("RequestId"))


def denied(fn: Callable[..., dict], **kwargs: Any) -> Outcome:
    out = attempt(fn, **kwargs)
    assert out.error is not None, f"expected a denial, but the call succeeded: {out.response}"
    assert out.request_id, "an error without x-amzn-requestid"
    return out


@dataclass(frozen=True)
class User:
    name: str
    arn: str
    creds: dict

    @property
    def key_id(self) -> str:
        return self.creds["AccessKeyId"]


def make_user(endpoint: Endpoint, *policies: dict, prefix: str = "audit-u") -> User:
    iam = client(endpoint, "iam")
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policies:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=doc(*policies))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return User(name, arn, {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})


def root_arn(endpoint: Endpoint) -> str:
    return f"arn:aws:iam::{endpoint.account}:root"


# --- reading the log -----------------------------------------------------------------------------------------------------
@dataclass
class Logged:
    seq: int
    event: dict
    line: bytes


class AuditLog:
    """Reads DATA_DIR/audit/seg-*.jsonl incrementally (complete lines only) and indexes events by requestID."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir) / "audit"
        self._offsets: dict[str, int] = {}
        self.records: list[Logged] = []
        self.by_request: dict[str, list[Logged]] = defaultdict(list)
        self.by_event_id: dict[str, Logged] = {}

    def refresh(self) -> None:
        if not self.dir.is_dir():
            return
        for seg in sorted(self.dir.glob("seg-*.jsonl")):
            offset = self._offsets.get(seg.name, 0)
            with open(seg, "rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n")
            if end < 0:
                continue
            self._offsets[seg.name] = offset + end + 1
            for line in data[: end + 1].splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                if "event" not in record:
                    continue  # a digest line
                logged = Logged(record["seq"], record["event"], line)
                self.records.append(logged)
                request_id = logged.event.get("requestID")
                if request_id:
                    self.by_request[request_id].append(logged)
                event_id = logged.event.get("eventID")
                if event_id:
                    self.by_event_id[event_id] = logged

    def wait_all(self, request_ids: Iterable[str], timeout: float = 5.0) -> None:
        wanted = {r for r in request_ids if r}
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            if all(self.by_request.get(r) for r in wanted) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def found(self, request_id: str, timeout: float = 5.0) -> list[Logged]:
        self.wait_all([request_id], timeout)
        return list(self.by_request.get(request_id, []))

    def one(self, request_id: str, timeout: float = 5.0) -> dict:
        """The single event of a request (asserting there is exactly one)."""
        found = self.found(request_id, timeout)
        assert len(found) == 1, f"expected exactly one event with requestID {request_id}, found {len(found)}: " + (
            "; ".join(f"seq {x.seq} {x.event.get('eventName')}" for x in found)
        )
        return found[0].event

    def events(self, predicate: Callable[[dict], bool] = lambda e: True) -> list[dict]:
        self.refresh()
        return [x.event for x in self.records if predicate(x.event)]


@pytest.fixture(scope="session")
def coffer_log(coffer) -> AuditLog:
    if coffer.data_dir is None:
        pytest.skip("needs coffer's dev data directory (not available with COFFER_E2E_ENDPOINT)")
    return AuditLog(coffer.data_dir)


@pytest.fixture(scope="session")
def clock_log(coffer_clock) -> AuditLog:
    if coffer_clock.data_dir is None:
        pytest.skip("needs coffer's dev data directory (not available with COFFER_E2E_ENDPOINT)")
    return AuditLog(coffer_clock.data_dir)


def parse_event_time(text: str) -> datetime:
    return datetime.strptime(text, EVENT_TIME_FORMAT).replace(tzinfo=timezone.utc)


def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def keys_deep(value: Any) -> set[str]:
    """Every object key at any depth, lower-cased."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k.lower())
            out |= keys_deep(v)
    elif isinstance(value, list):
        for v in value:
            out |= keys_deep(v)
    return out


# --- canaries ------------------------------------------------------------------------------------------------------------
def canary(label: str = "") -> str:
    """A unique, alphanumeric marker that cannot occur by chance."""
    return f"cAnArY{label}{secrets.token_hex(12)}"


def encodings(value: str | bytes) -> dict[str, bytes]:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    out = {
        "raw": raw,
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    # Too short a needle matches by chance (a 6-digit code in a hex hash): such values are checked per event only.
    return {k: v for k, v in out.items() if len(v) >= 12}


def stored_files(data_dir: str | Path) -> list[Path]:
    """Everything under DATA_DIR/audit and the SQLite database with its WAL and shared-memory files."""
    data = Path(data_dir)
    files = [p for p in (data / "audit").rglob("*") if p.is_file()]
    files += [p for p in data.glob("coffer.db*") if p.is_file()]
    assert any(p.name.startswith("seg-") for p in files), f"no audit segment under {data / 'audit'}"
    assert any(p.name == "coffer.db" for p in files), f"no coffer.db in {data}"
    return files


def leaks(data_dir: str | Path, canaries: dict[str, str | bytes]) -> list[str]:
    """Where any canary occurs (plain, base64, base64url or hex) in the log files and the database."""
    blobs = []
    for p in stored_files(data_dir):
        try:
            blobs.append((p, p.read_bytes()))
        except FileNotFoundError:  # e.g. a -shm file removed meanwhile
            continue
    found = []
    for label, value in canaries.items():
        for how, needle in encodings(value).items():
            for p, data in blobs:
                if needle in data:
                    found.append(f"{label} ({how}) in {p.relative_to(Path(data_dir))}")
    return found


def not_in_event(event_line: bytes, event: dict, values: dict[str, str | bytes]) -> list[str]:
    text = event_line + json.dumps(event).encode()
    out = []
    for label, value in values.items():
        raw = value.encode() if isinstance(value, str) else value
        needles = {"raw": raw, "base64": base64.b64encode(raw).rstrip(b"="), "hex": raw.hex().encode()}
        out += [f"{label} ({how})" for how, n in needles.items() if len(n) >= 4 and n in text]
    return out


# =========================================================================================================================
# 1. Every operation of every service: exactly one event per request id
# =========================================================================================================================
# Request members whose names say they carry a secret: a canary goes into each (required or not).
SECRET_MEMBERS = {
    "SecretString",
    "SecretBinary",
    "Plaintext",
    "Password",
    "NewPassword",
    "OldPassword",
    "KeyStorePassword",
    "PrivateKey",
    "AddPrivateKey",
    "RawSecretAccessKey",
    "WebIdentityToken",
    "SAMLAssertion",
    "TradeInToken",
    "Message",
    "TokenCode",
    "AuthenticationCode1",
    "AuthenticationCode2",
}
# One-time codes are only set where the operation requires them (an optional TokenCode without a SerialNumber
# would turn AssumeRole/GetSessionToken into validation errors and hide their success path).
CODE_MEMBERS = {"TokenCode", "AuthenticationCode1", "AuthenticationCode2"}
# Response members that carry secrets: collected from successful calls and looked for in the log and DB.
RESPONSE_SECRETS = {
    "SecretString",
    "SecretBinary",
    "Plaintext",
    "PrivateKeyPlaintext",
    "RandomPassword",
    "SecretAccessKey",
    "SessionToken",
    "Base32StringSeed",
    "QRCodePNG",
    "ServicePassword",
    "ServiceCredentialSecret",
    "SharedSecret",
    "Password",
}
EARLY = ("Create", "Put", "Tag", "Upload", "Add", "Attach", "Import", "Generate", "Encrypt")
LATE = (
    "Delete",
    "Schedule",
    "Disable",
    "Remove",
    "Detach",
    "Untag",
    "Cancel",
    "Deactivate",
    "Revoke",
    "Retire",
    "Reset",
    "Rotate",
    "Disconnect",
    "Restore",
    "Stop",
)


def op_order(op: str) -> tuple[int, str]:
    """Creations first, destructive calls last, so more calls find what they name."""
    rank = 0 if op.startswith(EARLY) else 2 if op.startswith(LATE) else 1
    return rank, op


class RequestBuilder:
    """A request botocore accepts, from the model: required members (dummy values honouring min/max lengths, enums and
    types, or an override by member name) plus a canary in every secret-looking member."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self.canaries: dict[str, str | bytes] = {}

    def build(self, operation_model) -> dict:
        self.canaries = {}
        shape = operation_model.input_shape
        return self._struct(shape, 0) if shape is not None else {}

    def _struct(self, shape, depth: int) -> dict:
        out = {}
        required = set(shape.required_members)
        for name, member in shape.members.items():
            secretish = name in SECRET_MEMBERS and member.type_name in ("string", "blob")
            if name not in required:
                # Optional members are sent when they are, or hold, a secret (XksProxyAuthenticationCredential).
                if not (secretish or holds_secret(member)) or depth > 3 or name in CODE_MEMBERS:
                    continue
                if name == "SecretBinary" and "SecretString" in shape.members:
                    continue  # both at once is an error of its own
            out[name] = self._value(name, member, depth + 1)
        return out

    def _value(self, name: str, shape, depth: int) -> Any:
        t = shape.type_name
        meta = shape.metadata
        if name in SECRET_MEMBERS and t in ("string", "blob"):
            return self._canary(name, shape)
        if name in self.overrides and t in ("string", "list"):
            return self.overrides[name]
        if t == "string":
            if shape.enum:
                return shape.enum[0]
            return fit("auditDummy" + secrets.token_hex(4), meta)
        if t == "blob":
            return fit("auditdummyblob", meta).encode()
        if t in ("integer", "long"):
            low = int(meta.get("min", 1))
            value = max(low, 1)
            if "max" in meta:
                value = min(value, int(meta["max"]))
            return value
        if t in ("float", "double"):
            return float(max(meta.get("min", 1), 1))
        if t == "boolean":
            return False
        if t == "timestamp":
            return datetime.now(timezone.utc)
        if t == "list":
            n = max(1, int(meta.get("min", 1)))
            return [self._value(name + "[]", shape.member, depth) for _ in range(n)]
        if t == "map":
            return {fit("auditKey", shape.key.metadata): self._value(name + "{}", shape.value, depth)}
        if t == "structure":
            return self._struct(shape, depth)
        raise AssertionError(f"no dummy value for {name} of type {t}")

    def _canary(self, name: str, shape) -> str | bytes:
        meta = shape.metadata
        hi = int(meta.get("max", 4096))
        lo = int(meta.get("min", 1))
        if hi < 16:
            # A one-time code: digits of the allowed length, checked in the call's own event only.
            value: str = "".join(secrets.choice("0123456789") for _ in range(max(lo, min(6, hi))))
        elif name == "RawSecretAccessKey":
            value = ("cAnArY" + secrets.token_hex(24))[: max(lo, 43)]
        else:
            value = canary(name)
            value = value + "x" * max(0, lo - len(value))
            value = value[:hi]
        key = f"request {name}"
        self.canaries[key] = value
        return value.encode() if shape.type_name == "blob" else value


def holds_secret(shape, seen: frozenset = frozenset()) -> bool:
    if shape.type_name != "structure" or shape.name in seen:
        return False
    return any(
        (n in SECRET_MEMBERS and n not in CODE_MEMBERS and m.type_name in ("string", "blob"))
        or holds_secret(m, seen | {shape.name})
        for n, m in shape.members.items()
    )


def fit(text: str, meta: dict) -> str:
    lo, hi = int(meta.get("min", 0)), int(meta.get("max", 1 << 20))
    if len(text) < lo:
        text = text + "x" * (lo - len(text))
    return text[:hi]


def response_secrets(value: Any, path: str = "") -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "ResponseMetadata":
                continue
            if k in RESPONSE_SECRETS and isinstance(v, (str, bytes)) and len(v) >= 8:
                out[f"response {path}{k}"] = v
            else:
                out.update(response_secrets(v, f"{path}{k}."))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(response_secrets(v, f"{path}{i}."))
    return out


@dataclass
class TableWorld:
    endpoint: Endpoint
    user: User
    secret_name: str
    secret_value: str
    key_id: str
    role_arn: str
    tag: str

    def overrides(self, service: str) -> dict[str, Any]:
        acct = self.endpoint.account
        common: dict[str, Any] = {
            # Long-lived resources made by the fixture, so that many calls can succeed as the root user.
            "SecretId": self.secret_name,
            "SecretIdList": [self.secret_name],
            "KeyId": self.key_id,
            "TargetKeyId": self.key_id,
            "DestinationKeyId": self.key_id,
            "SourceKeyId": self.key_id,
            "RoleArn": self.role_arn,
            # Names no fixture uses: what the root user creates and deletes here never touches the fixture.
            "AliasName": f"alias/audit-tbl-{self.tag}",
            "GranteePrincipal": root_arn(self.endpoint),
            "RoleSessionName": "auditTable",
            "UserName": f"audit-tbl-user-{self.tag}",
            "RoleName": f"audit-tbl-role-{self.tag}",
            "GroupName": f"audit-tbl-group-{self.tag}",
            "PolicyName": f"audit-tbl-policy-{self.tag}",
            "PolicyArn": f"arn:aws:iam::{acct}:policy/audit-tbl-missing-{self.tag}",
            "SerialNumber": f"arn:aws:iam::{acct}:mfa/audit-tbl-missing-{self.tag}",
            "AccessKeyId": "AKIA" + "AUDITTBL" + self.tag[:8].upper().ljust(8, "X"),
            "PolicyDocument": doc(allow("secretsmanager:ListSecrets")),
            "AssumeRolePolicyDocument": doc(
                {"Effect": "Allow", "Principal": {"AWS": root_arn(self.endpoint)}, "Action": "sts:AssumeRole"}
            ),
            "ResourcePolicy": doc(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": root_arn(self.endpoint)},
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                }
            ),
        }
        if service == "secretsmanager":
            common["Name"] = f"audit-tbl-new-{self.tag}"
        return common


@pytest.fixture(scope="module")
def table_world(new_account) -> TableWorld:
    """A fresh account, so that hundreds of calls with dummy values disturb no other test."""
    acct = new_account()
    ep = acct.endpoint
    iam = client(ep, "iam")
    user = make_user(ep, prefix="audit-nopolicy")
    secret_name = unique_name("audit-tbl")
    secret_value = canary("tblvalue")
    client(ep, "secretsmanager").create_secret(Name=secret_name, SecretString=secret_value)
    key_id = client(ep, "kms").create_key(Description="audit table")["KeyMetadata"]["KeyId"]
    role = iam.create_role(
        RoleName=f"audit-tbl-sts-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": "sts:AssumeRole"}
        ),
    )["Role"]
    return TableWorld(ep, user, secret_name, secret_value, key_id, role["Arn"], uuid.uuid4().hex[:10])


@dataclass
class Caller:
    label: str
    creds: dict
    arn: str
    kind: str
    user_name: str | None


@dataclass
class TableCall:
    operation: str
    caller: Caller
    params: dict
    outcome: Outcome
    canaries: dict[str, str | bytes]
    unsigned: bool


READ_PREFIXES = ("Get", "List", "Describe")
WRITE_PREFIXES = ("Create", "Delete", "Put", "Update")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["secretsmanager", "kms", "iam", "sts", "cloudtrail"])
def test_every_operation_is_exactly_one_event(service, table_world, coffer_log, coffer):
    """Each operation of the service's botocore model (CloudTrail: LookupEvents only), called as the account's root
    user and as an IAM user without any policy: one event per request id, with the operation, source, outcome and
    caller the client saw; no canary of the request or secret of the response anywhere in the log or the database."""
    w = table_world
    model = botocore.session.get_session().get_service_model(service)
    operations = ["LookupEvents"] if service == "cloudtrail" else sorted(model.operation_names, key=op_order)
    callers = [
        Caller("root", {"AccessKeyId": w.endpoint.access_key, "SecretAccessKey": w.endpoint.secret_key},
               root_arn(w.endpoint), "Root", None),
        Caller("user", w.user.creds, w.user.arn, "IAMUser", w.user.name),
    ]
    clients = {c.label: client(w.endpoint, service, c.creds) for c in callers}
    methods = {api: py for py, api in clients["root"].meta.method_to_api_mapping.items()}
    builder = RequestBuilder(w.overrides(service))
    failures: list[str] = []
    calls: list[TableCall] = []
    all_canaries: dict[str, str | bytes] = {"fixture SecretString": w.secret_value}
    for op in operations:
        om = model.operation_model(op)
        unsigned = om.auth_type == "none" or "smithy.api#noAuth" in (getattr(om, "auth", None) or [])
        for caller in callers:
            c = clients[caller.label]
            method = getattr(c, methods[op])
            params = builder.build(om)
            try:
                outcome = attempt(method, **params)
            except ParamValidationError as e:
                failures.append(f"{op} as {caller.label}: the test built a request botocore refuses: {e}")
                continue
            canaries = dict(builder.canaries)
            if outcome.response is not None:
                canaries.update(response_secrets(outcome.response))
            for label, value in canaries.items():
                all_canaries[f"{op} {caller.label} {label}"] = value
            calls.append(TableCall(op, caller, params, outcome, canaries, unsigned))

    coffer_log.wait_all([c.outcome.request_id for c in calls], timeout=5)
    now = datetime.now(timezone.utc)
    for call in calls:
        where = f"{call.operation} as {call.caller.label}"
        o = call.outcome
        if not o.request_id:
            failures.append(f"{where}: the client got no request id (error {o.error!r})")
            continue
        found = coffer_log.by_request.get(o.request_id, [])
        if len(found) != 1:
            failures.append(f"{where}: {len(found)} events with requestID {o.request_id} (outcome {o.error or 'OK'})")
            continue
        e, line = found[0].event, found[0].line
        problems = []
        if e.get("eventName") != call.operation:
            problems.append(f"eventName {e.get('eventName')!r}")
        if e.get("eventSource") != SOURCES[service]:
            problems.append(f"eventSource {e.get('eventSource')!r}")
        if e.get("errorCode") != o.error:
            problems.append(f"errorCode {e.get('errorCode')!r} but the client got {o.error!r}")
        if o.error is not None and "errorMessage" not in e:
            problems.append("a failed call without errorMessage")
        ui = e.get("userIdentity") or {}
        if call.unsigned:
            # Sent without credentials: whoever the event names, it is not the signer of the other calls.
            if ui.get("type") in ("Root", "IAMUser") or ui.get("arn") == call.caller.arn:
                problems.append(f"an unsigned request attributed to {ui}")
        else:
            if ui.get("type") != call.caller.kind:
                problems.append(f"userIdentity.type {ui.get('type')!r}, expected {call.caller.kind!r}")
            if ui.get("arn") != call.caller.arn:
                problems.append(f"userIdentity.arn {ui.get('arn')!r}, expected {call.caller.arn!r}")
            if ui.get("accountId") != w.endpoint.account:
                problems.append(f"userIdentity.accountId {ui.get('accountId')!r}")
            if ui.get("accessKeyId") != call.caller.creds["AccessKeyId"]:
                problems.append(f"userIdentity.accessKeyId {ui.get('accessKeyId')!r}")
            if call.caller.user_name is not None and ui.get("userName") != call.caller.user_name:
                problems.append(f"userIdentity.userName {ui.get('userName')!r}")
        if not isinstance(e.get("readOnly"), bool):
            problems.append(f"readOnly {e.get('readOnly')!r} is not a bool")
        elif call.operation.startswith(READ_PREFIXES) and e["readOnly"] is not True:
            problems.append("a Get/List/Describe call with readOnly false")
        elif call.operation.startswith(WRITE_PREFIXES) and e["readOnly"] is not False:
            problems.append("a Create/Delete/Put/Update call with readOnly true")
        try:
            t = parse_event_time(e.get("eventTime", ""))
            if abs((t - now).total_seconds()) > 600:
                problems.append(f"eventTime {e['eventTime']} is not now")
        except ValueError:
            problems.append(f"eventTime {e.get('eventTime')!r} does not parse as {EVENT_TIME_FORMAT}")
        if e.get("eventType") != "AwsApiCall":
            problems.append(f"eventType {e.get('eventType')!r}")
        if e.get("awsRegion") != w.endpoint.region:
            problems.append(f"awsRegion {e.get('awsRegion')!r}")
        # The request's plain string members, first letter lower-cased; the secret ones never.
        rp = e.get("requestParameters")
        for name, value in call.params.items():
            shape = model.operation_model(call.operation).input_shape.members[name]
            if name in SECRET_MEMBERS:
                if isinstance(rp, dict) and lower_first(name) in rp:
                    problems.append(f"requestParameters keeps the secret member {lower_first(name)}")
            elif shape.type_name == "string" and not isinstance(rp, dict):
                problems.append(f"requestParameters is {rp!r}, without {lower_first(name)}")
                break
            elif shape.type_name == "string" and rp.get(lower_first(name)) != value:
                problems.append(f"requestParameters.{lower_first(name)} is {rp.get(lower_first(name))!r}, sent {value!r}")
        leaked = not_in_event(line, e, call.canaries)
        if leaked:
            problems.append(f"the event holds {', '.join(leaked)}")
        if problems:
            failures.append(f"{where} [{o.error or 'OK'}]: " + "; ".join(problems))

    for leak in leaks(coffer.data_dir, {k: v for k, v in all_canaries.items() if encodings(v)}):
        failures.append(f"leaked: {leak}")
    ok = sum(1 for c in calls if c.outcome.error is None)
    print(f"{service}: {len(calls)} calls, {ok} succeeded, {len(failures)} problems")
    if failures:
        pytest.fail(f"{len(failures)} problem(s) in {len(calls)} {service} calls:\n" + "\n".join(failures), pytrace=False)


# =========================================================================================================================
# 2. Secrets never reach the log or the database
# =========================================================================================================================
def test_secret_values_keys_passwords_and_credentials_never_reach_the_log_or_the_db(new_account, coffer, coffer_log):
    ep = new_account().endpoint
    sm, kms, iam = client(ep, "secretsmanager"), client(ep, "kms"), client(ep, "iam")
    secret: dict[str, str | bytes] = {}
    # request id -> (operation, checks of its event)
    checks: dict[str, tuple[str, list[Callable[[dict], list[str]]]]] = {}
    missing_ids: list[str] = []

    def expect(call: dict | Outcome, operation: str, *more: Callable[[dict], list[str]]) -> dict | Outcome:
        request_id = call.request_id if isinstance(call, Outcome) else call["ResponseMetadata"].get("RequestId")
        if not request_id:
            missing_ids.append(operation)
        else:
            checks.setdefault(request_id, (operation, []))[1].extend(more)
        return call

    def params_are(**expected) -> Callable[[dict], list[str]]:
        def check(e: dict) -> list[str]:
            rp = e.get("requestParameters") or {}
            return [f"requestParameters.{k} is {rp.get(k)!r}, expected {v!r}" for k, v in expected.items() if rp.get(k) != v]

        return check

    def response_mentions(value: str, what: str) -> Callable[[dict], list[str]]:
        def check(e: dict) -> list[str]:
            re_ = e.get("responseElements")
            return [] if value in json.dumps(re_) else [f"responseElements {re_!r} lacks {what} {value}"]

        return check

    # --- Secrets Manager ---
    n1, n2 = unique_name("canary-s"), unique_name("canary-b")
    secret["SecretString 1"] = s1 = canary("s1")
    secret["SecretBinary 1"] = b1 = b"\x00\xffbin" + secrets.token_bytes(24)
    secret["SecretString 2"] = s2 = canary("s2")
    secret["SecretBinary 2"] = b2 = secrets.token_bytes(40)
    secret["SecretString 3"] = s3 = canary("s3")
    created = sm.create_secret(Name=n1, SecretString=s1, Description="canary")
    expect(created, "CreateSecret", params_are(name=n1, description="canary"),
           response_mentions(created["VersionId"], "versionId"), response_mentions(created["ARN"], "the ARN"))
    expect(sm.create_secret(Name=n2, SecretBinary=b1), "CreateSecret", params_are(name=n2))
    put = sm.put_secret_value(SecretId=n1, SecretString=s2)
    expect(put, "PutSecretValue", params_are(secretId=n1), response_mentions(put["VersionId"], "versionId"))
    expect(sm.put_secret_value(SecretId=n2, SecretBinary=b2), "PutSecretValue", params_are(secretId=n2))
    expect(sm.update_secret(SecretId=n1, SecretString=s3), "UpdateSecret", params_are(secretId=n1))
    got = expect(sm.get_secret_value(SecretId=n1), "GetSecretValue", params_are(secretId=n1))
    assert got["SecretString"] == s3
    old = sm.get_secret_value(SecretId=n1, VersionId=put["VersionId"])
    assert old["SecretString"] == s2
    expect(old, "GetSecretValue", params_are(secretId=n1, versionId=put["VersionId"]))
    binary = expect(sm.get_secret_value(SecretId=n2), "GetSecretValue", params_are(secretId=n2))
    assert binary["SecretBinary"] == b2
    batch = sm.batch_get_secret_value(SecretIdList=[n1, n2])
    assert {v["Name"] for v in batch["SecretValues"]} == {n1, n2}
    expect(batch, "BatchGetSecretValue", params_are(secretIdList=[n1, n2]))
    pw = sm.get_random_password(PasswordLength=48, ExcludePunctuation=True)
    expect(pw, "GetRandomPassword", params_are(passwordLength=48, excludePunctuation=True))
    secret["RandomPassword"] = pw["RandomPassword"]

    # --- KMS ---
    key = kms.create_key(Description="canary")["KeyMetadata"]
    key_id, key_arn = key["KeyId"], key["Arn"]
    secret["Encrypt Plaintext"] = p1 = canary("kmsplain").encode()
    enc = expect(kms.encrypt(KeyId=key_id, Plaintext=p1), "Encrypt", params_are(keyId=key_id))
    dec = expect(kms.decrypt(CiphertextBlob=enc["CiphertextBlob"]), "Decrypt")
    assert dec["Plaintext"] == p1
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    expect(dk, "GenerateDataKey", params_are(keyId=key_id, keySpec="AES_256"))
    assert len(dk["Plaintext"]) == 32
    secret["GenerateDataKey Plaintext"] = dk["Plaintext"]
    assert expect(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"]), "Decrypt")["Plaintext"] == dk["Plaintext"]
    dk2 = expect(kms.generate_data_key(KeyId=key_arn, NumberOfBytes=48), "GenerateDataKey", params_are(keyId=key_arn))
    secret["GenerateDataKey (48 bytes) Plaintext"] = dk2["Plaintext"]
    rnd = expect(kms.generate_random(NumberOfBytes=32), "GenerateRandom")
    secret["GenerateRandom Plaintext"] = rnd["Plaintext"]
    pair = expect(attempt(kms.generate_data_key_pair, KeyId=key_id, KeyPairSpec="ECC_NIST_P256"), "GenerateDataKeyPair")
    if pair.response is not None:
        secret["GenerateDataKeyPair PrivateKeyPlaintext"] = pair.response["PrivateKeyPlaintext"]

    # --- IAM and STS ---
    user = make_user(ep, prefix="audit-canary")
    secret["CreateAccessKey SecretAccessKey"] = user.creds["SecretAccessKey"]
    made = iam.create_access_key(UserName=user.name)
    secret["CreateAccessKey SecretAccessKey (2)"] = made["AccessKey"]["SecretAccessKey"]
    expect(made, "CreateAccessKey", params_are(userName=user.name),
           response_mentions(made["AccessKey"]["AccessKeyId"], "the new access key id"))
    secret["CreateLoginProfile Password"] = login_pw = "Aa1!" + canary("login")
    lp = expect(attempt(iam.create_login_profile, UserName=user.name, Password=login_pw), "CreateLoginProfile",
                params_are(userName=user.name))
    if lp.response is not None:
        secret["UpdateLoginProfile Password"] = login_pw2 = "Bb2@" + canary("login2")
        expect(iam.update_login_profile(UserName=user.name, Password=login_pw2), "UpdateLoginProfile", params_are(userName=user.name))

    def issued(creds: dict) -> Callable[[dict], list[str]]:
        def check(e: dict) -> list[str]:
            re_ = e.get("responseElements")
            out = [] if creds["AccessKeyId"] in json.dumps(re_) else [f"responseElements {re_!r} lacks the issued access key id"]
            bad = keys_deep(re_) & {"secretaccesskey", "sessiontoken"}
            return out + ([f"responseElements keeps {sorted(bad)}"] if bad else [])

        return check

    user_sts = client(ep, "sts", user.creds)
    gst = user_sts.get_session_token(DurationSeconds=900)
    expect(gst, "GetSessionToken", issued(gst["Credentials"]),
           lambda e: [] if str((e.get("requestParameters") or {}).get("durationSeconds")) == "900"
           else [f"requestParameters {e.get('requestParameters')!r} lacks durationSeconds 900"])
    secret["GetSessionToken SecretAccessKey"] = gst["Credentials"]["SecretAccessKey"]
    secret["GetSessionToken SessionToken"] = gst["Credentials"]["SessionToken"]
    role = iam.create_role(
        RoleName=f"audit-canary-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=doc({"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": "sts:AssumeRole"}),
    )["Role"]
    assumed = user_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="canary")
    expect(assumed, "AssumeRole", params_are(roleArn=role["Arn"], roleSessionName="canary"), issued(assumed["Credentials"]))
    secret["AssumeRole SecretAccessKey"] = assumed["Credentials"]["SecretAccessKey"]
    secret["AssumeRole SessionToken"] = assumed["Credentials"]["SessionToken"]
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"canary-{uuid.uuid4().hex[:8]}")
    expect(device, "CreateVirtualMFADevice", response_mentions(device["VirtualMFADevice"]["SerialNumber"], "the serial number"))
    secret["Base32StringSeed"] = device["VirtualMFADevice"]["Base32StringSeed"]
    secret["Base32StringSeed (decoded)"] = base64.b32decode(device["VirtualMFADevice"]["Base32StringSeed"])
    secret["QRCodePNG"] = device["VirtualMFADevice"]["QRCodePNG"]

    problems = [f"{op}: the client got no request id" for op in missing_ids]
    coffer_log.wait_all(checks)
    secret_request_members = {m.lower() for m in SECRET_MEMBERS}
    secret_response_members = {m.lower() for m in RESPONSE_SECRETS}
    for request_id, (operation, more) in checks.items():
        found = coffer_log.by_request.get(request_id, [])
        if len(found) != 1:
            problems.append(f"{operation} {request_id}: {len(found)} events")
            continue
        e = found[0].event
        if e.get("eventName") != operation:
            problems.append(f"{operation} {request_id}: eventName {e.get('eventName')!r}")
        for check in more:
            problems += [f"{operation}: {p}" for p in check(e)]
        bad = keys_deep(e.get("requestParameters")) & secret_request_members
        bad |= keys_deep(e.get("responseElements")) & secret_response_members
        if bad:
            problems.append(f"{operation}: the event keeps the members {sorted(bad)}")
    problems += [f"leaked: {x}" for x in leaks(coffer.data_dir, secret)]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    # CreateLoginProfile is checked only if implemented: a refusal must be "not implemented", not anything else.
    assert lp.response is not None or lp.error == "InvalidAction", f"CreateLoginProfile failed: {lp.error} {lp.message}"


# =========================================================================================================================
# 3. Who called: root, IAM users, role sessions, GetSessionToken sessions, unauthenticated callers
# =========================================================================================================================
def test_identities_of_root_users_role_sessions_and_denials(new_account, coffer_log):
    ep = new_account().endpoint
    sm_root = client(ep, "secretsmanager")
    name = unique_name("ident")
    allowed_arn = sm_root.create_secret(Name=name, SecretString="v")["ARN"]
    other = unique_name("ident-other")
    sm_root.create_secret(Name=other, SecretString="v")

    # Root.
    r = sm_root.describe_secret(SecretId=name)
    ui = coffer_log.one(rid(r))["userIdentity"]
    assert ui["type"] == "Root" and ui["arn"] == root_arn(ep) and ui["principalId"] == ep.account
    assert ui["accountId"] == ep.account and ui["accessKeyId"] == ep.access_key
    assert "sessionContext" not in ui

    # An IAM user without permission: denied, and the denial is recorded as the client saw it.
    user = make_user(ep)
    out = denied(client(ep, "secretsmanager", user.creds).get_secret_value, SecretId=name)
    assert out.error == "AccessDeniedException"
    e = coffer_log.one(out.request_id)
    assert e["eventName"] == "GetSecretValue" and e["errorCode"] == "AccessDeniedException"
    assert e["errorMessage"] == out.message
    assert f"User: {user.arn} is not authorized to perform: secretsmanager:GetSecretValue" in e["errorMessage"]
    assert e["userIdentity"]["type"] == "IAMUser" and e["userIdentity"]["arn"] == user.arn
    assert e["userIdentity"]["userName"] == user.name and e["userIdentity"]["accessKeyId"] == user.key_id
    assert e["userIdentity"]["principalId"].startswith("AIDA")
    assert e["responseElements"] is None and e["readOnly"] is True
    assert e["requestParameters"] == {"secretId": name}
    assert e["recipientAccountId"] == ep.account

    # A role session (with a source identity): the session's ARN, the role as its issuer, no MFA.
    iam = client(ep, "iam")
    role = iam.create_role(
        RoleName=f"audit-ident-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"]}
        ),
    )["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="read", PolicyDocument=doc(allow("secretsmanager:GetSecretValue", allowed_arn)))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assumed = client(ep, "sts", user.creds).assume_role(RoleArn=role["Arn"], RoleSessionName="audit-sess", SourceIdentity="alice")
    e = coffer_log.one(rid(assumed))
    assert e["eventName"] == "AssumeRole" and e["eventSource"] == "sts.amazonaws.com"
    assert e["userIdentity"]["arn"] == user.arn
    assert {"accountId": ep.account, "type": "AWS::IAM::Role", "ARN": role["Arn"]} in e.get("resources", [])
    creds = assumed["Credentials"]
    session_sm = client(ep, "secretsmanager", creds)
    r = session_sm.get_secret_value(SecretId=name)
    e = coffer_log.one(rid(r))
    ui = e["userIdentity"]
    session_arn = f"arn:aws:sts::{ep.account}:assumed-role/{role['RoleName']}/audit-sess"
    assert ui["type"] == "AssumedRole" and ui["arn"] == session_arn
    assert ui["principalId"] == f"{role['RoleId']}:audit-sess"
    assert ui["accessKeyId"] == creds["AccessKeyId"] and ui["accountId"] == ep.account
    sc = ui["sessionContext"]
    assert sc["sessionIssuer"] == {
        "type": "Role",
        "principalId": role["RoleId"],
        "arn": role["Arn"],
        "accountId": ep.account,
        "userName": role["RoleName"],
    }
    assert sc["attributes"]["mfaAuthenticated"] == "false"
    created = parse_event_time(sc["attributes"]["creationDate"])
    assert before - timedelta(seconds=2) <= created <= datetime.now(timezone.utc) + timedelta(seconds=2)
    assert sc.get("sourceIdentity") == "alice"
    assert e.get("resources") == [{"accountId": ep.account, "type": "AWS::SecretsManager::Secret", "ARN": allowed_arn}]
    # The same session denied elsewhere: the denial names the session.
    out = denied(session_sm.get_secret_value, SecretId=other)
    e = coffer_log.one(out.request_id)
    assert e["errorCode"] == "AccessDeniedException" == out.error and e["errorMessage"] == out.message
    assert session_arn in e["errorMessage"] and e["userIdentity"]["arn"] == session_arn

    # A GetSessionToken session: the user, with session attributes and no issuer.
    gst = client(ep, "sts", user.creds).get_session_token(DurationSeconds=900)["Credentials"]
    who = client(ep, "sts", gst).get_caller_identity()
    e = coffer_log.one(rid(who))
    ui = e["userIdentity"]
    assert e["eventName"] == "GetCallerIdentity" and e["eventSource"] == "sts.amazonaws.com"
    assert ui["type"] == "IAMUser" and ui["arn"] == user.arn and ui["accessKeyId"] == gst["AccessKeyId"]
    assert ui["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert "sessionIssuer" not in ui["sessionContext"]


@pytest.mark.parametrize(
    "service, call, code",
    [
        ("secretsmanager", lambda c: c.get_secret_value(SecretId="x"), "UnrecognizedClientException"),
        ("kms", lambda c: c.list_keys(), "UnrecognizedClientException"),
        ("iam", lambda c: c.list_users(), "InvalidClientTokenId"),
        ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId"),
        ("cloudtrail", lambda c: c.lookup_events(), "UnrecognizedClientException"),
    ],
)
def test_an_unknown_access_key_is_recorded_as_an_unknown_caller(coffer, coffer_log, service, call, code):
    claimed = "AKIA" + uuid.uuid4().hex[:16].upper()
    c = client(coffer, service, {"AccessKeyId": claimed, "SecretAccessKey": "x" * 40})
    with pytest.raises(ClientError) as caught:
        call(c)
    got = caught.value.response
    request_id = got["ResponseMetadata"].get("RequestId")
    assert request_id, "an authentication failure without x-amzn-requestid"
    e = coffer_log.one(request_id)
    assert got["Error"]["Code"] == code, got["Error"]  # what AWS answers for a key it does not know
    assert e["errorCode"] == code and e["errorMessage"] == got["Error"]["Message"]
    assert e["eventSource"] == SOURCES[service]
    assert e["userIdentity"].get("type") == "Unknown" and e["userIdentity"].get("accessKeyId") == claimed
    assert "arn" not in e["userIdentity"]


def test_an_unsigned_request_is_recorded(coffer, coffer_log):
    resp = RawClient(coffer).call("GetSecretValue", {"SecretId": "whatever"}, sign=False)
    assert resp.status in (400, 403)
    request_id = resp.headers.get("x-amzn-requestid")
    assert request_id, resp.headers
    e = coffer_log.one(request_id)
    assert e["eventName"] == "GetSecretValue" and e["eventSource"] == "secretsmanager.amazonaws.com"
    assert e["errorCode"] == resp.error_code
    assert e["userIdentity"]["type"] == "Unknown" and "arn" not in e["userIdentity"]


def test_credentials_an_authentication_error_quotes_are_not_recorded(coffer, coffer_log):
    # AWS's authentication errors quote the client's Authorization header back to it; that header may be a bearer
    # token or a password sent to the wrong service, and must not reach the trail.
    token = "bearercanary" + uuid.uuid4().hex
    raw = RawClient(coffer)
    resp = raw.http.request(
        "POST",
        coffer.url + "/",
        body=b'{"SecretId":"whatever"}',
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue",
            "Authorization": f"Bearer {token}",
        },
        redirect=False,
    )
    assert resp.status in (400, 403)
    assert token in resp.data.decode(), "the client is told what it sent (else this test checks nothing)"
    e = coffer_log.one(resp.headers["x-amzn-requestid"])
    assert e["errorCode"] and e["userIdentity"]["type"] == "Unknown"
    assert token not in json.dumps(e)
    assert leaks(coffer.data_dir, {"bearer token": token}) == []


@pytest.mark.parametrize("size", [200_000, 1_500_000])
def test_a_large_request_below_the_body_limit_is_still_one_event(coffer, coffer_log, size):
    """A request under the 2 MiB body limit whose members are large (an absurd SecretId) is answered with a client
    error and recorded like any other call; the event may shorten what it quotes, but it must exist."""
    resp = RawClient(coffer).call("DescribeSecret", {"SecretId": "x" * size})
    request_id = resp.headers.get("x-amzn-requestid")
    assert request_id, resp.headers
    assert resp.status < 500, f"{resp.status} {resp.error_code}: {resp.error_message}"
    e = coffer_log.one(request_id)
    assert e["eventName"] == "DescribeSecret" and e["errorCode"] == resp.error_code


def test_mfa_sessions_and_codes_on_the_manual_clock(coffer_clock, admin, clock_log):
    """MFA-authenticated sessions say so; the seed and the one-time codes appear in no event, file or database."""
    ep = coffer_clock
    iam = client(ep, "iam")
    user = make_user(ep, allow("sts:GetSessionToken"), prefix="audit-mfa")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"audit-{uuid.uuid4().hex[:8]}")
    serial = device["VirtualMFADevice"]["SerialNumber"]
    seed = device["VirtualMFADevice"]["Base32StringSeed"]
    e = clock_log.one(rid(device))
    assert e["eventName"] == "CreateVirtualMFADevice"
    assert serial in json.dumps(e.get("responseElements")), e.get("responseElements")
    step = current_step(admin)
    codes = {"AuthenticationCode1": totp(seed, step - 1), "AuthenticationCode2": totp(seed, step)}
    enabled = iam.enable_mfa_device(UserName=user.name, SerialNumber=serial, **codes)
    e_enable = clock_log.one(rid(enabled))
    assert e_enable["requestParameters"] == {"userName": user.name, "serialNumber": serial}
    admin.advance(30)
    code = totp(seed, current_step(admin))
    gst = client(ep, "sts", user.creds).get_session_token(SerialNumber=serial, TokenCode=code)
    e_gst = clock_log.one(rid(gst))
    assert e_gst["requestParameters"].get("serialNumber") == serial and "tokenCode" not in e_gst["requestParameters"]
    who = client(ep, "sts", gst["Credentials"]).get_caller_identity()
    ui = clock_log.one(rid(who))["userIdentity"]
    assert ui["arn"] == user.arn and ui["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"

    role = iam.create_role(
        RoleName=f"audit-mfa-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=doc({"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": "sts:AssumeRole"}),
    )["Role"]
    admin.advance(30)
    code2 = totp(seed, current_step(admin))
    assumed = client(ep, "sts", user.creds).assume_role(
        RoleArn=role["Arn"], RoleSessionName="mfa-sess", SerialNumber=serial, TokenCode=code2
    )
    e_assume = clock_log.one(rid(assumed))
    who = client(ep, "sts", assumed["Credentials"]).get_caller_identity()
    ui = clock_log.one(rid(who))["userIdentity"]
    assert ui["type"] == "AssumedRole"
    assert ui["sessionContext"]["sessionIssuer"]["arn"] == role["Arn"]
    assert ui["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"

    # Six-digit codes are too short to look for in whole files: they are looked for in the events that carried them.
    for event, values in [
        (e_enable, codes),
        (e_gst, {"TokenCode": code}),
        (e_assume, {"TokenCode": code2}),
    ]:
        text = json.dumps(event)
        assert not [k for k, v in values.items() if v in text], f"{event['eventName']} event holds an MFA code: {text}"
    found = leaks(
        ep.data_dir,
        {
            "Base32StringSeed": seed,
            "seed bytes": base64.b32decode(seed),
            "QRCodePNG": device["VirtualMFADevice"]["QRCodePNG"],
            "GetSessionToken SecretAccessKey": gst["Credentials"]["SecretAccessKey"],
            "GetSessionToken SessionToken": gst["Credentials"]["SessionToken"],
            "AssumeRole SessionToken": assumed["Credentials"]["SessionToken"],
            "user SecretAccessKey": user.creds["SecretAccessKey"],
        },
    )
    assert not found, found


def test_the_purge_at_the_end_of_a_waiting_period_is_a_service_event(coffer_clock, admin, clock_log):
    sm, kms = client(coffer_clock, "secretsmanager"), client(coffer_clock, "kms")
    arn = sm.create_secret(Name=unique_name("purge"), SecretString=canary("purge"))["ARN"]
    deleted = sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    e = clock_log.one(rid(deleted))
    assert e["eventName"] == "DeleteSecret" and e["eventType"] == "AwsApiCall" and e["readOnly"] is False
    assert e["requestParameters"] == {"secretId": arn, "recoveryWindowInDays": 7}
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.schedule_key_deletion(KeyId=key_arn, PendingWindowInDays=7)
    admin.advance(8 * 86_400)
    assert admin.run_tasks() >= 1

    def service_events(resource_arn: str, name: str) -> list[dict]:
        return clock_log.events(
            lambda ev: ev.get("eventType") == "AwsServiceEvent"
            and ev.get("eventName") == name
            and any(r.get("ARN") == resource_arn for r in ev.get("resources", []))
        )

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (service_events(arn, "DeleteSecret") and service_events(key_arn, "DeleteKey")):
        admin.run_tasks()
        time.sleep(0.2)
    for resource_arn, name, source in [(arn, "DeleteSecret", "secretsmanager"), (key_arn, "DeleteKey", "kms")]:
        found = service_events(resource_arn, name)
        assert len(found) == 1, f"{len(found)} {name} service events for {resource_arn}"
        ev = found[0]
        assert ev["eventSource"] == f"{source}.amazonaws.com"
        assert ev["userIdentity"].get("invokedBy") == f"{source}.amazonaws.com"
        assert ev["userIdentity"].get("accountId") == coffer_clock.account
        assert ev["recipientAccountId"] == coffer_clock.account
        assert ev["readOnly"] is False and ev["managementEvent"] is True
        parse_event_time(ev["eventTime"])


def test_a_rotation_is_recorded_as_service_events_without_the_new_password(coffer_clock, admin, clock_log, tmp_path):
    from test_rotation import python_function

    sm = client(coffer_clock, "secretsmanager")
    fn = python_function(coffer_clock, tmp_path)
    old = canary("rotold")
    arn = sm.create_secret(Name=unique_name("rot-audit"), SecretString=json.dumps({"username": "app", "password": old}))["ARN"]
    out = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn, RotationRules={"AutomaticallyAfterDays": 30})
    e = clock_log.one(rid(out))
    assert e["eventName"] == "RotateSecret" and e["readOnly"] is False
    admin.run_tasks()
    new = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"]
    assert new != old

    def names() -> list[str]:
        return [
            ev["eventName"]
            for ev in clock_log.events(
                lambda ev: ev.get("eventType") == "AwsServiceEvent" and any(r.get("ARN") == arn for r in ev.get("resources", []))
            )
        ]

    deadline = time.monotonic() + 10
    while "RotationSucceeded" not in names() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert names() == ["RotationStarted", "RotationSucceeded"], names()
    # The rotation function's own calls (PutSecretValue of the new password with its scoped credentials) are events
    # like any other; none of them, and no service event, holds the new password.
    found = leaks(coffer_clock.data_dir, {"old password": old, "new password": new})
    assert not found, found


# =========================================================================================================================
# 4. Tampering with a sealed log: `coffer audit verify`
# =========================================================================================================================
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("AWS_") or k.startswith("COFFER_"))}
    env.setdefault("RUST_LOG", "warn")
    return env


class DataDirServer:
    """`coffer server --data-dir DIR --insecure-http` on a free loopback port."""

    def __init__(self, data_dir: Path, init: dict, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = Endpoint(
            url=self.url,
            access_key=init["access_key_id"],
            secret_key=init["secret_access_key"],
            region="us-east-1",
            account=init["account_id"],
            data_dir=str(data_dir),
        )
        self.stderr = open(data_dir.parent / f"server-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [str(coffer_binary()), "server", "--data-dir", str(data_dir), "--insecure-http", "--listen", f"127.0.0.1:{self.port}", *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env=cli_env(),
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"the server did not listen within 30 s: {self.log()}")
                time.sleep(0.1)

    def log(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def stop(self) -> int:
        """SIGTERM (a graceful stop that seals the log); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("the server did not stop within 20 s of SIGTERM")
        return self.proc.returncode


def init_data_dir(path: Path) -> dict:
    return run_coffer("init", "--data-dir", str(path), "--format", "json").json


@dataclass
class Sealed:
    data_dir: Path
    pem_file: Path
    events: int


@pytest.fixture(scope="module")
def sealed_trail(tmp_path_factory) -> Sealed:
    """A data directory whose server ran, answered a few batches of calls a digest interval apart (so that digests
    fall between records), and was stopped with SIGTERM (which seals the log); plus its public key."""
    root = tmp_path_factory.mktemp("sealed")
    data = root / "data"
    init = init_data_dir(data)
    server = DataDirServer(data, init)
    try:
        sm = client(server.endpoint, "secretsmanager")
        name = unique_name("sealed")
        sm.create_secret(Name=name, SecretString="sealed-value")
        for _ in range(3):
            for _ in range(6):
                sm.get_secret_value(SecretId=name)
            sm.describe_secret(SecretId=name)
            time.sleep(1.5)  # digests are written every second
        live_pem = run_coffer("audit", "public-key", "--data-dir", str(data)).stdout
    finally:
        code = server.stop()
    assert code == 0, f"SIGTERM should stop the server cleanly, exit code {code}: {server.log()}"
    pem = run_coffer("audit", "public-key", "--data-dir", str(data)).stdout
    assert "-----BEGIN PUBLIC KEY-----" in pem
    assert pem == live_pem, "the running server and the store disagree about the public key"
    pem_file = root / "audit.pem"
    pem_file.write_text(pem)
    log = AuditLog(data)
    log.refresh()
    return Sealed(data, pem_file, len(log.records))


def verify(data_dir: Path, pem: Path | None, *, output: str = "json") -> subprocess.CompletedProcess:
    args = [str(coffer_binary()), "audit", "verify", "--data-dir", str(data_dir), "--output", output]
    if pem is not None:
        args += ["--public-key", str(pem)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=cli_env())


def test_an_intact_sealed_log_verifies(sealed_trail):
    for pem in (sealed_trail.pem_file, None):  # with the exported key, and with the one in the store
        done = verify(sealed_trail.data_dir, pem)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["intact"] is True and report["problem"] is None
        assert report["records"] == sealed_trail.events >= 22
        assert report["first_seq"] == 1 and report["last_seq"] == sealed_trail.events
        assert report["sealed_through"] == report["last_seq"], "a graceful stop seals every record"
        assert report["unsealed_records"] == 0 and report["live"] is False
        assert report["digests"] >= 3
    table = verify(sealed_trail.data_dir, sealed_trail.pem_file, output="table")
    assert table.returncode == 0 and "OK: the trail verifies" in table.stdout, table.stdout


RECORD_DOMAIN = b"coffer-audit-record-v1\x00"


def record_parts(line: bytes) -> tuple[int, bytes, bytes, bytes]:
    """(seq, prev hex, hash hex, event bytes) of a record line, by position as the format defines it."""
    assert line.startswith(b'{"seq":')
    head, _, rest = line.partition(b',"prev":"')
    seq = int(head[len(b'{"seq":'):])
    prev, rest = rest[:64], rest[64:]
    assert rest.startswith(b'","hash":"')
    digest, rest = rest[10:74], rest[74:]
    assert rest.startswith(b'","event":') and rest.endswith(b"}")
    return seq, prev, digest, rest[len(b'","event":'):-1]


def encode_record(seq: int, prev_hex: bytes, event: bytes) -> tuple[bytes, bytes]:
    h = hashlib.sha256(RECORD_DOMAIN + seq.to_bytes(8, "big") + bytes.fromhex(prev_hex.decode()) + event).hexdigest().encode()
    return b'{"seq":%d,"prev":"%s","hash":"%s","event":%s}' % (seq, prev_hex, h, event), h


def flip_hex_after(line: bytes, marker: bytes) -> bytes:
    at = line.index(marker) + len(marker)
    c = line[at : at + 1]
    return line[:at] + (b"0" if c != b"0" else b"1") + line[at + 1 :]


@dataclass
class Segment:
    path: Path
    lines: list[bytes]  # without newlines

    @property
    def name(self) -> str:
        return self.path.name

    def kind(self, i: int) -> str:
        return "record" if self.lines[i].startswith(b'{"seq":') else "digest"

    def seq(self, i: int) -> int:
        return record_parts(self.lines[i])[0]

    def digest_last(self, i: int) -> int:
        return json.loads(self.lines[i])["digest"]["last_seq"]

    def middle_record(self) -> int:
        """A record line with records on the two lines before and after it, and a digest later on."""
        n = len(self.lines)
        ok = [
            i for i in range(2, n - 2)
            if all(self.kind(j) == "record" for j in range(i - 1, i + 3))
            and any(self.kind(j) == "digest" for j in range(i + 3, n))
        ]
        assert ok, "the sealed log has no run of four records followed by a digest"
        return ok[len(ok) // 2]

    def write(self, lines: list[bytes], tail: bytes = b"") -> None:
        self.path.write_bytes(b"".join(x + b"\n" for x in lines) + tail)


def tampered_copy(sealed: Sealed, tmp_path: Path) -> tuple[Path, Segment]:
    copy = tmp_path / "copy"
    shutil.copytree(sealed.data_dir, copy)
    segs = sorted((copy / "audit").glob("seg-*.jsonl"))
    assert len(segs) == 1, segs
    data = segs[0].read_bytes()
    assert data.endswith(b"\n")
    return copy, Segment(segs[0], data[:-1].split(b"\n"))


def tamper_changed(s: Segment):
    i = s.middle_record()
    s.lines[i] = flip_hex_after(s.lines[i], b'"eventID":"')
    return "changed", i + 1, s.seq(i), "hash does not match"


def tamper_rehashed(s: Segment):
    i = s.middle_record()
    original = list(s.lines)
    # First prove that re-encoding reproduces the records, so the edited chain below is a faithful forgery.
    prev = record_parts(s.lines[i])[1]
    for j in range(i, len(s.lines)):
        if s.kind(j) == "record":
            seq, _, _, event = record_parts(s.lines[j])
            line, prev = encode_record(seq, prev, event)
            assert line == original[j], "the test's record encoding differs from the log's"
    prev = record_parts(s.lines[i])[1]
    for j in range(i, len(s.lines)):
        if s.kind(j) == "record":
            seq, _, _, event = record_parts(s.lines[j])
            if j == i:
                event = event.replace(b'"readOnly":true', b'"readOnly":false', 1).replace(b'"eventID":"', b'"eventID":"f', 1)
            s.lines[j], prev = encode_record(seq, prev, event)
    first_digest = next(j for j in range(i, len(s.lines)) if s.kind(j) == "digest")
    return "changed", first_digest + 1, s.digest_last(first_digest), "re-hashed"


def tamper_deleted(s: Segment):
    i = s.middle_record()
    seq = s.seq(i)
    del s.lines[i]
    return "deleted", i + 1, seq + 1, f"seq {seq} is missing"


def tamper_inserted(s: Segment):
    i = s.middle_record()
    s.lines.insert(i + 1, s.lines[i])
    return "inserted", i + 2, s.seq(i), ""


def tamper_reordered(s: Segment):
    i = s.middle_record()
    s.lines[i], s.lines[i + 1] = s.lines[i + 1], s.lines[i]
    return "reordered", i + 1, s.seq(i), ""  # seq(i) is now the later record


def tamper_bad_digest(s: Segment):
    j = next(j for j in range(len(s.lines)) if s.kind(j) == "digest" and j < len(s.lines) - 2)
    s.lines[j] = flip_hex_after(s.lines[j], b'"signature":"')
    return "bad digest", j + 1, s.digest_last(j), "signature"


def tamper_malformed(s: Segment):
    i = s.middle_record()
    s.lines[i] = b"this line was replaced by hand"
    return "malformed", i + 1, None, ""


TAMPERINGS = {
    "changed": tamper_changed,
    "changed and re-hashed": tamper_rehashed,
    "deleted": tamper_deleted,
    "inserted": tamper_inserted,
    "reordered": tamper_reordered,
    "bad digest": tamper_bad_digest,
    "malformed": tamper_malformed,
}


def position_text(file: str, line: int, seq: int | None) -> str:
    return file + (f" line {line}" if line > 0 else "") + (f" (seq {seq})" if seq is not None else "")


def assert_broken(copy: Path, pem: Path, seg: str, kind: str, line: int | None, seq: int | None, detail: str = "") -> None:
    done = verify(copy, pem)
    assert done.returncode == 1, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    problem = report["problem"]
    assert report["intact"] is False and problem is not None, report
    got = (problem["kind"], problem["file"], problem["line"], problem["seq"])
    assert got == (kind, seg, line, seq), f"expected {(kind, seg, line, seq)}, got {got}: {problem['detail']}"
    assert detail in problem["detail"], problem["detail"]
    table = verify(copy, pem, output="table")
    assert table.returncode == 1
    assert f"BROKEN: {kind} at {position_text(seg, line, seq)}:" in table.stdout, table.stdout
    assert "does not verify" in table.stderr, table.stderr


@pytest.mark.parametrize("how", list(TAMPERINGS))
def test_a_tampered_record_is_named_by_kind_file_line_and_seq(sealed_trail, tmp_path, how):
    copy, seg = tampered_copy(sealed_trail, tmp_path)
    kind, line, seq, detail = TAMPERINGS[how](seg)
    seg.write(seg.lines)
    assert_broken(copy, sealed_trail.pem_file, seg.name, kind, line, seq, detail)


def test_a_tail_cut_mid_line_is_a_truncated_tail(sealed_trail, tmp_path):
    copy, seg = tampered_copy(sealed_trail, tmp_path)
    last = seg.lines[-1]
    seg.write(seg.lines[:-1], tail=last[: len(last) // 2])
    assert_broken(copy, sealed_trail.pem_file, seg.name, "truncated tail", len(seg.lines), None, "cut")


def test_a_tail_cut_by_whole_lines_is_a_truncated_tail(sealed_trail, tmp_path):
    copy, seg = tampered_copy(sealed_trail, tmp_path)
    # Drop the final digest and the records it covers back to the previous digest: the log still ends in a valid
    # digest, but the signed head promises more.
    previous_digest = max(j for j in range(len(seg.lines) - 1) if seg.kind(j) == "digest")
    kept = seg.lines[: previous_digest + 1]
    last_kept_seq = max(seg.seq(j) for j in range(len(kept)) if seg.kind(j) == "record")
    seg.write(kept)
    assert_broken(copy, sealed_trail.pem_file, seg.name, "truncated tail", len(kept) + 1, last_kept_seq + 1, "promises")


def test_another_key_does_not_verify_the_log(sealed_trail, tmp_path):
    other = tmp_path / "other"
    init_data_dir(other)
    pem = tmp_path / "other.pem"
    pem.write_text(run_coffer("audit", "public-key", "--data-dir", str(other)).stdout)
    assert pem.read_text() != sealed_trail.pem_file.read_text()
    done = verify(sealed_trail.data_dir, pem)
    assert done.returncode == 1, done.stdout
    assert json.loads(done.stdout)["problem"]["kind"] == "bad digest"


# =========================================================================================================================
# 5. LookupEvents
# =========================================================================================================================
def ct_event(item: dict) -> dict:
    return json.loads(item["CloudTrailEvent"])


def lookup_all(ct, **kwargs) -> tuple[list[dict], list[int]]:
    items, sizes = [], []
    for page in ct.get_paginator("lookup_events").paginate(**kwargs):
        items += page["Events"]
        sizes.append(len(page["Events"]))
    return items, sizes


def attr(key: str, value: str) -> list[dict]:
    return [{"AttributeKey": key, "AttributeValue": value}]


def test_aws_cli_lookup_events_finds_a_get_secret_value(coffer, coffer_log, aws_cli):
    sm = client(coffer, "secretsmanager")
    name = unique_name("cli-lookup")
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    got = rid(sm.get_secret_value(SecretId=name))
    for value in (name, arn):
        out = aws_cli("cloudtrail", "lookup-events", "--lookup-attributes", f"AttributeKey=ResourceName,AttributeValue={value}").json
        mine = [x for x in out["Events"] if ct_event(x)["requestID"] == got]
        assert len(mine) == 1, f"ResourceName={value}: {[x['EventName'] for x in out['Events']]}"
        item = mine[0]
        assert item["EventName"] == "GetSecretValue" and item["EventSource"] == "secretsmanager.amazonaws.com"
        assert item["Username"] == "root" and item["ReadOnly"] == "true"
        assert item["EventId"] == ct_event(item)["eventID"] == coffer_log.one(got)["eventID"]
        assert {"ResourceType": "AWS::SecretsManager::Secret", "ResourceName": arn} in item.get("Resources", [])
        assert [x["EventName"] for x in out["Events"]] == ["GetSecretValue", "CreateSecret"]


@pytest.fixture(scope="module")
def lookup_world(new_account):
    """Account A with one secret read 60 times (61 events name it), and account B with a secret of the same name."""
    a, b = new_account().endpoint, new_account().endpoint
    sm = client(a, "secretsmanager")
    name = unique_name("lookup")
    created = sm.create_secret(Name=name, SecretString="v")
    rids = [rid(created)] + [rid(sm.get_secret_value(SecretId=name)) for _ in range(60)]
    b_created = client(b, "secretsmanager").create_secret(Name=name, SecretString="v")
    return {"a": a, "b": b, "name": name, "arn": created["ARN"], "rids": rids, "b_rid": rid(b_created),
            "b_arn": b_created["ARN"]}


def test_lookup_pages_newest_first_over_more_than_fifty_events(lookup_world):
    w = lookup_world
    ct = client(w["a"], "cloudtrail")
    items, sizes = lookup_all(ct, LookupAttributes=attr("ResourceName", w["name"]))
    assert [ct_event(x)["requestID"] for x in items] == list(reversed(w["rids"])), "newest first, each once"
    assert sizes[0] == LOOKUP_PAGE_MAX and all(s <= LOOKUP_PAGE_MAX for s in sizes) and len(sizes) >= 2
    times = [x["EventTime"] for x in items]
    assert times == sorted(times, reverse=True)
    items20, sizes20 = lookup_all(ct, LookupAttributes=attr("ResourceName", w["name"]), PaginationConfig={"PageSize": 20})
    assert sizes20 == [20, 20, 20, 1]
    assert [x["EventId"] for x in items20] == [x["EventId"] for x in items]
    by_arn, _ = lookup_all(ct, LookupAttributes=attr("ResourceName", w["arn"]))
    assert [x["EventId"] for x in by_arn] == [x["EventId"] for x in items]
    # At most 50 per page whatever is asked.
    big = attempt(client(w["a"], "cloudtrail", validate=False).lookup_events, MaxResults=51)
    assert big.error is not None or len(big.response["Events"]) <= LOOKUP_PAGE_MAX


def test_lookup_attributes(lookup_world, coffer_log):
    w = lookup_world
    a = w["a"]
    ct = client(a, "cloudtrail")
    sm = client(a, "secretsmanager")
    # EventName
    second = sm.create_secret(Name=unique_name("lookup-2"), SecretString="v")
    items, _ = lookup_all(ct, LookupAttributes=attr("EventName", "CreateSecret"))
    assert {x["EventName"] for x in items} == {"CreateSecret"}
    in_account = coffer_log.events(lambda e: e.get("eventName") == "CreateSecret" and e.get("recipientAccountId") == a.account)
    assert [ct_event(x)["requestID"] for x in items] == [e["requestID"] for e in reversed(in_account)]
    assert {w["rids"][0], rid(second)} <= {ct_event(x)["requestID"] for x in items}
    # Username and AccessKeyId: an IAM user's own calls.
    user = make_user(a, allow(["cloudtrail:LookupEvents", "secretsmanager:ListSecrets"]), prefix="audit-looker")
    user_sm = client(a, "secretsmanager", user.creds)
    listed = [rid(user_sm.list_secrets()) for _ in range(3)]
    for key, value in (("Username", user.name), ("AccessKeyId", user.key_id)):
        items, _ = lookup_all(ct, LookupAttributes=attr(key, value))
        assert [ct_event(x)["requestID"] for x in items] == list(reversed(listed)), key
        assert {x["Username"] for x in items} == {user.name} and {x["AccessKeyId"] for x in items} == {user.key_id}
    # The user may look up too (its policy allows cloudtrail:LookupEvents), and sees the account's events.
    user_items, _ = lookup_all(client(a, "cloudtrail", user.creds), LookupAttributes=attr("EventName", "CreateSecret"))
    assert {x["EventId"] for x in user_items} == {x["EventId"] for x in lookup_all(ct, LookupAttributes=attr("EventName", "CreateSecret"))[0]}
    # ReadOnly
    writes, _ = lookup_all(ct, LookupAttributes=attr("ReadOnly", "false"))
    write_rids = {ct_event(x)["requestID"] for x in writes}
    assert {x["ReadOnly"] for x in writes} == {"false"}
    assert w["rids"][0] in write_rids and rid(second) in write_rids and not write_rids & set(w["rids"][1:])
    reads, _ = lookup_all(ct, LookupAttributes=attr("ReadOnly", "true"))
    assert {x["ReadOnly"] for x in reads} == {"true"} and set(w["rids"][1:]) <= {ct_event(x)["requestID"] for x in reads}
    # EventId
    wanted = coffer_log.one(w["rids"][30])
    items, _ = lookup_all(ct, LookupAttributes=attr("EventId", wanted["eventID"]))
    assert [x["EventId"] for x in items] == [wanted["eventID"]]
    assert ct_event(items[0]) == wanted
    # EventSource
    items, _ = lookup_all(ct, LookupAttributes=attr("EventSource", "iam.amazonaws.com"))
    assert items and {x["EventSource"] for x in items} == {"iam.amazonaws.com"}
    assert {x["EventName"] for x in items} >= {"CreateUser", "PutUserPolicy", "CreateAccessKey"}


def test_lookup_by_time_range(lookup_world, coffer_log):
    a = lookup_world["a"]
    sm, ct = client(a, "secretsmanager"), client(a, "cloudtrail")
    name = unique_name("lookup-time")
    created = rid(sm.create_secret(Name=name, SecretString="v"))
    calls = []
    for i in range(3):
        if i:
            time.sleep(2.1)  # eventTime has whole seconds: the three calls fall in three different seconds
        calls.append(rid(sm.describe_secret(SecretId=name)))
    times = [parse_event_time(coffer_log.one(r)["eventTime"]) for r in calls]
    assert times[0] < times[1] < times[2]
    ids = lambda items: [ct_event(x)["requestID"] for x in items]  # noqa: E731
    only, _ = lookup_all(ct, LookupAttributes=attr("ResourceName", name), StartTime=times[1], EndTime=times[1])
    assert ids(only) == [calls[1]]
    since, _ = lookup_all(ct, LookupAttributes=attr("ResourceName", name), StartTime=times[1])
    assert ids(since) == [calls[2], calls[1]]
    until, _ = lookup_all(ct, LookupAttributes=attr("ResourceName", name), EndTime=times[1])
    assert ids(until) == [calls[1], calls[0], created]


def test_lookup_needs_permission_and_stays_in_the_callers_account(lookup_world, coffer_log):
    w = lookup_world
    a, b = w["a"], w["b"]
    # Without cloudtrail:LookupEvents: denied, and the denial is an event too.
    nobody = make_user(a, allow("secretsmanager:ListSecrets"), prefix="audit-nolookup")
    out = denied(client(a, "cloudtrail", nobody.creds).lookup_events, LookupAttributes=attr("ResourceName", w["name"]))
    assert out.error == "AccessDeniedException"
    assert "cloudtrail:LookupEvents" in (out.message or "")
    e = coffer_log.one(out.request_id)
    assert e["eventSource"] == "cloudtrail.amazonaws.com" and e["eventName"] == "LookupEvents"
    assert e["errorCode"] == "AccessDeniedException" and e["userIdentity"]["arn"] == nobody.arn
    # Account B, with a secret of the same name, sees only its own.
    ct_b = client(b, "cloudtrail")
    items, _ = lookup_all(ct_b, LookupAttributes=attr("ResourceName", w["name"]))
    assert [ct_event(x)["requestID"] for x in items] == [w["b_rid"]]
    assert lookup_all(ct_b, LookupAttributes=attr("ResourceName", w["arn"]))[0] == []
    gets, _ = lookup_all(ct_b, LookupAttributes=attr("EventName", "GetSecretValue"))
    assert not [x for x in gets if a.account in x["CloudTrailEvent"]], "B sees events of A"
    everything, _ = lookup_all(ct_b)
    assert everything and not [x for x in everything if ct_event(x).get("recipientAccountId") == a.account]
    # And A does not see B's.
    items, _ = lookup_all(client(a, "cloudtrail"), LookupAttributes=attr("ResourceName", w["name"]))
    assert w["b_rid"] not in {ct_event(x)["requestID"] for x in items}


# =========================================================================================================================
# 6. coffer audit tail
# =========================================================================================================================
def tail(data_dir: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(coffer_binary()), "audit", "tail", "--data-dir", data_dir, *args],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )


def test_audit_tail_prints_the_last_matching_events(coffer, coffer_log):
    sm = client(coffer, "secretsmanager")
    names = [unique_name("tail") for _ in range(4)]
    rids = []
    for n in names:
        rids.append(rid(sm.create_secret(Name=n, SecretString="v")))
        sm.describe_secret(SecretId=n)  # events that must not match
    done = tail(coffer.data_dir, "-n", "3", "--output", "json", "--filter", "EventName=CreateSecret")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    events = [json.loads(x) for x in lines]
    assert [e["eventName"] for e in events] == ["CreateSecret"] * 3
    assert [e["requestID"] for e in events] == rids[1:], "the latest three, oldest first"
    assert events == [coffer_log.one(r) for r in rids[1:]]
    # Filters combine; the table form is one line per event.
    done = tail(coffer.data_dir, "-n", "5", "--filter", "EventName=CreateSecret", "--filter", f"ResourceName={names[0]}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and "CreateSecret" in lines[0] and "secretsmanager.amazonaws.com" in lines[0], done.stdout
    bad = tail(coffer.data_dir, "--filter", "NoSuchKey=1")
    assert bad.returncode == 2, bad.stdout + bad.stderr


def test_audit_tail_follows_new_events(coffer):
    sm = client(coffer, "secretsmanager")
    name = unique_name("follow")
    proc = subprocess.Popen(
        [str(coffer_binary()), "audit", "tail", "--data-dir", coffer.data_dir, "-n", "0", "--follow",
         "--output", "json", "--filter", "EventName=DeleteSecret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        time.sleep(1.0)
        sm.create_secret(Name=name, SecretString="v")
        deleted = rid(sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True))
        try:
            line = lines.get(timeout=15)
        except queue.Empty:
            raise AssertionError(f"`audit tail --follow` printed nothing in 15 s (stderr: {proc.stderr.read() if proc.poll() is not None else ''})")
        event = json.loads(line)
        assert event["eventName"] == "DeleteSecret" and event["requestID"] == deleted
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# =========================================================================================================================
# 7. Sinks and alerts
# =========================================================================================================================
def extract_events(body: bytes) -> list[dict]:
    """Events from a delivery, whatever its envelope: one event, a list, {"Records"/"events": [...]}, {"event": ...}
    records, an EventBridge-style {"detail": event}, or JSON lines."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []
    try:
        docs = [json.loads(text)]
    except ValueError:
        docs = [json.loads(x) for x in text.splitlines() if x.strip()]
    out: list[dict] = []

    def visit(o: Any) -> None:
        if isinstance(o, list):
            for x in o:
                visit(x)
        elif isinstance(o, dict):
            if "eventID" in o and "eventName" in o:
                out.append(o)
                return
            for k in ("event", "detail", "Records", "records", "events", "Events"):
                if k in o:
                    visit(o[k])

    visit(docs)
    return out


def read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        body = b""
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))


class Receiver:
    """A single-threaded HTTP server recording what is POSTed to it, in arrival order."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = read_body(self)
                with outer.lock:
                    outer.requests += 1
                    outer.events.extend(extract_events(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        with self.lock:
            return [e["eventID"] for e in self.events]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class SinkWorld:
    endpoint: Endpoint
    log: AuditLog
    sink_port: int
    sink_file: Path
    alerts: Receiver
    started: float
    receivers: list[Receiver] = field(default_factory=list)


@pytest.fixture(scope="module")
def sink_world(tmp_path_factory) -> Iterable[SinkWorld]:
    root = tmp_path_factory.mktemp("sinks")
    sink_port, alert_port = free_port(), free_port()
    alerts = Receiver(alert_port)
    sink_file = root / "sink.jsonl"
    config = {
        "sinks": [
            {"name": "file-sink", "type": "file", "path": str(sink_file)},
            # Nothing listens on sink_port until the outage test starts a receiver there.
            {"name": "hook-sink", "type": "webhook", "url": f"http://127.0.0.1:{sink_port}/audit",
             "retry_initial_ms": 100, "retry_max_ms": 5000},
        ],
        "alerts": [
            {"name": "deletes", "pattern": {"eventName": ["DeleteSecret"]},
             "webhook": {"url": f"http://127.0.0.1:{alert_port}/alert"}},
        ],
    }
    config_file = root / "audit.json"
    config_file.write_text(json.dumps(config))
    proc = CofferProcess(["--audit-config", str(config_file)])
    endpoint = proc.start()
    world = SinkWorld(endpoint, AuditLog(endpoint.data_dir), sink_port, sink_file, alerts, time.monotonic())
    yield world
    proc.stop()
    alerts.close()
    for r in world.receivers:
        r.close()


def timed_reads(endpoint: Endpoint, n: int) -> float:
    sm = client(endpoint, "secretsmanager")
    name = unique_name("timed")
    sm.create_secret(Name=name, SecretString="v")
    for _ in range(5):
        sm.get_secret_value(SecretId=name)  # warm up connections
    start = time.perf_counter()
    for _ in range(n):
        sm.get_secret_value(SecretId=name)
    return time.perf_counter() - start


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.timeout(300)
def test_a_webhook_sink_that_was_down_receives_everything_in_order_and_never_slowed_requests(sink_world):
    w = sink_world
    # While the webhook is down: reads take about as long as on a server without sinks.
    plain = CofferProcess([])
    plain_endpoint = plain.start()
    try:
        t_plain = timed_reads(plain_endpoint, 100)
        t_sink = timed_reads(w.endpoint, 100)
        t_plain = min(t_plain, timed_reads(plain_endpoint, 100))
    finally:
        plain.stop()
    assert t_sink <= 3 * t_plain + 1.0, f"100 reads took {t_sink:.2f} s with a failing sink, {t_plain:.2f} s without"
    sm = client(w.endpoint, "secretsmanager")
    for i in range(5):
        n = unique_name(f"outage-{i}")
        sm.create_secret(Name=n, SecretString="v")
        sm.put_secret_value(SecretId=n, SecretString="w")
        sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    # The case: a sink down for a minute loses nothing and does not slow requests. The outage lasts a full
    # minute from the server's start (retries back off from 100 ms to 5 s meanwhile), and reads are timed again at
    # its end, when the sink has been failing longest.
    time.sleep(max(0.0, 55.0 - (time.monotonic() - w.started)))
    t_late = timed_reads(w.endpoint, 100)
    assert t_late <= 3 * t_plain + 1.0, f"100 reads took {t_late:.2f} s after a minute of failing sink, {t_plain:.2f} s without"
    time.sleep(max(0.0, 60.0 - (time.monotonic() - w.started)))
    assert time.monotonic() - w.started >= 60.0
    receiver = Receiver(w.sink_port)
    w.receivers.append(receiver)
    w.log.refresh()
    logged = [x.event["eventID"] for x in w.log.records]
    assert len(logged) >= 225  # 211 from the timed reads, 15 mutations
    caught_up = wait_until(lambda: len(receiver.ids()) >= len(logged), timeout=60)
    got = receiver.ids()
    assert caught_up, f"the webhook received {len(got)} of {len(logged)} events within 60 s of coming back"
    time.sleep(1.0)
    got = receiver.ids()
    print(f"100 reads: {t_sink:.2f} s with the sink down, {t_plain:.2f} s without sinks; "
          f"webhook: {receiver.requests} deliveries, {len(got)} events after the outage")
    assert got[: len(logged)] == logged, "the webhook sink's events differ from the log's (missing, duplicated or out of order)"
    w.log.refresh()
    assert got == [x.event["eventID"] for x in w.log.records][: len(got)]


def file_sink_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    return [e["eventID"] for line in data.splitlines() if line.strip() for e in extract_events(line)]


def test_a_file_sink_receives_every_event(sink_world):
    w = sink_world
    sm = client(w.endpoint, "secretsmanager")
    n = unique_name("file-sink")
    sm.create_secret(Name=n, SecretString="v")
    last = rid(sm.describe_secret(SecretId=n))
    w.log.one(last)
    logged = [x.event["eventID"] for x in w.log.records]
    assert wait_until(lambda: len(file_sink_ids(w.sink_file)) >= len(logged), timeout=30), (
        f"the file sink holds {len(file_sink_ids(w.sink_file))} of {len(logged)} events"
    )
    assert file_sink_ids(w.sink_file)[: len(logged)] == logged


def test_an_alert_rule_delivers_only_the_events_it_matches(sink_world):
    w = sink_world
    sm = client(w.endpoint, "secretsmanager")
    n = unique_name("alert")
    sm.create_secret(Name=n, SecretString="v")
    sm.get_secret_value(SecretId=n)
    deleted = rid(sm.delete_secret(SecretId=n, RecoveryWindowInDays=7))
    missing = attempt(sm.delete_secret, SecretId=unique_name("alert-missing"))  # a failed DeleteSecret matches too
    assert missing.error == "ResourceNotFoundException"
    sm.restore_secret(SecretId=n)
    w.log.wait_all([deleted, missing.request_id])
    wanted = [e["eventID"] for e in w.log.events(lambda e: e.get("eventName") == "DeleteSecret")]
    assert w.log.one(deleted)["eventID"] in wanted and w.log.one(missing.request_id)["eventID"] in wanted
    assert wait_until(lambda: set(wanted) <= set(w.alerts.ids()), timeout=30), (
        f"the alert webhook received {len(w.alerts.ids())} events, {len(set(wanted) - set(w.alerts.ids()))} of "
        f"{len(wanted)} DeleteSecret events missing"
    )
    time.sleep(1.5)  # anything else would have arrived by now
    with w.alerts.lock:
        names = {e["eventName"] for e in w.alerts.events}
        ids = [e["eventID"] for e in w.alerts.events]
    assert names == {"DeleteSecret"}, f"the alert delivered {names}"
    assert sorted(ids) == sorted(set(wanted)), "each DeleteSecret event delivered once"


def test_a_stdout_sink_prints_each_event_as_a_json_line(tmp_path):
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"sinks": [{"name": "console", "type": "stdout"}]}))
    proc = CofferProcess(["--audit-config", str(config)])
    endpoint = proc.start()
    try:
        value = canary("stdout")
        name = unique_name("stdout")
        created = client(endpoint, "secretsmanager").create_secret(Name=name, SecretString=value)
        request_id = rid(created)
        deadline = time.monotonic() + 15
        found = None
        while found is None:
            line = proc._next_line(deadline)
            assert line is not None, "the stdout sink printed no event for the call within 15 s"
            assert value not in line
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("requestID") == request_id:
                    found = event
        assert found["eventName"] == "CreateSecret" and found["requestParameters"]["name"] == name
    finally:
        proc.stop()
