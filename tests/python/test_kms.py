"""KMS (TrentService, AWS JSON 1.1) through boto3 and the AWS CLI, and Secrets Manager on top of it.

The expectations are AWS's: the botocore model kms/2014-11-01 and the KMS API reference for shapes and semantics,
and AWS's recorded answers for messages. Where a message was seen from AWS the constant below says where; where no
capture exists the test asserts the error code (and status) only.

Key life-cycle tests that need time to pass (automatic rotation, the end of a deletion window) run against the
`--manual-clock` server: `admin.advance(seconds)` moves the domain clock and `admin.run_tasks()` runs the server's
due work (purge, key destruction, automatic rotation) at once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support import assert_about, assert_recent, raises_aws, unique_name

# --- AWS's answers, with where each one was seen ------------------------------------------------------------------
# LocalStack's AWS-validated snapshots (localstack/localstack tests/aws/services/kms/test_kms.snapshot.json):
INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."
ALIAS_PREFIX = 'Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html'
NUMBER_OF_BYTES_REQUIRED = "NumberOfBytes is required."  # GenerateRandom without NumberOfBytes
PLAINTEXT_TOO_LONG = (
    "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
    "Member must have length less than or equal to 4096"
)


def invalid_key_id(text: str) -> str:
    # snapshot test_get_key_invalid_uuid: "Invalid keyId 'fake-key-id'"
    return f"Invalid keyId '{text}'"


def key_does_not_exist(arn: str) -> str:
    # snapshot test_get_key_does_not_exist; also quoted from AWS in aws-ssm-copy#10
    return f"Key '{arn}' does not exist"


def coral_range(member: str, value: int, bound: str, limit: int) -> str:
    """Coral's message for a value outside a range of the model (snapshot test_generate_random_invalid_number_of_bytes)."""
    return (
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must have value {bound} than or equal to {limit}"
    )


# Quoted from real AWS responses in public issues:
def is_disabled(arn: str) -> str:
    return f"{arn} is disabled."


def is_pending_deletion(arn: str) -> str:
    return f"{arn} is pending deletion."  # segmentio/chamber#355


def alias_not_found(alias_arn: str) -> str:
    return f"Alias {alias_arn} is not found."  # cloudposse/docs#152


ACCESS_TO_KMS_NOT_ALLOWED = "Access to KMS is not allowed"  # aws/aws-cdk#7677 (Secrets Manager, AccessDeniedException)
CIPHERTEXT_KEY_GONE = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
# The KMS API reference (PutKeyPolicy/CreateKey, BypassPolicyLockoutSafetyCheck) and the developer guide:
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."
# The Secrets Manager model's documentation of DecryptionFailure:
SM_DECRYPTION_FAILURE = "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
# moto's wording, which it presents as AWS's; no AWS capture found:
DATA_KEY_SPEC_OR_BYTES = "Please specify either number of bytes or key spec."


def already_exists(alias_arn: str) -> str:
    return f"An alias with the name {alias_arn} already exists"  # moto; no AWS capture found


DRY_RUN = "The request would have succeeded, but the DryRun option is set."  # KMS developer guide, "Testing your permissions"

SM_ALIAS = "alias/aws/secretsmanager"
DAY = 86_400
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --- clients and helpers --------------------------------------------------------------------------------------------
def client(endpoint, service: str, *, access_key: str | None = None, secret_key: str | None = None, validate: bool = True):
    """A boto3 client for `service` at `endpoint`; no retries, so every error surfaces on the first call."""
    config = Config(
        region_name=endpoint.region,
        retries={"mode": "standard", "max_attempts": 1},
        connect_timeout=5,
        read_timeout=30,
        parameter_validation=validate,
    )
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=access_key or endpoint.access_key,
        aws_secret_access_key=secret_key or endpoint.secret_key,
        config=config,
    )


def key_arn(endpoint, key_id: str) -> str:
    return f"arn:aws:kms:{endpoint.region}:{endpoint.account}:key/{key_id}"


def alias_arn(endpoint, alias: str) -> str:
    return f"arn:aws:kms:{endpoint.region}:{endpoint.account}:{alias}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def root_statement(endpoint, actions: str | list[str] = "kms:*") -> dict[str, Any]:
    """The default key policy's statement: the account, so that IAM policies count (key-default-1)."""
    return {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{endpoint.account}:root"},
        "Action": actions,
        "Resource": "*",
    }


def new_alias() -> str:
    return f"alias/e2e-{uuid.uuid4().hex[:16]}"


def paginate_kms(call: Callable[..., dict], member: str, **kwargs: Any) -> tuple[list[Any], list[dict]]:
    """Follow NextMarker to the end; returns all items and every page."""
    items: list[Any] = []
    pages: list[dict] = []
    marker = None
    for _ in range(1000):
        page = call(**kwargs, **({"Marker": marker} if marker else {}))
        pages.append(page)
        items.extend(page[member])
        if not page["Truncated"]:
            assert "NextMarker" not in page, page
            return items, pages
        marker = page["NextMarker"]
    raise AssertionError("pagination did not end after 1000 pages")


@contextlib.contextmanager
def dry_run_refused() -> Iterator[None]:
    """DryRunOperationException with AWS's message. The status is 412 in the KMS API reference as far as we know
    (botocore's model carries none), so 400 is tolerated too."""
    with pytest.raises(ClientError) as info:
        yield
    response = info.value.response
    assert response["Error"]["Code"] == "DryRunOperationException", response["Error"]
    assert response["Error"]["Message"] == DRY_RUN, response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] in (400, 412), response["ResponseMetadata"]


def as_datetime_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# --- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kms(coffer):
    return client(coffer, "kms")


@pytest.fixture(scope="session")
def kms_raw(coffer):
    """Without botocore's parameter validation, so that the server's own validation answers."""
    return client(coffer, "kms", validate=False)


@pytest.fixture(scope="session")
def iam(coffer):
    return client(coffer, "iam")


@pytest.fixture(scope="session")
def kms_clock(coffer_clock):
    return client(coffer_clock, "kms")


@pytest.fixture
def key(kms) -> dict[str, Any]:
    """A fresh customer managed key (its KeyMetadata)."""
    return kms.create_key(Description="e2e key")["KeyMetadata"]


