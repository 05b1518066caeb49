"""TagResource and UntagResource."""

import pytest

from support import fields, raises_aws


def tags_of(sm, secret_id):
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=secret_id).get("Tags", [])}


def test_add_overwrite_and_remove(sm, secret):
    name = secret["Name"]
    out = sm.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}])
    assert fields(out) == set()
    assert tags_of(sm, name) == {"team": "a", "env": "dev"}

    sm.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": "b"}, {"Key": "cost", "Value": ""}])
    assert tags_of(sm, name) == {"team": "b", "env": "dev", "cost": ""}  # appended, overwritten, empty value kept

    out = sm.untag_resource(SecretId=name, TagKeys=["env", "not-there"])
    assert fields(out) == set()
    assert tags_of(sm, name) == {"team": "b", "cost": ""}

    sm.untag_resource(SecretId=name, TagKeys=["team", "cost"])
    assert tags_of(sm, name) == {}


def test_tag_keys_are_case_sensitive(sm, secret):
    sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": "ABC", "Value": "1"}, {"Key": "abc", "Value": "2"}])
    assert tags_of(sm, secret["Name"]) == {"ABC": "1", "abc": "2"}


def test_tag_by_arn(sm, secret):
    sm.tag_resource(SecretId=secret["ARN"], Tags=[{"Key": "k", "Value": "v"}])
    sm.untag_resource(SecretId=secret["ARN"], TagKeys=["k"])
    assert tags_of(sm, secret["Name"]) == {}


def test_tagging_does_not_create_a_version(sm, secret):
    sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": "k", "Value": "v"}])
    assert sm.describe_secret(SecretId=secret["Name"])["VersionIdsToStages"] == {secret["VersionId"]: ["AWSCURRENT"]}


def test_at_most_50_tags(sm, secret):
    sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert len(tags_of(sm, secret["Name"])) == 50
    sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": "k0", "Value": "overwrite"}])  # still 50
    # Code only, not confirmed against AWS: the documented quota is 50 tags per secret.
    with raises_aws("InvalidParameterException"):
        sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": "k50", "Value": "v"}])
    assert len(tags_of(sm, secret["Name"])) == 50


@pytest.mark.parametrize("key", ["aws:owner", "aws:secretsmanager:owningService"])
def test_aws_prefix_is_reserved(sm, secret, key):
    # "Do not use the aws: prefix ... You can't edit or delete tag names or values with this prefix."
    # Code only, not confirmed against AWS.
    with raises_aws("InvalidParameterException"):
        sm.tag_resource(SecretId=secret["Name"], Tags=[{"Key": key, "Value": "v"}])
    assert key not in tags_of(sm, secret["Name"])


@pytest.mark.parametrize(
    "tag",
    [{"Key": "", "Value": "v"}, {"Key": "k" * 129, "Value": "v"}, {"Key": "k", "Value": "v" * 257}],
    ids=["empty-key", "key-129", "value-257"],
)
def test_tag_length_limits(sm_raw, secret, tag):
    # Model constraints (TagKeyType 1..128, TagValueType 0..256) enforced by the service. Code only.
    with raises_aws("ValidationException"):
        sm_raw.tag_resource(SecretId=secret["Name"], Tags=[tag])
