"""Shared helpers of the end-to-end suite: AWS error assertions, AWS's exact messages, time checks, raw requests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator
from unittest import mock

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from conftest import Endpoint

# --- AWS's messages, with where each one was confirmed --------------------------------------------------------------
# Recorded from real AWS in LocalStack's AWS-validated snapshots
# (localstack/localstack tests/aws/services/secretsmanager/test_secretsmanager.snapshot.json):
NOT_FOUND = "Secrets Manager can't find the specified secret."
SCHEDULED_NAME = "You can't create this secret because a secret with this name is already scheduled for deletion."
INVALID_NAME = (
    "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
)
STAGE_VERSION_MISMATCH = "You provided a VersionStage that is not associated to the provided VersionId."


def no_value_for_stage(stage: str) -> str:
    return f"Secrets Manager can't find the specified secret value for staging label: {stage}"


def no_value_for_version(version_id: str) -> str:
    return f"Secrets Manager can't find the specified secret value for VersionId: {version_id}"


def already_exists(name: str) -> str:
    return f"The operation failed because the secret {name} already exists."


# Quoted from real AWS responses in public issues (external-secrets#415, terraform-provider-aws#23998, moto#6461,
# aws-sdk-java#1556, aws-sdk-kotlin#1469, cluster-api-provider-aws#1531):
MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."
RECOVERY_WINDOW_RANGE = "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
BOTH_STRING_AND_BINARY = "You can't specify both a binary secret value and a string secret value in the same secret."
UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."
MISSING_AUTH_TOKEN = "Missing Authentication Token"
SIGNATURE_MISMATCH_PREFIX = "The request signature we calculated does not match the signature you provided."
SIGNATURE_EXPIRED_RE = re.compile(
    r"^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$"
)


def null_member(member: str) -> str:
    """Coral's model validation message for a missing required member (member name in lowerCamelCase)."""
    return f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"


def token_in_use(token: str, arn: str) -> str:
    # moto's wording, which moto#9741 says was validated against AWS; no AWS capture found.
    return f"You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."


def remove_from_version_required(stage: str, version_id: str) -> str:
    # moto's and floci's wording (both say it mirrors AWS); no AWS capture found.
    return (
        f"The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently attached to version "
        f"{version_id}, so you must explicitly reference that version in RemoveFromVersionId."
    )


# --- clients ---------------------------------------------------------------------------------------------------------
def make_client_for(
    endpoint: "Endpoint",
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    validate: bool = True,
):
    """A boto3 Secrets Manager client for `endpoint`; no retries, so every error surfaces on the first call."""
    config = Config(
        region_name=endpoint.region,
        retries={"mode": "standard", "max_attempts": 1},
        connect_timeout=5,
        read_timeout=30,
        parameter_validation=validate,
    )
    return boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=access_key if access_key is not None else endpoint.access_key,
        aws_secret_access_key=secret_key if secret_key is not None else endpoint.secret_key,
        config=config,
    )


# --- names -----------------------------------------------------------------------------------------------------------
_SLUG = re.compile(r"[^A-Za-z0-9]+")


def unique_name(hint: str = "") -> str:
    """`e2e-<slug>-<16 hex>`: legal, unique, and never ending in '-' plus 6 characters (ARN suffix look-alike)."""
    slug = _SLUG.sub("-", hint).strip("-")[:40].strip("-")
    return f"e2e-{slug + '-' if slug else ''}{uuid.uuid4().hex[:16]}"


@dataclass
class NameFactory:
    prefix: str
    count: int = 0

    def __call__(self, suffix: str | None = None) -> str:
        self.count += 1
        return f"{self.prefix}/{suffix if suffix is not None else self.count}"


# --- errors ----------------------------------------------------------------------------------------------------------
@dataclass
class CaughtError:
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.response["Error"]["Code"]

    @property
    def message(self) -> str:
        return self.response["Error"].get("Message", "")


@contextlib.contextmanager
def raises_aws(
    code: str,
    message: str | None = None,
    *,
    match: str | re.Pattern[str] | None = None,
    status: int = 400,
) -> Iterator[CaughtError]:
    """Expect the block to fail with AWS error `code` (and exactly `message`, or a message matching `match`)."""
    caught = CaughtError()
    try:
        yield caught
    except ClientError as e:
        caught.response = e.response
    else:
        raise AssertionError(f"expected {code}, but the call succeeded")
    got = caught.response
    assert caught.code == code, f"expected error code {code}, got {caught.code}: {caught.message!r}"
    if message is not None:
        assert caught.message == message, f"{code} message\n  got:      {caught.message!r}\n  expected: {message!r}"
    if match is not None:
        assert re.search(match, caught.message), f"{code} message {caught.message!r} does not match {match!r}"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == status, got["ResponseMetadata"]
    assert got["ResponseMetadata"].get("RequestId"), "every AWS error carries x-amzn-RequestId"


def fields(response: dict[str, Any]) -> set[str]:
    """The members of a response, without botocore's ResponseMetadata."""
    return set(response) - {"ResponseMetadata"}