@pytest.fixture
def make_user(iam, coffer) -> Callable[..., SimpleNamespace]:
    """Creates an IAM user with an inline policy of the given statements (none: no permissions at all)."""

    def make(*statements: dict[str, Any]) -> SimpleNamespace:
        name = "kms-" + uuid.uuid4().hex[:12]
        iam.create_user(UserName=name)
        if statements:
            iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=policy(*statements))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        return SimpleNamespace(
            name=name,
            arn=f"arn:aws:iam::{coffer.account}:user/{name}",
            kms=client(coffer, "kms", **creds),
            sm=client(coffer, "secretsmanager", **creds),
        )

    return make


@pytest.fixture(scope="module")
def fresh(coffer) -> Iterator[Any]:
    """A server of this module's own, so that nothing has used its account yet."""
    if coffer.external:
        pytest.skip("needs a coffer of its own (not available with COFFER_E2E_ENDPOINT)")
    from conftest import CofferProcess

    proc = CofferProcess([])
    try:
        yield proc.start()
    finally:
        proc.stop()


def clock_now(admin) -> datetime:
    return as_datetime_ms(int(admin.advance(0)["now_millis"]))


# === keys: create, describe, list ===================================================================================
def test_create_key_defaults_and_default_policy(kms, coffer):
    meta = kms.create_key(
        Description="orders database",
        Tags=[{"TagKey": "team", "TagValue": "core"}, {"TagKey": "env", "TagValue": "prod"}],
    )["KeyMetadata"]
    key_id = meta["KeyId"]
    assert UUID_RE.match(key_id), key_id
    assert meta["Arn"] == key_arn(coffer, key_id)
    assert meta["AWSAccountId"] == coffer.account
    assert meta["Description"] == "orders database"
    assert (meta["Enabled"], meta["KeyState"]) == (True, "Enabled")
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["KeySpec"] == meta["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert (meta["Origin"], meta["KeyManager"], meta["MultiRegion"]) == ("AWS_KMS", "CUSTOMER", False)
    assert "DeletionDate" not in meta
    assert_recent(meta["CreationDate"])
    # The default key policy: the account, so that IAM policies can allow use of the key.
    got = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert json.loads(got["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [root_statement(coffer)],
    }
    tags = kms.list_resource_tags(KeyId=key_id)
    assert {t["TagKey"]: t["TagValue"] for t in tags["Tags"]} == {"team": "core", "env": "prod"}
    assert tags["Truncated"] is False


def test_describe_key_by_id_arn_alias_and_alias_arn(kms, coffer, key):
    alias = new_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for ref in (key["KeyId"], key["Arn"], alias, alias_arn(coffer, alias)):
        meta = kms.describe_key(KeyId=ref)["KeyMetadata"]
        assert (meta["KeyId"], meta["Arn"]) == (key["KeyId"], key["Arn"]), ref
        assert meta["Description"] == "e2e key"


def test_describe_unknown_and_malformed_keys(kms, coffer):
    missing = str(uuid.uuid4())
    with raises_aws("NotFoundException", key_does_not_exist(key_arn(coffer, missing))):
        kms.describe_key(KeyId=missing)
    with raises_aws("NotFoundException", key_does_not_exist(key_arn(coffer, missing))):
        kms.describe_key(KeyId=key_arn(coffer, missing))
    with raises_aws("NotFoundException", alias_not_found(alias_arn(coffer, "alias/e2e-nothing-here"))):
        kms.describe_key(KeyId="alias/e2e-nothing-here")


def test_key_arn_of_another_region_is_an_invalid_arn(kms, key):
    # LocalStack's AWS-recorded snapshot test_get_key_in_different_region: a key ARN naming another Region than the
    # endpoint's is "Invalid arn REGION".
    elsewhere = "ap-southeast-1" if not key["Arn"].startswith("arn:aws:kms:ap-southeast-1:") else "eu-west-1"
    other_region_arn = key["Arn"].replace(key["Arn"].split(":")[3], elsewhere, 1)
    with raises_aws("NotFoundException", f"Invalid arn {elsewhere}"):
        kms.describe_key(KeyId=other_region_arn)


def test_malformed_key_id_message(kms):
    # AWS quotes the id it could not read (LocalStack's AWS-recorded snapshot test_get_key_invalid_uuid).
    with raises_aws("NotFoundException", invalid_key_id("fake-key-id")):
        kms.describe_key(KeyId="fake-key-id")


def test_list_keys_paginates_with_limit_and_marker(fresh):
    kms = client(fresh, "kms")
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}
    # without Limit, everything (at most 100) on one page
    everything = kms.list_keys()
    total = len(everything["Keys"])
    assert created <= {k["KeyId"] for k in everything["Keys"]} and everything["Truncated"] is False
    keys, pages = paginate_kms(kms.list_keys, "Keys", Limit=2)
    assert [len(p["Keys"]) for p in pages] == [2] * (total // 2) + ([total % 2] if total % 2 else [])
    assert [p["Truncated"] for p in pages] == [True] * (len(pages) - 1) + [False]
    ids = [k["KeyId"] for k in keys]
    assert len(ids) == len(set(ids)) == total and created <= set(ids)
    for k in keys:
        assert k["KeyArn"] == key_arn(fresh, k["KeyId"])
    with raises_aws("InvalidMarkerException"):
        kms.list_keys(Limit=2, Marker="not-a-marker-" + uuid.uuid4().hex)
    raw = client(fresh, "kms", validate=False)
    with raises_aws("ValidationException", coral_range("limit", 0, "greater", 1)):
        raw.list_keys(Limit=0)
    with raises_aws("ValidationException", coral_range("limit", 1001, "less", 1000)):
        raw.list_keys(Limit=1001)


# === enable, disable, deletion ======================================================================================
def test_disable_and_enable_key(kms, key):
    kms.disable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["Enabled"], meta["KeyState"]) == (False, "Disabled")
    with raises_aws("DisabledException", is_disabled(key["Arn"])):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    with raises_aws("DisabledException", is_disabled(key["Arn"])):
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    kms.enable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["Enabled"], meta["KeyState"]) == (True, "Enabled")
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]


