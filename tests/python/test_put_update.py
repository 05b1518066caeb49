"""PutSecretValue and UpdateSecret: new versions, staging labels, idempotency."""

import uuid

import pytest

from support import BOTH_STRING_AND_BINARY, assert_recent, fields, raises_aws, token_in_use


def stages(sm, secret_id):
    """VersionId -> sorted labels, for every labelled version."""
    return {k: sorted(v) for k, v in sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"].items()}


# ---------------------------------------------------------------- PutSecretValue


def test_put_moves_current_and_previous(sm, secret):
    v1 = secret["VersionId"]
    put2 = sm.put_secret_value(SecretId=secret["Name"], SecretString="two")
    assert fields(put2) == {"ARN", "Name", "VersionId", "VersionStages"}
    assert (put2["ARN"], put2["Name"], put2["VersionStages"]) == (secret["ARN"], secret["Name"], ["AWSCURRENT"])
    v2 = put2["VersionId"]
    assert stages(sm, secret["Name"]) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}

    v3 = sm.put_secret_value(SecretId=secret["Name"], SecretString="three")["VersionId"]
    # v1 lost its last label: it is deprecated and no longer listed.
    assert stages(sm, secret["Name"]) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == "three"
    assert sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSPREVIOUS")["SecretString"] == "two"


def test_put_with_custom_stages_leaves_current_alone(sm, secret):
    v1 = secret["VersionId"]
    put = sm.put_secret_value(SecretId=secret["Name"], SecretString="staged", VersionStages=["BLUE", "GREEN"])
    assert sorted(put["VersionStages"]) == ["BLUE", "GREEN"]
    assert stages(sm, secret["Name"]) == {v1: ["AWSCURRENT"], put["VersionId"]: ["BLUE", "GREEN"]}
    assert sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == secret["Value"]
    assert sm.get_secret_value(SecretId=secret["Name"], VersionStage="GREEN")["SecretString"] == "staged"


def test_put_moves_a_label_that_another_version_holds(sm, secret):
    # AWS-validated (LocalStack test_non_versioning_version_stages_no_replacement): labels move, others stay.
    v1 = secret["VersionId"]
    a = sm.put_secret_value(SecretId=secret["Name"], SecretString="a", VersionStages=["one", "two", "three"])
    b = sm.put_secret_value(SecretId=secret["Name"], SecretString="b", VersionStages=["one", "two", "four"])
    assert stages(sm, secret["Name"]) == {
        v1: ["AWSCURRENT"],
        a["VersionId"]: ["three"],
        b["VersionId"]: ["four", "one", "two"],
    }


def test_put_pending_then_current_keeps_previous_chain(sm, secret):
    v1 = secret["VersionId"]
    pending = sm.put_secret_value(SecretId=secret["Name"], SecretString="p", VersionStages=["AWSPENDING"])
    assert pending["VersionStages"] == ["AWSPENDING"]
    assert sm.get_secret_value(SecretId=secret["Name"], VersionStage="AWSPENDING")["SecretString"] == "p"

    v3 = sm.put_secret_value(SecretId=secret["Name"], SecretString="c")["VersionId"]
    assert stages(sm, secret["Name"]) == {
        v1: ["AWSPREVIOUS"],
        pending["VersionId"]: ["AWSPENDING"],
        v3: ["AWSCURRENT"],
    }


def test_put_binary(sm, secret):
    sm.put_secret_value(SecretId=secret["Name"], SecretBinary=b"\x00\xffbinary")
    got = sm.get_secret_value(SecretId=secret["Name"])
    assert got["SecretBinary"] == b"\x00\xffbinary"
    assert "SecretString" not in got