# --- time ------------------------------------------------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def assert_recent(value: datetime, *, within: float = 120.0, now: datetime | None = None) -> None:
    assert isinstance(value, datetime), value
    now = now or utcnow()
    assert abs((value - now).total_seconds()) <= within, f"{value.isoformat()} is not within {within}s of {now}"


def assert_about(value: datetime, expected: datetime, *, within: float = 300.0) -> None:
    assert isinstance(value, datetime), value
    delta = abs((value - expected).total_seconds())
    assert delta <= within, f"{value.isoformat()} is {delta:.0f}s away from {expected.isoformat()}"


def assert_midnight_utc(value: datetime, *, days: set[datetime.date]) -> None:
    """LastAccessedDate is day-granular: midnight UTC of the access day."""
    utc = value.astimezone(timezone.utc)
    assert (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0), f"{utc.isoformat()} is not midnight UTC"
    assert utc.date() in days, f"{utc.date()} not in {sorted(days)}"


def arn_pattern(endpoint: "Endpoint", name: str) -> re.Pattern[str]:
    return re.compile(
        rf"^arn:aws:secretsmanager:{re.escape(endpoint.region)}:{endpoint.account}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}$"
    )


def paginate(call, key: str, **kwargs: Any) -> tuple[list[Any], list[int]]:
    """Follow NextToken to the end; returns all items and the size of every page."""
    items: list[Any] = []
    sizes: list[int] = []
    token = None
    for _ in range(1000):
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items.extend(page.get(key, []))
        sizes.append(len(page.get(key, [])))
        token = page.get("NextToken")
        if not token:
            return items, sizes
    raise AssertionError("pagination did not end after 1000 pages")


# --- raw HTTP ----------------------------------------------------------------------------------------------------------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error_code(self) -> str | None:
        """The AWS JSON error code, as botocore reads it (x-amzn-ErrorType first, then __type)."""
        header = self.headers.get("x-amzn-errortype")
        if header:
            return header.split(":", 1)[0]
        body = self.json if self.body else None
        if isinstance(body, dict):
            kind = body.get("__type") or body.get("code") or body.get("Code")
            if kind:
                return str(kind).rsplit("#", 1)[-1]
        return None

    @property
    def error_message(self) -> str | None:
        body = self.json if self.body else None
        if isinstance(body, dict):
            return body.get("message", body.get("Message"))
        return None


class RawClient:
    """Hand-built requests to the JSON 1.1 endpoint, for what an SDK would never send."""

    def __init__(self, endpoint: "Endpoint") -> None:
        self.endpoint = endpoint
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))

    def request(
        self,
        target: str | None,
        body: bytes | str | dict[str, Any] = b"{}",
        *,
        sign: bool = True,
        access_key: str | None = None,
        secret_key: str | None = None,
        at: datetime | None = None,
        path: str = "/",
        content_type: str | None = "application/x-amz-json-1.1",
        service: str = "secretsmanager",
        send_body: bytes | None = None,
    ) -> RawResponse:
        """POST `body` (signed unless sign=False, as of `at` if given); `send_body` replaces it after signing."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if target is not None:
            headers["X-Amz-Target"] = target
        req = AWSRequest(method="POST", url=self.endpoint.url + path, data=body, headers=headers)
        if sign:
            creds = Credentials(access_key or self.endpoint.access_key, secret_key or self.endpoint.secret_key)
            signer = SigV4Auth(creds, service, self.endpoint.region)
            if at is None:
                signer.add_auth(req)
            else:
                naive_utc = at.astimezone(timezone.utc).replace(tzinfo=None)
                with mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: naive_utc):
                    signer.add_auth(req)
        prepared = req.prepare()
        resp = self.http.request(
            "POST",
            prepared.url,
            body=prepared.body if send_body is None else send_body,
            headers=dict(prepared.headers),
            redirect=False,
        )
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.data)

    def call(self, operation: str, body: bytes | str | dict[str, Any] = b"{}", **kw: Any) -> RawResponse:
        return self.request(f"secretsmanager.{operation}", body, **kw)


class Admin:
    """coffer's dev-only admin routes (server started with --manual-clock)."""

    def __init__(self, endpoint: "Endpoint") -> None:
        self.raw = RawClient(endpoint)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.raw.request(None, body, path=path, content_type="application/json")
        assert resp.status == 200, f"POST {path} -> {resp.status}: {resp.body[:500]!r}"
        return resp.json

    def advance(self, seconds: float) -> Any:
        return self._post("/_coffer/clock/advance", {"seconds": seconds})

    def run_tasks(self) -> int:
        result = self._post("/_coffer/tasks/run", {})
        return int(result["purged"])


def totp(seed: bytes, step: int) -> str:
    """RFC 6238 / RFC 4226 for a Base32 `seed`: HMAC-SHA1 of the big-endian step, dynamic truncation, six digits."""
    digest = hmac.new(base64.b32decode(seed), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{value:06d}"


def current_step(admin: Admin) -> int:
    """The 30-second TOTP step of the server's manual clock (advancing by 0 s reports it)."""
    return admin.advance(0)["now_millis"] // 1000 // 30


def today_utc_range() -> set:
    """Today's UTC date, and yesterday's (a test may straddle midnight)."""
    now = utcnow()
    return {now.date(), (now - timedelta(minutes=10)).date()}