def test_decrypt_under_a_disabled_key_is_refused(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"kept")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DisabledException", is_disabled(key["Arn"])):
        kms.decrypt(CiphertextBlob=blob)
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_schedule_and_cancel_key_deletion(kms, kms_raw, key):
    for bad in (6, 31):
        with raises_aws("ValidationException"):
            kms_raw.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=bad)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    out = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert out["KeyId"] == key["Arn"]
    assert (out["KeyState"], out["PendingWindowInDays"]) == ("PendingDeletion", 7)
    assert_about(out["DeletionDate"], key["CreationDate"] + timedelta(days=7), within=600)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingDeletion", False)
    assert meta["DeletionDate"] == out["DeletionDate"]

    with raises_aws("KMSInvalidStateException", is_pending_deletion(key["Arn"])):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    with raises_aws("KMSInvalidStateException", is_pending_deletion(key["Arn"])):
        kms.enable_key(KeyId=key["KeyId"])
    with raises_aws("KMSInvalidStateException", is_pending_deletion(key["Arn"])):
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)

    # "When this operation succeeds, the key state of the KMS key is Disabled" (CancelKeyDeletion).
    assert kms.cancel_key_deletion(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in meta
    with raises_aws("KMSInvalidStateException", match="is not pending deletion"):
        kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_default_deletion_window_is_30_days(kms, key):
    out = kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert out["PendingWindowInDays"] == 30
    assert_about(out["DeletionDate"], key["CreationDate"] + timedelta(days=30), within=600)
    kms.cancel_key_deletion(KeyId=key["KeyId"])


def test_pending_deletion_window_is_not_in_key_metadata_of_a_single_region_key(kms, key):
    # KeyMetadata.PendingDeletionWindowInDays "is present only when the KeyState of the KMS key is
    # PendingReplicaDeletion" (model documentation); a single-Region key shows its DeletionDate instead.
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=10)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert "DeletionDate" in meta
    assert "PendingDeletionWindowInDays" not in meta, meta


# === aliases ========================================================================================================
def test_predefined_secrets_manager_alias_has_no_target_before_first_use(fresh):
    kms = client(fresh, "kms")
    sm = client(fresh, "secretsmanager")
    aliases = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}
    predefined = aliases[SM_ALIAS]
    assert predefined["AliasArn"] == alias_arn(fresh, SM_ALIAS)
    assert "TargetKeyId" not in predefined, predefined
    # Secrets Manager creates the AWS managed key the first time it encrypts a value.
    sm.create_secret(Name=unique_name("first-use"), SecretString="v")
    after = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}[SM_ALIAS]
    target = after["TargetKeyId"]
    meta = kms.describe_key(KeyId=SM_ALIAS)["KeyMetadata"]
    assert meta["KeyId"] == target
    assert (meta["KeyManager"], meta["KeyState"]) == ("AWS", "Enabled")
    # It is the same key from then on.
    sm.create_secret(Name=unique_name("second-use"), SecretString="w")
    assert kms.describe_key(KeyId=SM_ALIAS)["KeyMetadata"]["KeyId"] == target
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=target)["Aliases"]] == [SM_ALIAS]


def test_alias_create_update_list_delete(kms, coffer):
    first = kms.create_key()["KeyMetadata"]
    second = kms.create_key()["KeyMetadata"]
    alias = new_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=first["KeyId"])
    listed = [a for a in kms.list_aliases(KeyId=first["KeyId"])["Aliases"]]
    assert [a["AliasName"] for a in listed] == [alias]
    entry = listed[0]
    assert entry["AliasArn"] == alias_arn(coffer, alias)
    assert entry["TargetKeyId"] == first["KeyId"]
    assert_recent(entry["CreationDate"])
    # an alias of the key works wherever a KeyId is taken
    blob = kms.encrypt(KeyId=alias, Plaintext=b"via alias")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyId"] == first["Arn"]

    kms.update_alias(AliasName=alias, TargetKeyId=second["Arn"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == second["KeyId"]
    assert kms.list_aliases(KeyId=first["KeyId"])["Aliases"] == []
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=second["KeyId"])["Aliases"]] == [alias]
    # the old ciphertext still names its key, not the alias
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"via alias"

    # ListAliases pages with Limit/Marker
    extra = [new_alias() for _ in range(2)]
    for name in extra:
        kms.create_alias(AliasName=name, TargetKeyId=second["KeyId"])
    mine, pages = paginate_kms(kms.list_aliases, "Aliases", KeyId=second["KeyId"], Limit=1)
    assert sorted(a["AliasName"] for a in mine) == sorted([alias, *extra])
    assert [len(p["Aliases"]) for p in pages] == [1, 1, 1]

    kms.delete_alias(AliasName=alias)
    assert alias not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    with raises_aws("NotFoundException", alias_not_found(alias_arn(coffer, alias))):
        kms.describe_key(KeyId=alias)
    # deleting an alias does not touch its key
    assert kms.describe_key(KeyId=second["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_alias_errors(kms, kms_raw, coffer, key):
    alias = new_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    with raises_aws("AlreadyExistsException", already_exists(alias_arn(coffer, alias))):
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    unknown = new_alias()
    with raises_aws("NotFoundException", alias_not_found(alias_arn(coffer, unknown))):
        kms.delete_alias(AliasName=unknown)
    with raises_aws("NotFoundException", alias_not_found(alias_arn(coffer, unknown))):
        kms.update_alias(AliasName=unknown, TargetKeyId=key["KeyId"])
    with raises_aws("ValidationException", ALIAS_PREFIX):
        kms_raw.create_alias(AliasName="no-prefix-" + uuid.uuid4().hex[:8], TargetKeyId=key["KeyId"])
    missing = str(uuid.uuid4())
    with raises_aws("NotFoundException", key_does_not_exist(key_arn(coffer, missing))):
        kms.create_alias(AliasName=new_alias(), TargetKeyId=missing)


def test_alias_aws_prefix_is_reserved(kms, key):
    # The alias/aws/ prefix is reserved for AWS managed keys. The code is moto's (no AWS capture of the message).
    reserved = "alias/aws/e2e-" + uuid.uuid4().hex[:8]
    with raises_aws("NotAuthorizedException"):
        kms.create_alias(AliasName=reserved, TargetKeyId=key["KeyId"])
    assert reserved not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    # AWS's own aliases cannot be moved or deleted either (error code not captured from AWS).
    with pytest.raises(ClientError):
        kms.update_alias(AliasName=SM_ALIAS, TargetKeyId=key["KeyId"])
    with pytest.raises(ClientError):
        kms.delete_alias(AliasName=SM_ALIAS)
    assert kms.describe_key(KeyId=SM_ALIAS)["KeyMetadata"]["KeyManager"] == "AWS"


# === tags ===========================================================================================================
def test_tag_untag_list(kms, key):
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}])
    kms.tag_resource(KeyId=key["Arn"], Tags=[{"TagKey": "a", "TagValue": "changed"}])
    got = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
    assert got == {"a": "changed", "b": "2"}
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["a", "not-there"])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    with raises_aws("TagException"):
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": f"k{i:02}", "TagValue": "v"} for i in range(5)])
    tags, pages = paginate_kms(kms.list_resource_tags, "Tags", KeyId=key["KeyId"], Limit=4)
    assert [len(p["Tags"]) for p in pages] == [4, 2]
    assert {t["TagKey"] for t in tags} == {"b", "k00", "k01", "k02", "k03", "k04"}