def test_put_same_token_same_value_is_idempotent(sm, secret):
    token = str(uuid.uuid4())
    first = sm.put_secret_value(SecretId=secret["Name"], SecretString="once", ClientRequestToken=token)
    again = sm.put_secret_value(SecretId=secret["Name"], SecretString="once", ClientRequestToken=token)
    assert first["VersionId"] == again["VersionId"] == token
    assert stages(sm, secret["Name"]) == {secret["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}


def test_put_reusing_the_create_token_with_the_same_value_changes_nothing(sm, secret):
    again = sm.put_secret_value(
        SecretId=secret["Name"], SecretString=secret["Value"], ClientRequestToken=secret["VersionId"]
    )
    assert again["VersionId"] == secret["VersionId"]
    assert stages(sm, secret["Name"]) == {secret["VersionId"]: ["AWSCURRENT"]}


def test_put_same_token_different_value_is_refused(sm, secret):
    token = str(uuid.uuid4())
    sm.put_secret_value(SecretId=secret["Name"], SecretString="once", ClientRequestToken=token)
    with raises_aws("ResourceExistsException", token_in_use(token, secret["ARN"])):
        sm.put_secret_value(SecretId=secret["Name"], SecretString="twice", ClientRequestToken=token)
    assert sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == "once"


def test_put_both_string_and_binary_is_refused(sm, secret):
    with raises_aws("InvalidParameterException", BOTH_STRING_AND_BINARY):
        sm.put_secret_value(SecretId=secret["Name"], SecretString="s", SecretBinary=b"b")


def test_put_more_than_20_stages_is_refused(sm_raw, secret):
    # Model constraint (SecretVersionStagesType max 20) enforced by the service. Code only.
    with raises_aws("ValidationException"):
        sm_raw.put_secret_value(
            SecretId=secret["Name"], SecretString="x", VersionStages=[f"L{i}" for i in range(21)]
        )


def test_put_updates_last_changed_date(sm, secret):
    before = sm.describe_secret(SecretId=secret["Name"])["LastChangedDate"]
    sm.put_secret_value(SecretId=secret["Name"], SecretString="later")
    after = sm.describe_secret(SecretId=secret["Name"])["LastChangedDate"]
    assert after >= before
    assert_recent(after)


# ---------------------------------------------------------------- UpdateSecret


def test_update_description_only_creates_no_version(sm, secret):
    out = sm.update_secret(SecretId=secret["Name"], Description="new description")
    assert fields(out) == {"ARN", "Name"}  # AWS-validated: no VersionId when no value was given
    d = sm.describe_secret(SecretId=secret["Name"])
    assert d["Description"] == "new description"
    assert d["VersionIdsToStages"] == {secret["VersionId"]: ["AWSCURRENT"]}


def test_update_with_nothing_but_the_id_is_accepted(sm, secret):
    out = sm.update_secret(SecretId=secret["Name"])
    assert fields(out) == {"ARN", "Name"}
    assert sm.describe_secret(SecretId=secret["Name"])["Description"] == "fixture secret"


@pytest.mark.parametrize("value", [{"SecretString": "updated"}, {"SecretBinary": b"updated"}], ids=["string", "binary"])
def test_update_with_value_creates_a_current_version(sm, secret, value):
    out = sm.update_secret(SecretId=secret["Name"], Description="d2", **value)
    assert fields(out) == {"ARN", "Name", "VersionId"}
    new = out["VersionId"]
    assert stages(sm, secret["Name"]) == {secret["VersionId"]: ["AWSPREVIOUS"], new: ["AWSCURRENT"]}
    got = sm.get_secret_value(SecretId=secret["Name"])
    assert got.get("SecretString", got.get("SecretBinary")) == next(iter(value.values()))
    assert sm.describe_secret(SecretId=secret["Name"])["Description"] == "d2"


def test_update_with_token_is_idempotent(sm, secret):
    token = str(uuid.uuid4())
    first = sm.update_secret(SecretId=secret["Name"], SecretString="u", ClientRequestToken=token)
    again = sm.update_secret(SecretId=secret["Name"], SecretString="u", ClientRequestToken=token)
    assert first["VersionId"] == again["VersionId"] == token
    assert len(sm.list_secret_version_ids(SecretId=secret["Name"])["Versions"]) == 2


def test_update_both_string_and_binary_is_refused(sm, secret):
    with raises_aws("InvalidParameterException", BOTH_STRING_AND_BINARY):
        sm.update_secret(SecretId=secret["Name"], SecretString="s", SecretBinary=b"b")


def test_update_changes_last_changed_date(sm, secret):
    before = sm.describe_secret(SecretId=secret["Name"])["LastChangedDate"]
    sm.update_secret(SecretId=secret["Name"], Description="changed")
    after = sm.describe_secret(SecretId=secret["Name"])["LastChangedDate"]
    assert after >= before
    assert_recent(after)
