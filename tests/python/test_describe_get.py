"""DescribeSecret, GetSecretValue and BatchGetSecretValue."""

import uuid

import pytest

from support import (
    INVALID_NAME,
    NOT_FOUND,
    STAGE_VERSION_MISMATCH,
    assert_midnight_utc,
    assert_recent,
    fields,
    no_value_for_stage,
    no_value_for_version,
    paginate,
    raises_aws,
    today_utc_range,
    unique_name,
)

# ---------------------------------------------------------------- DescribeSecret


def test_describe_all_fields(sm, name):
    tags = [{"Key": "owner", "Value": "alice"}]
    created = sm.create_secret(Name=name, SecretString="x", Description="the description", Tags=tags)

    d = sm.describe_secret(SecretId=name)
    assert d["ARN"] == created["ARN"]
    assert d["Name"] == name
    assert d["Description"] == "the description"
    assert d["Tags"] == tags
    assert d["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert_recent(d["CreatedDate"])
    assert_recent(d["LastChangedDate"])
    assert d["LastChangedDate"] >= d["CreatedDate"]
    # Never read yet, never scheduled for deletion, never configured for rotation: the fields are omitted.
    for absent in ("LastAccessedDate", "DeletedDate", "RotationEnabled", "RotationRules", "LastRotatedDate"):
        assert absent not in d, absent


def test_last_accessed_date_is_midnight_utc_of_the_access_day(sm, secret):
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=secret["Name"])
    sm.get_secret_value(SecretId=secret["Name"])
    first = sm.describe_secret(SecretId=secret["Name"])["LastAccessedDate"]
    assert_midnight_utc(first, days=today_utc_range())

    sm.get_secret_value(SecretId=secret["Name"])
    second = sm.describe_secret(SecretId=secret["Name"])["LastAccessedDate"]
    assert_midnight_utc(second, days=today_utc_range())
    assert second >= first


def test_describe_does_not_count_as_access(sm, secret):
    sm.describe_secret(SecretId=secret["Name"])
    sm.list_secret_version_ids(SecretId=secret["Name"])
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=secret["Name"])


@pytest.mark.parametrize("form", ["name", "full-arn", "partial-arn"])
def test_secret_is_found_by_name_full_arn_and_partial_arn(sm, secret, form):
    secret_id = {
        "name": secret["Name"],
        "full-arn": secret["ARN"],
        "partial-arn": secret["ARN"][: -len("-XXXXXX")],
    }[form]
    assert sm.describe_secret(SecretId=secret_id)["ARN"] == secret["ARN"]
    got = sm.get_secret_value(SecretId=secret_id)
    assert (got["ARN"], got["Name"], got["SecretString"]) == (secret["ARN"], secret["Name"], secret["Value"])


def test_full_arn_with_another_suffix_is_not_found(sm, secret):
    suffix = secret["ARN"][-6:]
    wrong = secret["ARN"][:-6] + ("AAAAAA" if suffix != "AAAAAA" else "BBBBBB")
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm.describe_secret(SecretId=wrong)