# === encrypt and decrypt ============================================================================================
def test_encrypt_decrypt_without_context(kms, key):
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"attack at dawn")
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    assert b"attack at dawn" not in blob
    # Two encryptions of the same plaintext differ (random nonce).
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"attack at dawn")["CiphertextBlob"] != blob
    back = kms.decrypt(CiphertextBlob=blob)  # symmetric: the ciphertext names its key
    assert back["Plaintext"] == b"attack at dawn"
    assert back["KeyId"] == key["Arn"] and back["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert back["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    # naming the key (id, ARN or alias) is allowed too
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key["Arn"])["Plaintext"] == b"attack at dawn"


def test_encryption_context_must_match_exactly(kms, key):
    context = {"purpose": "e2e", "tenant": "42"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"bound", EncryptionContext=context)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(list(context.items()))))[
        "Plaintext"
    ] == b"bound", "the order of the pairs does not matter"
    for wrong in ({}, {"purpose": "e2e"}, {"purpose": "e2e", "tenant": "43"}, {**context, "extra": "x"}):
        with raises_aws("InvalidCiphertextException", ""):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
    # and a ciphertext made without context does not open with one
    plain_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"free")["CiphertextBlob"]
    with raises_aws("InvalidCiphertextException", ""):
        kms.decrypt(CiphertextBlob=plain_blob, EncryptionContext={"purpose": "e2e"})


def test_tampered_or_foreign_ciphertext_is_invalid(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"integrity")["CiphertextBlob"]
    for i in (len(blob) - 1, len(blob) // 2):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with raises_aws("InvalidCiphertextException", ""):
            kms.decrypt(CiphertextBlob=bytes(tampered))
    with raises_aws("InvalidCiphertextException", ""):
        kms.decrypt(CiphertextBlob=b"this was never made by KMS at all")
    with raises_aws("InvalidCiphertextException", ""):
        kms.decrypt(CiphertextBlob=blob[:-5])


def test_decrypt_with_another_key_id_is_incorrect_key(kms, key):
    other = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    with raises_aws("IncorrectKeyException", INCORRECT_KEY):
        kms.decrypt(CiphertextBlob=blob, KeyId=other["KeyId"])
    with raises_aws("IncorrectKeyException", INCORRECT_KEY):
        kms.decrypt(CiphertextBlob=blob, KeyId=other["Arn"])


def test_plaintext_limits(kms_raw, key):
    assert kms_raw.encrypt(KeyId=key["KeyId"], Plaintext=b"x" * 4096)["KeyId"] == key["Arn"]
    with raises_aws("ValidationException", PLAINTEXT_TOO_LONG):
        kms_raw.encrypt(KeyId=key["KeyId"], Plaintext=b"x" * 4097)


def test_re_encrypt_moves_a_ciphertext_to_another_key_and_context(kms, key):
    target = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"moving", EncryptionContext={"from": "a"})["CiphertextBlob"]
    out = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"from": "a"},
        DestinationKeyId=target["KeyId"],
        DestinationEncryptionContext={"to": "b"},
    )
    assert out["SourceKeyId"] == key["Arn"] and out["KeyId"] == target["Arn"]
    assert out["SourceEncryptionAlgorithm"] == out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert out["SourceKeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert out["DestinationKeyMaterialId"] == target["CurrentKeyMaterialId"]
    back = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"to": "b"})
    assert (back["Plaintext"], back["KeyId"]) == (b"moving", target["Arn"])
    with raises_aws("InvalidCiphertextException", ""):
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"from": "a"})
    # the source context is checked too
    with raises_aws("InvalidCiphertextException", ""):
        kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"from": "z"}, DestinationKeyId=target["KeyId"])


def test_dry_run_checks_without_doing(kms, key):
    with dry_run_refused():
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with dry_run_refused():
        kms.decrypt(CiphertextBlob=blob, DryRun=True)
    with dry_run_refused():
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", DryRun=True)
    # a dry run that would fail reports the real failure
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DisabledException", is_disabled(key["Arn"])):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)


# === data keys and random bytes =====================================================================================
@pytest.mark.parametrize("spec,length", [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 64}, 64), ({"NumberOfBytes": 1}, 1)])
def test_generate_data_key_sizes(kms, key, spec, length):
    out = kms.generate_data_key(KeyId=key["KeyId"], EncryptionContext={"file": "f1"}, **spec)
    assert len(out["Plaintext"]) == length
    assert out["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"file": "f1"})["Plaintext"] == out["Plaintext"]
    with raises_aws("InvalidCiphertextException", ""):
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"])


def test_generate_data_key_needs_exactly_one_of_spec_and_bytes(kms_raw, key):
    with raises_aws("ValidationException", DATA_KEY_SPEC_OR_BYTES):
        kms_raw.generate_data_key(KeyId=key["KeyId"])
    with raises_aws("ValidationException", DATA_KEY_SPEC_OR_BYTES):
        kms_raw.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", NumberOfBytes=32)
    with raises_aws("ValidationException", coral_range("numberOfBytes", 1025, "less", 1024)):
        kms_raw.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1025)


def test_generate_data_key_without_plaintext(kms, key):
    out = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"k": "v"})
    assert "Plaintext" not in out
    assert out["KeyId"] == key["Arn"]
    data_key = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"]
    assert len(data_key) == 32
    other = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=48)
    assert len(kms.decrypt(CiphertextBlob=other["CiphertextBlob"])["Plaintext"]) == 48
    # each call makes a new key
    again = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"k": "v"})
    assert kms.decrypt(CiphertextBlob=again["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"] != data_key


def test_generate_random(kms, kms_raw):
    for n in (1, 32, 1024):
        assert len(kms.generate_random(NumberOfBytes=n)["Plaintext"]) == n
    assert kms.generate_random(NumberOfBytes=32)["Plaintext"] != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    with raises_aws("ValidationException", coral_range("numberOfBytes", 0, "greater", 1)):
        kms_raw.generate_random(NumberOfBytes=0)
    with raises_aws("ValidationException", coral_range("numberOfBytes", 1025, "less", 1024)):
        kms_raw.generate_random(NumberOfBytes=1025)


def test_generate_random_requires_number_of_bytes(kms):
    # NumberOfBytes is optional in the model; the service answers (LocalStack's AWS-recorded snapshot
    # test_generate_random_invalid_number_of_bytes[None]):
    with raises_aws("ValidationException", NUMBER_OF_BYTES_REQUIRED):
        kms.generate_random()


# === rotation =======================================================================================================
def test_rotation_period_is_validated(kms, kms_raw, key):
    # RotationPeriodInDays has the range 90..2560 in the model, so Coral answers in its format.
    for value, bound, limit in ((89, "greater", 90), (2561, "less", 2560)):
        with raises_aws("ValidationException", coral_range("rotationPeriodInDays", value, bound, limit)):
            kms_raw.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=value)
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


