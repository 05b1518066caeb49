"""UpdateSecretVersionStage and ListSecretVersionIds."""

import uuid

import pytest

from support import (
    assert_midnight_utc,
    assert_recent,
    fields,
    paginate,
    raises_aws,
    remove_from_version_required,
    today_utc_range,
)


def stages(sm, secret_id):
    return {k: sorted(v) for k, v in sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"].items()}


@pytest.fixture
def two_versions(sm, secret):
    """secret with v1 (AWSCURRENT) and v2 (AWSPENDING)."""
    v2 = sm.put_secret_value(SecretId=secret["Name"], SecretString="two", VersionStages=["AWSPENDING"])["VersionId"]
    return secret["Name"], secret["VersionId"], v2


# ---------------------------------------------------------------- UpdateSecretVersionStage


def test_attach_and_move_a_custom_label(sm, two_versions):
    name, v1, v2 = two_versions
    out = sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", MoveToVersionId=v1)
    assert fields(out) == {"ARN", "Name"}
    assert stages(sm, name) == {v1: ["AWSCURRENT", "CANARY"], v2: ["AWSPENDING"]}

    sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", RemoveFromVersionId=v1, MoveToVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING", "CANARY"]}
    assert sm.get_secret_value(SecretId=name, VersionStage="CANARY")["SecretString"] == "two"


def test_moving_an_attached_label_needs_remove_from_version_id(sm, two_versions):
    # "If the label is attached and you either do not specify this parameter, or the version ID does not match,
    # then the operation fails." (UpdateSecretVersionStage, RemoveFromVersionId). Code only for custom labels.
    name, v1, v2 = two_versions
    sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", MoveToVersionId=v1)
    with raises_aws("InvalidParameterException"):
        sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", MoveToVersionId=v2)
    with raises_aws("InvalidParameterException"):
        sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", RemoveFromVersionId=v2, MoveToVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT", "CANARY"], v2: ["AWSPENDING"]}


def test_moving_awscurrent_without_remove_from_version_id_is_refused(sm, two_versions):
    name, v1, v2 = two_versions
    with raises_aws("InvalidParameterException", remove_from_version_required("AWSCURRENT", v1)):
        sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


def test_moving_awscurrent_makes_the_old_current_previous(sm, two_versions):
    # AWS-validated (LocalStack test_update_secret_version_stages_current_pending): AWSPENDING stays where it was.
    name, v1, v2 = two_versions
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", RemoveFromVersionId=v1, MoveToVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "two"

    # A further rotation: the label AWSPREVIOUS moves on, v1 becomes deprecated.
    v3 = sm.put_secret_value(SecretId=name, SecretString="three", VersionStages=["AWSPENDING"])["VersionId"]
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", RemoveFromVersionId=v2, MoveToVersionId=v3)
    assert stages(sm, name) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT", "AWSPENDING"]}


def test_remove_a_label(sm, two_versions):
    name, v1, v2 = two_versions
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"]}
    listed = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert {v["VersionId"] for v in listed} == {v1, v2}


def test_label_on_a_version_that_does_not_exist(sm, two_versions):
    # Code only: no AWS capture of the message.
    name, _, _ = two_versions
    with raises_aws("InvalidParameterException"):
        sm.update_secret_version_stage(SecretId=name, VersionStage="CANARY", MoveToVersionId=str(uuid.uuid4()))


def test_at_most_20_staging_labels_per_secret(sm, secret):
    # Service quota: "Staging labels attached across all versions of a secret: 20".
    name, v1 = secret["Name"], secret["VersionId"]
    for i in range(19):  # AWSCURRENT + 19 = 20 labels
        sm.update_secret_version_stage(SecretId=name, VersionStage=f"L{i:02d}", MoveToVersionId=v1)
    assert len(stages(sm, name)[v1]) == 20
    # Code only, not confirmed against AWS: LimitExceededException is the error the model lists for this operation.
    with raises_aws("LimitExceededException"):
        sm.update_secret_version_stage(SecretId=name, VersionStage="L19", MoveToVersionId=v1)


# ---------------------------------------------------------------- ListSecretVersionIds


@pytest.fixture
def four_versions(sm, secret):
    """v1 deprecated, v2 BLUE, v3 AWSPREVIOUS, v4 AWSCURRENT."""
    name = secret["Name"]
    v2 = sm.put_secret_value(SecretId=name, SecretString="2", VersionStages=["BLUE"])["VersionId"]
    v3 = sm.put_secret_value(SecretId=name, SecretString="3")["VersionId"]
    v4 = sm.put_secret_value(SecretId=name, SecretString="4")["VersionId"]
    return name, secret["ARN"], secret["VersionId"], v2, v3, v4


def test_list_versions_fields_and_deprecated(sm, four_versions):
    name, arn, v1, v2, v3, v4 = four_versions
    out = sm.list_secret_version_ids(SecretId=name)
    assert {"ARN", "Name", "Versions"} <= fields(out) <= {"ARN", "Name", "Versions", "NextToken"}
    assert (out["ARN"], out["Name"]) == (arn, name)
    listed = {v["VersionId"]: v for v in out["Versions"]}
    assert set(listed) == {v2, v3, v4}
    assert sorted(listed[v2]["VersionStages"]) == ["BLUE"]
    assert listed[v3]["VersionStages"] == ["AWSPREVIOUS"]
    assert listed[v4]["VersionStages"] == ["AWSCURRENT"]
    for v in listed.values():
        assert_recent(v["CreatedDate"])
        assert "LastAccessedDate" not in v

    with_deprecated = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    deprecated = {v["VersionId"]: v for v in with_deprecated}
    assert set(deprecated) == {v1, v2, v3, v4}
    assert "VersionStages" not in deprecated[v1]  # AWS-validated: no labels, no member


def test_list_versions_shows_last_accessed_day(sm, four_versions):
    name, _, _, _, v3, v4 = four_versions
    sm.get_secret_value(SecretId=name)
    listed = {v["VersionId"]: v for v in sm.list_secret_version_ids(SecretId=name)["Versions"]}
    assert_midnight_utc(listed[v4]["LastAccessedDate"], days=today_utc_range())
    assert "LastAccessedDate" not in listed[v3]


@pytest.mark.parametrize("include_deprecated", [False, True])
def test_list_versions_paginates(sm, four_versions, include_deprecated):
    name, _, v1, v2, v3, v4 = four_versions
    items, sizes = paginate(
        sm.list_secret_version_ids, "Versions", SecretId=name, MaxResults=1, IncludeDeprecated=include_deprecated
    )
    ids = [v["VersionId"] for v in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == ({v1, v2, v3, v4} if include_deprecated else {v2, v3, v4})
    assert max(sizes) <= 1


def test_list_versions_invalid_next_token(sm, secret):
    with raises_aws("InvalidNextTokenException"):
        sm.list_secret_version_ids(SecretId=secret["Name"], NextToken="not-a-token-we-issued")