@pytest.mark.parametrize(
    "operation",
    [
        ("describe_secret", {}),
        ("get_secret_value", {}),
        ("list_secret_version_ids", {}),
        ("put_secret_value", {"SecretString": "x"}),
        ("update_secret", {"Description": "d"}),
        ("delete_secret", {}),
        ("restore_secret", {}),
        ("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}),
        ("untag_resource", {"TagKeys": ["k"]}),
        ("update_secret_version_stage", {"VersionStage": "CUSTOM"}),
    ],
    ids=lambda op: op[0],
)
def test_unknown_secret_is_not_found(sm, operation):
    method, extra = operation
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        getattr(sm, method)(SecretId=unique_name("missing"), **extra)


@pytest.mark.parametrize(
    "operation",
    [
        ("describe_secret", {}),
        ("get_secret_value", {}),
        ("list_secret_version_ids", {"IncludeDeprecated": True}),
        ("put_secret_value", {"SecretString": "x"}),
        ("update_secret", {"Description": "d"}),
        ("delete_secret", {"ForceDeleteWithoutRecovery": True}),
        ("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}),
        ("untag_resource", {"TagKeys": ["k"]}),
    ],
    ids=lambda op: op[0],
)
def test_invalid_secret_id_characters(sm, operation):
    # AWS-validated (LocalStack snapshot test_invalid_secret_name): every operation answers the same way.
    method, extra = operation
    with raises_aws("ValidationException", INVALID_NAME):
        getattr(sm, method)(SecretId="Inv *?!]Name\\-", **extra)


# ---------------------------------------------------------------- GetSecretValue


def test_get_secret_value_response_shape(sm, secret):
    got = sm.get_secret_value(SecretId=secret["Name"])
    assert fields(got) == {"ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"}
    assert got["VersionId"] == secret["VersionId"]
    assert got["VersionStages"] == ["AWSCURRENT"]
    assert_recent(got["CreatedDate"])


def test_get_by_stage_and_by_version_id(sm, secret):
    v2 = sm.put_secret_value(SecretId=secret["Name"], SecretString="second")["VersionId"]

    current = sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSCURRENT")
    assert (current["VersionId"], current["SecretString"]) == (v2, "second")

    previous = sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSPREVIOUS")
    assert (previous["VersionId"], previous["SecretString"]) == (secret["VersionId"], secret["Value"])
    assert previous["VersionStages"] == ["AWSPREVIOUS"]

    by_id = sm.get_secret_value(SecretId=secret["Name"], VersionId=secret["VersionId"])
    assert by_id["SecretString"] == secret["Value"]
    assert by_id["VersionStages"] == ["AWSPREVIOUS"]


def test_version_id_and_stage_together_must_agree(sm, secret):
    both = sm.get_secret_value(SecretId=secret["Name"], VersionId=secret["VersionId"], VersionStage="AWSCURRENT")
    assert both["SecretString"] == secret["Value"]

    with raises_aws("InvalidRequestException", STAGE_VERSION_MISMATCH):
        sm.get_secret_value(SecretId=secret["Name"], VersionId=secret["VersionId"], VersionStage="AWSPREVIOUS")


def test_unknown_stage_or_version(sm, secret):
    with raises_aws("ResourceNotFoundException", no_value_for_stage("AWSPREVIOUS")):
        sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSPREVIOUS")
    with raises_aws("ResourceNotFoundException", no_value_for_stage("AWSPENDING")):
        sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSPENDING")
    missing = str(uuid.uuid4())
    with raises_aws("ResourceNotFoundException", no_value_for_version(missing)):
        sm.get_secret_value(SecretId=secret["Name"], VersionId=missing)


def test_unicode_string_round_trip(sm, name):
    value = '{"user": "ünïcødé", "emoji": "🔐", "quote": "\\"", "nl": "a\\nb"}'
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


# ---------------------------------------------------------------- BatchGetSecretValue


def test_batch_by_id_list_with_per_secret_errors(sm, names):
    a, b = names(), names()
    sm.create_secret(Name=a, SecretString="A")
    sm.create_secret(Name=b, SecretBinary=b"B")
    missing = names()

    out = sm.batch_get_secret_value(SecretIdList=[a, b, missing])
    values = {v["Name"]: v for v in out["SecretValues"]}
    assert set(values) == {a, b}
    assert values[a]["SecretString"] == "A"
    assert values[b]["SecretBinary"] == b"B"
    for v in values.values():
        assert {"ARN", "Name", "VersionId", "VersionStages", "CreatedDate"} <= set(v)
        assert v["VersionStages"] == ["AWSCURRENT"]
    assert out["Errors"] == [
        {"SecretId": missing, "ErrorCode": "ResourceNotFoundException", "Message": NOT_FOUND}
    ]


def test_batch_accepts_up_to_20_ids(sm, names):
    ids = [names() for _ in range(20)]
    for i, secret_id in enumerate(ids[:3]):
        sm.create_secret(Name=secret_id, SecretString=str(i))
    out = sm.batch_get_secret_value(SecretIdList=ids)
    assert len(out["SecretValues"]) == 3
    assert len(out["Errors"]) == 17


def test_batch_more_than_20_ids_is_refused(sm_raw, names):
    # Model constraint (SecretIdListType max 20) enforced by the service. Code only.
    with raises_aws("ValidationException"):
        sm_raw.batch_get_secret_value(SecretIdList=[names() for _ in range(21)])


def test_batch_by_filters_paginates(sm, names):
    tag = unique_name("batch")
    created = {names() for _ in range(5)}
    for n in created:
        sm.create_secret(Name=n, SecretString=n, Tags=[{"Key": tag, "Value": "1"}])

    items, sizes = paginate(
        sm.batch_get_secret_value, "SecretValues", Filters=[{"Key": "tag-key", "Values": [tag]}], MaxResults=2
    )
    assert sorted(v["Name"] for v in items) == sorted(created)
    assert all(v["SecretString"] == v["Name"] for v in items)
    assert max(sizes) <= 2 and len(sizes) >= 3


def test_batch_with_both_id_list_and_filters_is_refused(sm, secret):
    # Code only: AWS's message is not captured anywhere we could find.
    with raises_aws("InvalidParameterException"):
        sm.batch_get_secret_value(
            SecretIdList=[secret["Name"]], Filters=[{"Key": "name", "Values": [secret["Name"]]}]
        )


def test_batch_with_neither_id_list_nor_filters_is_refused(sm):
    with raises_aws("InvalidParameterException"):
        sm.batch_get_secret_value()