def test_rotation_status(kms, key):
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyRotationEnabled"], status["KeyId"]) == (False, key["Arn"])
    assert "NextRotationDate" not in status and "RotationPeriodInDays" not in status

    kms.enable_key_rotation(KeyId=key["KeyId"])  # default period: 365 days
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 365)
    assert_about(status["NextRotationDate"], key["CreationDate"] + timedelta(days=365), within=600)

    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
    assert_about(status["NextRotationDate"], key["CreationDate"] + timedelta(days=90), within=600)

    kms.disable_key_rotation(KeyId=key["KeyId"])
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] is False and "NextRotationDate" not in status


def test_rotate_on_demand_keeps_old_material_for_decryption(kms, key):
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"old material", EncryptionContext={"c": "1"})["CiphertextBlob"]
    old_material = key["CurrentKeyMaterialId"]
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []

    rotated = kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert rotated["KeyId"] in (key["KeyId"], key["Arn"])
    new_material = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert new_material != old_material

    old = kms.decrypt(CiphertextBlob=before, EncryptionContext={"c": "1"})
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"old material", old_material)
    after = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"new material")["CiphertextBlob"]
    new = kms.decrypt(CiphertextBlob=after)
    assert (new["Plaintext"], new["KeyMaterialId"]) == (b"new material", new_material)
    assert kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["KeyMaterialId"] == new_material

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])
    assert rotations["Truncated"] is False
    [entry] = rotations["Rotations"]
    assert entry["KeyId"] == key["KeyId"]
    assert entry["RotationType"] == "ON_DEMAND"
    assert entry["KeyMaterialId"] == new_material and entry["KeyMaterialState"] == "CURRENT"
    assert_recent(entry["RotationDate"], now=key["CreationDate"], within=600)
    everything = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    states = {e["KeyMaterialId"]: e["KeyMaterialState"] for e in everything}
    assert states == {old_material: "NON_CURRENT", new_material: "CURRENT"}
    first = next(e for e in everything if e["KeyMaterialId"] == old_material)
    assert "RotationDate" not in first and "RotationType" not in first


def test_rotate_on_demand_does_not_move_the_automatic_schedule(kms, key):
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=180)
    scheduled = kms.get_key_rotation_status(KeyId=key["KeyId"])["NextRotationDate"]
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyRotationEnabled"], status["NextRotationDate"]) == (True, scheduled)


def test_list_key_rotations_paginates(kms, key):
    for _ in range(3):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    entries, pages = paginate_kms(kms.list_key_rotations, "Rotations", KeyId=key["KeyId"], Limit=2)
    assert [len(p["Rotations"]) for p in pages] == [2, 1]
    assert len({e["KeyMaterialId"] for e in entries}) == 3
    assert [e["KeyMaterialState"] for e in entries].count("CURRENT") == 1


def test_automatic_rotation_when_the_period_has_passed(kms_clock, admin):
    meta = kms_clock.create_key(Description="auto-rotating")["KeyMetadata"]
    key_id, created = meta["KeyId"], meta["CreationDate"]
    kms_clock.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    before = kms_clock.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]

    admin.advance(89 * DAY)
    admin.run_tasks()
    assert kms_clock.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == meta["CurrentKeyMaterialId"]
    assert kms_clock.list_key_rotations(KeyId=key_id)["Rotations"] == []

    admin.advance(2 * DAY)
    admin.run_tasks()
    now = clock_now(admin)
    new_material = kms_clock.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert new_material != meta["CurrentKeyMaterialId"]
    [entry] = kms_clock.list_key_rotations(KeyId=key_id)["Rotations"]
    assert (entry["RotationType"], entry["KeyMaterialId"]) == ("AUTOMATIC", new_material)
    assert created + timedelta(days=90) <= entry["RotationDate"] <= now + timedelta(seconds=1)
    status = kms_clock.get_key_rotation_status(KeyId=key_id)
    assert_about(status["NextRotationDate"], entry["RotationDate"] + timedelta(days=90), within=60)
    old = kms_clock.decrypt(CiphertextBlob=before)
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"before rotation", meta["CurrentKeyMaterialId"])
    fresh_blob = kms_clock.encrypt(KeyId=key_id, Plaintext=b"after rotation")["CiphertextBlob"]
    assert kms_clock.decrypt(CiphertextBlob=fresh_blob)["KeyMaterialId"] == new_material
    # nothing more is due until the next period ends
    admin.run_tasks()
    assert len(kms_clock.list_key_rotations(KeyId=key_id)["Rotations"]) == 1


def test_key_is_destroyed_at_the_end_of_its_waiting_period(kms_clock, sm_clock, admin):
    meta = kms_clock.create_key(Description="doomed")["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    alias = new_alias()
    kms_clock.create_alias(AliasName=alias, TargetKeyId=key_id)
    name = unique_name("under-doomed-key")
    sm_clock.create_secret(Name=name, SecretString="doomed value", KmsKeyId=key_id)
    blob = kms_clock.encrypt(KeyId=key_id, Plaintext=b"doomed")["CiphertextBlob"]

    scheduled = kms_clock.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert_about(scheduled["DeletionDate"], clock_now(admin) + timedelta(days=7), within=5)
    # pending deletion: Secrets Manager cannot decrypt
    with raises_aws("DecryptionFailure", SM_DECRYPTION_FAILURE):
        sm_clock.get_secret_value(SecretId=name)

    admin.advance(7 * DAY - 60)
    admin.run_tasks()
    assert kms_clock.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"

    admin.advance(120)
    admin.run_tasks()
    with raises_aws("NotFoundException", key_does_not_exist(arn)):
        kms_clock.describe_key(KeyId=key_id)
    with raises_aws("NotFoundException", key_does_not_exist(arn)):
        kms_clock.cancel_key_deletion(KeyId=key_id)
    assert key_id not in [k["KeyId"] for k in paginate_kms(kms_clock.list_keys, "Keys")[0]]
    # "KMS deletes the KMS key, its key material, and all KMS data associated with it, including all aliases that
    # refer to it" (ScheduleKeyDeletion)
    assert alias not in [a["AliasName"] for a in kms_clock.list_aliases()["Aliases"]]
    with raises_aws("AccessDeniedException", CIPHERTEXT_KEY_GONE):
        kms_clock.decrypt(CiphertextBlob=blob)
    # the secret is still there, but its value is unrecoverable
    assert sm_clock.describe_secret(SecretId=name)["Name"] == name
    with raises_aws("DecryptionFailure", SM_DECRYPTION_FAILURE):
        sm_clock.get_secret_value(SecretId=name)


def test_cancelled_deletion_is_not_carried_out(kms_clock, admin):
    meta = kms_clock.create_key()["KeyMetadata"]
    kms_clock.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
    kms_clock.cancel_key_deletion(KeyId=meta["KeyId"])
    admin.advance(8 * DAY)
    admin.run_tasks()
    assert kms_clock.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


# === key policies ===================================================================================================
def test_key_policy_get_put_list(kms, coffer, key):
    assert kms.list_key_policies(KeyId=key["KeyId"])["PolicyNames"] == ["default"]
    document = policy(
        root_statement(coffer),
        {"Sid": "Audit", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{coffer.account}:root"}, "Action": "kms:DescribeKey", "Resource": "*"},
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=document)
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == json.loads(document)
    # PolicyName is optional and means "default"
    assert json.loads(kms.get_key_policy(KeyId=key["Arn"])["Policy"]) == json.loads(document)
    with raises_aws("NotFoundException"):
        kms.get_key_policy(KeyId=key["KeyId"], PolicyName="other")


def test_malformed_key_policies(kms, coffer, key):
    with raises_aws("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy="{not json")
    with raises_aws("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": "nope"}))
    with raises_aws("MalformedPolicyDocumentException"):
        kms.create_key(Policy=json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}))
    # the key keeps its policy
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"])["Id"] == "key-default-1"


def test_key_policy_naming_an_unknown_principal_is_malformed(kms, coffer, key):
    document = policy(
        root_statement(coffer),
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{coffer.account}:user/nobody-{uuid.uuid4().hex[:8]}"}, "Action": "kms:Decrypt", "Resource": "*"},
    )
    with raises_aws("MalformedPolicyDocumentException", INVALID_PRINCIPALS):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=document)


def test_lockout_safety_check(kms, coffer, key, make_user):
    other = make_user()
    lockout = policy({"Effect": "Allow", "Principal": {"AWS": other.arn}, "Action": "kms:*", "Resource": "*"})
    with raises_aws("MalformedPolicyDocumentException", LOCKOUT):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=lockout)
    with raises_aws("MalformedPolicyDocumentException", LOCKOUT):
        kms.create_key(Policy=lockout)
    # the key is untouched and still usable by its account
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]
    # Bypassing the check really locks the caller out, root user included.
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=lockout, BypassPolicyLockoutSafetyCheck=True)
    with raises_aws("AccessDeniedException", match=r"is not authorized to perform: kms:PutKeyPolicy"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(root_statement(coffer)))
    with raises_aws("AccessDeniedException"):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    # while the principal it names may now do everything, without any IAM policy
    assert other.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]
    restored = policy(root_statement(coffer), {"Effect": "Allow", "Principal": {"AWS": other.arn}, "Action": "kms:*", "Resource": "*"})
    other.kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=restored)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


def test_iam_allow_counts_only_when_the_key_policy_delegates(kms, coffer, key, make_user):
    user = make_user({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
    # default key policy: the account delegates to IAM, so the user's kms:* works
    blob = user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"delegated")["CiphertextBlob"]
    assert user.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"delegated"
    # a key policy that gives the account only administration: IAM cannot grant use of the key
    admin_only = policy(root_statement(coffer, ["kms:Describe*", "kms:Get*", "kms:List*", "kms:PutKeyPolicy"]))
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=admin_only)
    resource = re.escape(key["Arn"])
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {re.escape(user.arn)} is not authorized to perform: kms:Encrypt on resource: {resource}"
        r" because no resource-based policy allows the kms:Encrypt action$",
    ):
        user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    with raises_aws("AccessDeniedException", match=r"kms:Decrypt"):
        user.kms.decrypt(CiphertextBlob=blob)
    # administration is still delegated
    assert user.kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


def test_user_without_iam_policy_is_refused_under_the_default_key_policy(coffer, key, make_user):
    nobody = make_user()
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {re.escape(nobody.arn)} is not authorized to perform: kms:Encrypt on resource: "
        rf"{re.escape(key['Arn'])} because no identity-based policy allows the kms:Encrypt action$",
    ):
        nobody.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")


def test_key_policy_naming_the_user_allows_without_iam(kms, coffer, key, make_user):
    user = make_user()  # no IAM policy at all
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy(
            root_statement(coffer),
            {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
        ),
    )
    blob = user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"direct grant")["CiphertextBlob"]
    assert user.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"direct grant"
    # only what the statement names
    with raises_aws("AccessDeniedException", match=r"kms:GenerateDataKey"):
        user.kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    with raises_aws("AccessDeniedException", match=r"kms:DescribeKey"):
        user.kms.describe_key(KeyId=key["KeyId"])


def test_explicit_deny_in_the_key_policy_beats_iam(kms, coffer, key, make_user):
    user = make_user({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
    blob = user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"denied later")["CiphertextBlob"]
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy(
            root_statement(coffer),
            {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {"AWS": user.arn}, "Action": "kms:Decrypt", "Resource": "*"},
        ),
    )
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {re.escape(user.arn)} is not authorized to perform: kms:Decrypt on resource: "
        rf"{re.escape(key['Arn'])} with an explicit deny in a resource-based policy$",
    ):
        user.kms.decrypt(CiphertextBlob=blob)
    assert user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"still allowed")["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"denied later"  # others are not affected


def test_encryption_context_condition_in_the_key_policy(kms, coffer, key, make_user):
    user = make_user()
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy(
            root_statement(coffer),
            {
                "Effect": "Allow",
                "Principal": {"AWS": user.arn},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:app": "billing"}},
            },
        ),
    )
    mine = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"billing data", EncryptionContext={"app": "billing"})["CiphertextBlob"]
    theirs = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hr data", EncryptionContext={"app": "hr"})["CiphertextBlob"]
    assert user.kms.decrypt(CiphertextBlob=mine, EncryptionContext={"app": "billing"})["Plaintext"] == b"billing data"
    with raises_aws("AccessDeniedException", match=r"kms:Decrypt"):
        user.kms.decrypt(CiphertextBlob=theirs, EncryptionContext={"app": "hr"})


def test_explicit_deny_in_iam_beats_the_key_policy(kms, coffer, key, make_user):
    user = make_user({"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"})
    kms.put_key_policy(
        KeyId=key["KeyId"],
        PolicyName="default",
        Policy=policy(root_statement(coffer), {"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": "kms:*", "Resource": "*"}),
    )
    blob = user.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with raises_aws("AccessDeniedException", match=r"with an explicit deny in an identity-based policy$"):
        user.kms.decrypt(CiphertextBlob=blob)


def test_aws_managed_key_refuses_direct_use_but_serves_secrets_manager(kms, sm, coffer):
    name = unique_name("managed-key")
    sm.create_secret(Name=name, SecretString="via secrets manager")  # makes sure the managed key exists
    managed = kms.describe_key(KeyId=SM_ALIAS)["KeyMetadata"]
    assert managed["KeyManager"] == "AWS"
    policy_doc = json.loads(kms.get_key_policy(KeyId=SM_ALIAS, PolicyName="default")["Policy"])
    via = [
        s for s in policy_doc["Statement"]
        if s["Effect"] == "Allow" and "kms:ViaService" in json.dumps(s.get("Condition", {}))
    ]
    assert via, policy_doc
    root_arn = re.escape(f"arn:aws:iam::{coffer.account}:root")
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {root_arn} is not authorized to perform: kms:Encrypt on resource: {re.escape(managed['Arn'])}",
    ):
        kms.encrypt(KeyId=SM_ALIAS, Plaintext=b"x")
    with raises_aws("AccessDeniedException", match=r"kms:GenerateDataKey"):
        kms.generate_data_key(KeyId=managed["KeyId"], KeySpec="AES_256")
    # AWS managed keys cannot be managed by the account
    with raises_aws("AccessDeniedException"):
        kms.disable_key(KeyId=managed["KeyId"])
    with raises_aws("AccessDeniedException"):
        kms.schedule_key_deletion(KeyId=managed["KeyId"], PendingWindowInDays=7)
    assert kms.describe_key(KeyId=SM_ALIAS)["KeyMetadata"]["KeyState"] == "Enabled"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "via secrets manager"
    # DescribeSecret omits KmsKeyId for a secret under aws/secretsmanager (model documentation)
    assert "KmsKeyId" not in sm.describe_secret(SecretId=name)


def test_user_needs_no_kms_permission_for_the_aws_managed_key(sm, make_user):
    name = unique_name("managed-read")
    sm.create_secret(Name=name, SecretString="managed")
    reader = make_user({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    assert reader.sm.get_secret_value(SecretId=name)["SecretString"] == "managed"
    with raises_aws("AccessDeniedException"):
        reader.kms.encrypt(KeyId=SM_ALIAS, Plaintext=b"x")


# === Secrets Manager on KMS =========================================================================================
def test_create_secret_under_a_customer_key_by_id_arn_alias_and_alias_arn(sm, kms, coffer, key):
    alias = new_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for ref in (key["KeyId"], key["Arn"], alias, alias_arn(coffer, alias)):
        name = unique_name("cmk")
        sm.create_secret(Name=name, SecretString=f"under {ref}", KmsKeyId=ref)
        shown = sm.describe_secret(SecretId=name).get("KmsKeyId")
        assert shown in {ref, key["KeyId"], key["Arn"], alias_arn(coffer, alias)}, (ref, shown)
        assert sm.get_secret_value(SecretId=name)["SecretString"] == f"under {ref}"
        sm.put_secret_value(SecretId=name, SecretString="second")
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"


def test_create_secret_with_an_unknown_key_fails(sm):
    # boto/boto3#1533 and hashicorp/terraform-provider-aws#13303: InvalidParameterException from AWS.
    for ref in (str(uuid.uuid4()), "alias/e2e-no-such-alias-" + uuid.uuid4().hex[:8], "not-a-key-id"):
        name = unique_name("bad-key")
        with raises_aws("InvalidParameterException"):
            sm.create_secret(Name=name, SecretString="v", KmsKeyId=ref)
        with raises_aws("ResourceNotFoundException"):
            sm.describe_secret(SecretId=name)


def test_secret_reads_need_kms_decrypt_on_a_customer_key(sm, kms, key, make_user):
    name = unique_name("needs-decrypt")
    sm.create_secret(Name=name, SecretString="guarded", KmsKeyId=key["Arn"])
    reader = make_user({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    with raises_aws("AccessDeniedException", ACCESS_TO_KMS_NOT_ALLOWED):
        reader.sm.get_secret_value(SecretId=name)
    reader2 = make_user(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"]},
    )
    assert reader2.sm.get_secret_value(SecretId=name)["SecretString"] == "guarded"


def test_kms_via_service_condition_allows_reads_through_secrets_manager_only(sm, coffer, key, make_user):
    name = unique_name("via-service")
    sm.create_secret(Name=name, SecretString="through sm", KmsKeyId=key["KeyId"])
    blob = client(coffer, "kms").encrypt(KeyId=key["KeyId"], Plaintext=b"direct")["CiphertextBlob"]
    reader = make_user(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key["Arn"],
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{coffer.region}.amazonaws.com"}},
        },
    )
    assert reader.sm.get_secret_value(SecretId=name)["SecretString"] == "through sm"
    with raises_aws("AccessDeniedException", match=r"kms:Decrypt"):
        reader.kms.decrypt(CiphertextBlob=blob)


def test_secret_arn_in_the_encryption_context_limits_a_user_to_one_secret(sm, coffer, key, make_user):
    # Secrets Manager binds each data key to {SecretARN, SecretVersionId}; policies can name the secret through it.
    allowed = sm.create_secret(Name=unique_name("ctx-allowed"), SecretString="yours", KmsKeyId=key["KeyId"])
    other = sm.create_secret(Name=unique_name("ctx-other"), SecretString="not yours", KmsKeyId=key["KeyId"])
    reader = make_user(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key["Arn"],
            "Condition": {"StringEquals": {"kms:EncryptionContext:SecretARN": allowed["ARN"]}},
        },
    )
    assert reader.sm.get_secret_value(SecretId=allowed["ARN"])["SecretString"] == "yours"
    with raises_aws("AccessDeniedException", ACCESS_TO_KMS_NOT_ALLOWED):
        reader.sm.get_secret_value(SecretId=other["ARN"])


def test_batch_get_reports_a_kms_denial_per_secret(sm, key, make_user):
    under_default = sm.create_secret(Name=unique_name("batch-default"), SecretString="readable")
    under_cmk = sm.create_secret(Name=unique_name("batch-cmk"), SecretString="guarded", KmsKeyId=key["KeyId"])
    reader = make_user(
        {"Effect": "Allow", "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue"], "Resource": "*"}
    )
    out = reader.sm.batch_get_secret_value(SecretIdList=[under_default["Name"], under_cmk["Name"]])
    assert [v["SecretString"] for v in out["SecretValues"]] == ["readable"]
    [error] = out["Errors"]
    assert error["SecretId"] == under_cmk["Name"]
    assert error["ErrorCode"] == "AccessDeniedException"


def test_writing_a_secret_needs_kms_generate_data_key(sm, key, make_user):
    writer = make_user({"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"})
    name = unique_name("needs-gdk")
    with raises_aws("AccessDeniedException", ACCESS_TO_KMS_NOT_ALLOWED):
        writer.sm.create_secret(Name=name, SecretString="v", KmsKeyId=key["KeyId"])
    with raises_aws("ResourceNotFoundException"):
        sm.describe_secret(SecretId=name)
    writer2 = make_user(
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key["Arn"]},
    )
    writer2.sm.create_secret(Name=name, SecretString="v", KmsKeyId=key["KeyId"])
    assert writer2.sm.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_disabling_the_key_stops_reads_and_enabling_restores_them(sm, kms, key):
    name = unique_name("disable-read")
    sm.create_secret(Name=name, SecretString="on and off", KmsKeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DecryptionFailure", SM_DECRYPTION_FAILURE):
        sm.get_secret_value(SecretId=name)
    with raises_aws("EncryptionFailure"):
        sm.put_secret_value(SecretId=name, SecretString="cannot seal")
    # metadata stays readable
    assert sm.describe_secret(SecretId=name)["Name"] == name
    kms.enable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "on and off"


def test_update_secret_kms_key_reencrypts_current_and_previous(sm, kms, key):
    name = unique_name("switch-key")
    first = sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["KeyId"])
    second = sm.put_secret_value(SecretId=name, SecretString="v2")
    third = sm.put_secret_value(SecretId=name, SecretString="v3")  # v1 now has no label
    new_key = kms.create_key()["KeyMetadata"]
    sm.update_secret(SecretId=name, KmsKeyId=new_key["Arn"])
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] in (new_key["Arn"], new_key["KeyId"])
    # Prove the re-encryption: with the OLD key disabled, the labelled versions still read.
    kms.disable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v3"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "v2"
    assert sm.get_secret_value(SecretId=name, VersionId=third["VersionId"])["SecretString"] == "v3"
    assert sm.get_secret_value(SecretId=name, VersionId=second["VersionId"])["SecretString"] == "v2"
    # and the new key protects them: disabling it stops the reads
    kms.enable_key(KeyId=key["KeyId"])
    kms.disable_key(KeyId=new_key["KeyId"])
    with raises_aws("DecryptionFailure", SM_DECRYPTION_FAILURE):
        sm.get_secret_value(SecretId=name)
    with raises_aws("DecryptionFailure", SM_DECRYPTION_FAILURE):
        sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    kms.enable_key(KeyId=new_key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v3"
    assert first["VersionId"] not in (second["VersionId"], third["VersionId"])


def test_update_secret_with_empty_kms_key_id_returns_to_the_aws_managed_key(sm, kms, key):
    # "If you set this to an empty string, Secrets Manager uses the Amazon Web Services managed key
    # aws/secretsmanager" (UpdateSecret, KmsKeyId); DescribeSecret omits KmsKeyId for that key.
    name = unique_name("back-to-default")
    sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["KeyId"])
    sm.update_secret(SecretId=name, KmsKeyId="")
    assert "KmsKeyId" not in sm.describe_secret(SecretId=name)
    kms.disable_key(KeyId=key["KeyId"])
    try:
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"
    finally:
        kms.enable_key(KeyId=key["KeyId"])


def test_update_secret_to_an_unknown_key_changes_nothing(sm, key):
    name = unique_name("bad-update")
    sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["KeyId"])
    with raises_aws("InvalidParameterException"):
        sm.update_secret(SecretId=name, KmsKeyId=str(uuid.uuid4()))
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == key["KeyId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"


# === the AWS CLI ====================================================================================================
def test_cli_create_key_encrypt_decrypt(aws_cli, coffer, tmp_path):
    created = aws_cli("kms", "create-key", "--description", "from the CLI", "--tags", "TagKey=origin,TagValue=cli").json
    meta = created["KeyMetadata"]
    assert meta["Arn"] == key_arn(coffer, meta["KeyId"]) and meta["Description"] == "from the CLI"
    alias = new_alias()
    aws_cli("kms", "create-alias", "--alias-name", alias, "--target-key-id", meta["KeyId"])

    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x00binary\xffpayload\n")
    out = aws_cli(
        "kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain}", "--encryption-context", "purpose=cli"
    ).json
    assert out["KeyId"] == meta["Arn"]
    blob = tmp_path / "cipher.bin"
    blob.write_bytes(base64.b64decode(out["CiphertextBlob"]))  # the CLI prints blobs base64-encoded

    back = aws_cli("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "purpose=cli").json
    assert base64.b64decode(back["Plaintext"]) == plain.read_bytes()
    assert back["KeyId"] == meta["Arn"]
    wrong = aws_cli("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "purpose=other", check=False)
    assert wrong.code != 0
    assert "An error occurred (InvalidCiphertextException) when calling the Decrypt operation" in wrong.stderr


def test_cli_secret_under_a_customer_key(aws_cli, coffer):
    meta = aws_cli("kms", "create-key").json["KeyMetadata"]
    alias = new_alias()
    aws_cli("kms", "create-alias", "--alias-name", alias, "--target-key-id", meta["KeyId"])
    name = unique_name("cli-cmk")
    created = aws_cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "cli secret", "--kms-key-id", alias).json
    assert created["Name"] == name
    got = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name).json
    assert got["SecretString"] == "cli secret"
    # the key really protects it: with the key disabled the CLI reports Secrets Manager's DecryptionFailure
    client(coffer, "kms").disable_key(KeyId=meta["KeyId"])
    failed = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name, check=False)
    assert failed.code != 0
    assert f"An error occurred (DecryptionFailure) when calling the GetSecretValue operation: {SM_DECRYPTION_FAILURE}" in failed.stderr
