"""IAM through boto3 and the AWS CLI: users, access keys (at most two), inline user policies, IAM's query-protocol
error shapes, and what an IAM user may do before any policy engine grants anything (nothing: deny by default)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.config import Config

from support import make_client_for, raises_aws, unique_name

READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}


@pytest.fixture(scope="session")
def iam(coffer):
    config = Config(region_name=coffer.region, retries={"mode": "standard", "max_attempts": 1})
    return boto3.session.Session().client(
        "iam",
        endpoint_url=coffer.url,
        region_name=coffer.region,
        aws_access_key_id=coffer.access_key,
        aws_secret_access_key=coffer.secret_key,
        config=config,
    )


@pytest.fixture
def user(iam):
    name = "u-" + uuid.uuid4().hex[:12]
    iam.create_user(UserName=name, Path="/team/")
    return name


def test_create_get_list_user(iam, coffer):
    name = "alice-" + uuid.uuid4().hex[:8]
    created = iam.create_user(UserName=name, Path="/eng/")["User"]
    assert created["UserName"] == name
    assert created["Path"] == "/eng/"
    assert created["Arn"] == f"arn:aws:iam::{coffer.account}:user/eng/{name}"
    assert created["UserId"].startswith("AIDA") and len(created["UserId"]) == 21
    # IAM names are unique regardless of case, and lookups ignore case
    assert iam.get_user(UserName=name.upper())["User"]["UserId"] == created["UserId"]
    with raises_aws("EntityAlreadyExists", f"User with name {name.upper()} already exists.", status=409):
        iam.create_user(UserName=name.upper())
    listed = iam.list_users(PathPrefix="/eng/")["Users"]
    assert name in [u["UserName"] for u in listed]
    assert all(u["Path"].startswith("/eng/") for u in listed)


def test_list_users_paginates(iam):
    for _ in range(3):
        iam.create_user(UserName="p-" + uuid.uuid4().hex[:10], Path="/pages/")
    seen = []
    for page in iam.get_paginator("list_users").paginate(PathPrefix="/pages/", PaginationConfig={"PageSize": 2}):
        seen.extend(u["UserName"] for u in page["Users"])
    assert len(seen) == len(set(seen)) >= 3


@pytest.mark.parametrize(
    "bad,code",
    [("has space", "ValidationError"), ("x" * 65, "ValidationError"), ("semi;colon", "ValidationError")],
)
def test_invalid_user_names(iam, bad, code):
    with raises_aws(code):
        iam.create_user(UserName=bad)


def test_unknown_user_is_no_such_entity(iam):
    with raises_aws("NoSuchEntity", "The user with name nobody-here cannot be found.", status=404):
        iam.get_user(UserName="nobody-here")


def test_access_keys_at_most_two_and_lifecycle(iam, user):
    k1 = iam.create_access_key(UserName=user)["AccessKey"]
    assert k1["AccessKeyId"].startswith("AKIA") and len(k1["SecretAccessKey"]) == 40 and k1["Status"] == "Active"
    k2 = iam.create_access_key(UserName=user)["AccessKey"]
    with raises_aws("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", status=409):
        iam.create_access_key(UserName=user)
    iam.update_access_key(UserName=user, AccessKeyId=k1["AccessKeyId"], Status="Inactive")
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert statuses == {k1["AccessKeyId"]: "Inactive", k2["AccessKeyId"]: "Active"}
    with raises_aws("DeleteConflict", "Cannot delete entity, must delete access keys first.", status=409):
        iam.delete_user(UserName=user)
    iam.delete_access_key(UserName=user, AccessKeyId=k1["AccessKeyId"])
    iam.delete_access_key(UserName=user, AccessKeyId=k2["AccessKeyId"])
    with raises_aws("NoSuchEntity", status=404):
        iam.delete_access_key(UserName=user, AccessKeyId=k2["AccessKeyId"])
    iam.delete_user(UserName=user)
    with raises_aws("NoSuchEntity", status=404):
        iam.get_user(UserName=user)


def test_inline_policies(iam, user):
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(READ_POLICY))
    got = iam.get_user_policy(UserName=user, PolicyName="read")
    assert got["PolicyDocument"] == READ_POLICY  # returned URL-encoded, decoded by botocore
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["read"]
    with raises_aws("MalformedPolicyDocument", status=400):
        iam.put_user_policy(UserName=user, PolicyName="bad", PolicyDocument="{not json")
    big = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::" + "b" * 2100}]}
    with raises_aws("LimitExceeded", status=409):
        iam.put_user_policy(UserName=user, PolicyName="big", PolicyDocument=json.dumps(big))
    with raises_aws("DeleteConflict", "Cannot delete entity, must delete policies first.", status=409):
        iam.delete_user(UserName=user)
    iam.delete_user_policy(UserName=user, PolicyName="read")
    with raises_aws("NoSuchEntity", status=404):
        iam.get_user_policy(UserName=user, PolicyName="read")
    iam.delete_user(UserName=user)


def test_user_keys_authenticate_and_are_denied_by_default(iam, user, coffer, sm):
    name = unique_name("deny")
    sm.create_secret(Name=name, SecretString="v")
    key = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = make_client_for(coffer, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    arn = f"arn:aws:iam::{coffer.account}:user/team/{user}"
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {arn} is not authorized to perform: secretsmanager:GetSecretValue on resource: "
        rf"arn:aws:secretsmanager:{coffer.region}:{coffer.account}:secret:{name}-\w{{6}} because no identity-based "
        r"policy allows the secretsmanager:GetSecretValue action$",
    ):
        as_user.get_secret_value(SecretId=name)
    # A denied caller learns nothing about whether a secret exists.
    with raises_aws("AccessDeniedException"):
        as_user.describe_secret(SecretId="no-such-secret-" + uuid.uuid4().hex)
    # The key's use was recorded.
    used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
    assert used["UserName"] == user
    assert used["AccessKeyLastUsed"]["ServiceName"] == "secretsmanager"
    # Deactivating the key takes effect at once, not after a cache expires.
    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with raises_aws("UnrecognizedClientException"):
        as_user.get_secret_value(SecretId=name)


def test_iam_actions_are_authorized_too(iam, user, coffer):
    key = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = boto3.session.Session().client(
        "iam",
        endpoint_url=coffer.url,
        region_name=coffer.region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    with raises_aws("AccessDenied", status=403, match=r"is not authorized to perform: iam:CreateUser"):
        as_user.create_user(UserName="sneaky-" + uuid.uuid4().hex[:6])


def test_unknown_action_and_missing_parameters(raw_query):
    status, body = raw_query({"Action": "FlyToTheMoon", "Version": "2010-05-08"})
    assert status == 400 and "<Code>InvalidAction</Code>" in body
    status, body = raw_query({"Action": "CreateUser", "Version": "2010-05-08"})
    assert status == 400 and "<Code>ValidationError</Code>" in body and "userName" in body
    status, body = raw_query({"Version": "2010-05-08"})
    assert status == 400 and "<Code>MissingAction</Code>" in body


@pytest.fixture
def raw_query(coffer):
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib3

    http = urllib3.PoolManager()

    def call(params: dict[str, str]) -> tuple[int, str]:
        body = urllib.parse.urlencode(params)
        req = AWSRequest(
            method="POST",
            url=coffer.url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(Credentials(coffer.access_key, coffer.secret_key), "iam", "us-east-1").add_auth(req)
        resp = http.request("POST", coffer.url + "/", body=body, headers=dict(req.headers))
        return resp.status, resp.data.decode()

    return call


def test_aws_cli_iam(aws_cli_iam):
    name = "cli-" + uuid.uuid4().hex[:8]
    out = aws_cli_iam("create-user", "--user-name", name)
    assert out["User"]["UserName"] == name
    users = aws_cli_iam("list-users")
    assert name in [u["UserName"] for u in users["Users"]]


@pytest.fixture
def aws_cli_iam(coffer, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    aws = Path(sys.executable).with_name("aws")

    def run(*args: str):
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ACCESS_KEY_ID": coffer.access_key,
            "AWS_SECRET_ACCESS_KEY": coffer.secret_key,
            "AWS_DEFAULT_REGION": coffer.region,
            "AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        }
        done = subprocess.run(
            [str(aws), "--endpoint-url", coffer.url, "--output", "json", "iam", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    return run


TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}],
}


def test_groups_membership_and_inline_policies(iam, user):
    group = "g-" + uuid.uuid4().hex[:10]
    created = iam.create_group(GroupName=group, Path="/ops/")["Group"]
    assert created["GroupId"].startswith("AGPA") and created["Arn"].endswith(f":group/ops/{group}")
    with raises_aws("EntityAlreadyExists", status=409):
        iam.create_group(GroupName=group.upper())
    iam.add_user_to_group(GroupName=group, UserName=user)
    got = iam.get_group(GroupName=group)
    assert [u["UserName"] for u in got["Users"]] == [user]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    iam.put_group_policy(GroupName=group, PolicyName="p", PolicyDocument=json.dumps(READ_POLICY))
    assert iam.get_group_policy(GroupName=group, PolicyName="p")["PolicyDocument"] == READ_POLICY
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["p"]
    with raises_aws("DeleteConflict", status=409):
        iam.delete_group(GroupName=group)
    iam.delete_group_policy(GroupName=group, PolicyName="p")
    with raises_aws("DeleteConflict", "Cannot delete entity, must remove users from group first.", status=409):
        iam.delete_group(GroupName=group)
    iam.remove_user_from_group(GroupName=group, UserName=user)
    iam.delete_group(GroupName=group)
    with raises_aws("NoSuchEntity", status=404):
        iam.get_group(GroupName=group)


def test_roles(iam):
    role = "r-" + uuid.uuid4().hex[:10]
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY), Description="app role")["Role"]
    assert created["RoleId"].startswith("AROA")
    assert created["AssumeRolePolicyDocument"] == TRUST_POLICY
    assert created["MaxSessionDuration"] == 3600
    iam.update_role(RoleName=role, MaxSessionDuration=7200, Description="changed")
    got = iam.get_role(RoleName=role)["Role"]
    assert (got["MaxSessionDuration"], got["Description"]) == (7200, "changed")
    unchecked = boto3.session.Session().client(
        "iam",
        endpoint_url=iam.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=iam._request_signer._credentials.access_key,
        aws_secret_access_key=iam._request_signer._credentials.secret_key,
        config=Config(parameter_validation=False, retries={"mode": "standard", "max_attempts": 1}),
    )
    with raises_aws("ValidationError"):
        unchecked.update_role(RoleName=role, MaxSessionDuration=60)
    new_trust = dict(TRUST_POLICY, Statement=[dict(TRUST_POLICY["Statement"][0], Effect="Deny")])
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(new_trust))
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == new_trust
    # a trust policy must name who may assume the role; a permissions policy must not
    with raises_aws("MalformedPolicyDocument"):
        iam.create_role(RoleName=role + "x", AssumeRolePolicyDocument=json.dumps(READ_POLICY))
    with raises_aws("MalformedPolicyDocument"):
        iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(TRUST_POLICY))
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(READ_POLICY))
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["p"]
    assert role in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    iam.delete_role_policy(RoleName=role, PolicyName="p")
    iam.delete_role(RoleName=role)


def test_managed_policies_versions_and_attachments(iam, user, coffer):
    name = "mp-" + uuid.uuid4().hex[:10]
    policy = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(READ_POLICY), Description="read")["Policy"]
    arn = policy["Arn"]
    assert arn == f"arn:aws:iam::{coffer.account}:policy/{name}"
    assert (policy["DefaultVersionId"], policy["AttachmentCount"]) == ("v1", 0)
    with raises_aws("EntityAlreadyExists", status=409):
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(READ_POLICY))
    for i in range(2, 6):
        v = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(READ_POLICY), SetAsDefault=(i == 3))["PolicyVersion"]
        assert v["VersionId"] == f"v{i}"
    with raises_aws("LimitExceeded", status=409):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(READ_POLICY))
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v3"]
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v3")["PolicyVersion"]["Document"] == READ_POLICY
    with raises_aws("DeleteConflict", "Cannot delete the default version of a policy.", status=409):
        iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")

    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]}
    assert attached == {arn, "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    with raises_aws("NoSuchEntity", status=404):
        iam.attach_user_policy(UserName=user, PolicyArn=f"arn:aws:iam::{coffer.account}:policy/nope")
    with raises_aws("DeleteConflict", "Cannot delete a policy attached to entities.", status=409):
        iam.delete_policy(PolicyArn=arn)
    with raises_aws("DeleteConflict", "Cannot delete entity, must detach all policies first.", status=409):
        iam.delete_user(UserName=user)
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    iam.detach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    with raises_aws("DeleteConflict", status=409):
        iam.delete_policy(PolicyArn=arn)  # non-default versions remain
    for v in ["v2", "v3", "v4", "v5"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    iam.delete_policy(PolicyArn=arn)
    with raises_aws("NoSuchEntity", status=404):
        iam.get_policy(PolicyArn=arn)


def test_aws_managed_policies_are_listed(iam):
    listed = {p["PolicyName"]: p for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert {"AdministratorAccess", "SecretsManagerReadWrite", "ReadOnlyAccess"} <= set(listed)
    admin = iam.get_policy_version(PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess", VersionId="v1")
    assert admin["PolicyVersion"]["Document"]["Statement"][0]["Action"] == "*"


def test_user_and_role_tags(iam):
    name = "t-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name, Tags=[{"Key": "team", "Value": "red"}])
    assert iam.get_user(UserName=name)["User"]["Tags"] == [{"Key": "team", "Value": "red"}]
    iam.tag_user(UserName=name, Tags=[{"Key": "TEAM", "Value": "blue"}, {"Key": "env", "Value": "prod"}])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "TEAM", "Value": "blue"}, {"Key": "env", "Value": "prod"}]
    iam.untag_user(UserName=name, TagKeys=["team"])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "env", "Value": "prod"}]
    with raises_aws("LimitExceeded", status=409):
        iam.tag_user(UserName=name, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    with raises_aws("InvalidInput"):
        iam.tag_user(UserName=name, Tags=[{"Key": "aws:reserved", "Value": "v"}])
    role = "tr-" + uuid.uuid4().hex[:10]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY), Tags=[{"Key": "a", "Value": "b"}])
    iam.tag_role(RoleName=role, Tags=[{"Key": "c", "Value": "d"}])
    assert iam.list_role_tags(RoleName=role)["Tags"] == [{"Key": "a", "Value": "b"}, {"Key": "c", "Value": "d"}]


def test_account_authorization_details(iam, user):
    group = "ad-" + uuid.uuid4().hex[:8]
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=json.dumps(READ_POLICY))
    iam.attach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite")
    details = iam.get_account_authorization_details()
    me = next(u for u in details["UserDetailList"] if u["UserName"] == user)
    assert me["GroupList"] == [group]
    assert me["UserPolicyList"] == [{"PolicyName": "inline", "PolicyDocument": READ_POLICY}]
    g = next(x for x in details["GroupDetailList"] if x["GroupName"] == group)
    assert g["AttachedManagedPolicies"] == [
        {"PolicyName": "SecretsManagerReadWrite", "PolicyArn": "arn:aws:iam::aws:policy/SecretsManagerReadWrite"}
    ]


def _as(coffer, key):
    return make_client_for(coffer, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


def _policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_user_limited_to_prod_reads_only_prod(iam, sm, coffer, user):
    run = uuid.uuid4().hex[:8]
    prod, dev = f"prod/{run}/db", f"dev/{run}/db"
    sm.create_secret(Name=prod, SecretString="prod-value")
    sm.create_secret(Name=dev, SecretString="dev-value")
    iam.put_user_policy(
        UserName=user,
        PolicyName="prod-read",
        PolicyDocument=_policy(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:aws:secretsmanager:*:{coffer.account}:secret:prod/*",
            }
        ),
    )
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    assert me.get_secret_value(SecretId=prod)["SecretString"] == "prod-value"
    arn = f"arn:aws:iam::{coffer.account}:user/team/{user}"
    with raises_aws(
        "AccessDeniedException",
        match=rf"^User: {arn} is not authorized to perform: secretsmanager:GetSecretValue on resource: "
        rf"arn:aws:secretsmanager:{coffer.region}:{coffer.account}:secret:{dev}-\w{{6}} because no identity-based "
        r"policy allows the secretsmanager:GetSecretValue action$",
    ):
        me.get_secret_value(SecretId=dev)
    with raises_aws("AccessDeniedException", match=r"secretsmanager:ListSecrets on resource: \*"):
        me.list_secrets()
    with raises_aws("AccessDeniedException", match=r"secretsmanager:DeleteSecret"):
        me.delete_secret(SecretId=prod, ForceDeleteWithoutRecovery=True)
    assert sm.describe_secret(SecretId=prod)["Name"] == prod


def test_explicit_deny_wins_and_changes_apply_at_once(iam, sm, coffer, user):
    name = unique_name("deny-wins")
    sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "class", "Value": "restricted"}])
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite")
    assert me.get_secret_value(SecretId=name)["SecretString"] == "v"
    iam.put_user_policy(
        UserName=user,
        PolicyName="no-restricted",
        PolicyDocument=_policy(
            {
                "Effect": "Deny",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringEquals": {"secretsmanager:ResourceTag/class": "restricted"}},
            }
        ),
    )
    with raises_aws("AccessDeniedException", match=r"with an explicit deny in an identity-based policy$"):
        me.get_secret_value(SecretId=name)
    other = unique_name("deny-wins-other")
    sm.create_secret(Name=other, SecretString="w")
    assert me.get_secret_value(SecretId=other)["SecretString"] == "w"
    iam.delete_user_policy(UserName=user, PolicyName="no-restricted")
    assert me.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_permissions_through_groups_and_managed_policies(iam, sm, coffer, user):
    name = unique_name("via-group")
    sm.create_secret(Name=name, SecretString="g")
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    with raises_aws("AccessDeniedException"):
        me.describe_secret(SecretId=name)
    group = "readers-" + uuid.uuid4().hex[:8]
    iam.create_group(GroupName=group)
    policy = iam.create_policy(
        PolicyName="describe-" + uuid.uuid4().hex[:8],
        PolicyDocument=_policy({"Effect": "Allow", "Action": ["secretsmanager:Describe*", "secretsmanager:List*"], "Resource": "*"}),
    )["Policy"]
    iam.attach_group_policy(GroupName=group, PolicyArn=policy["Arn"])
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert me.describe_secret(SecretId=name)["Name"] == name
    assert isinstance(me.list_secrets()["SecretList"], list)
    # a new default version that no longer allows Describe takes effect on the next request
    iam.create_policy_version(
        PolicyArn=policy["Arn"],
        PolicyDocument=_policy({"Effect": "Allow", "Action": "secretsmanager:List*", "Resource": "*"}),
        SetAsDefault=True,
    )
    with raises_aws("AccessDeniedException"):
        me.describe_secret(SecretId=name)
    iam.remove_user_from_group(GroupName=group, UserName=user)
    with raises_aws("AccessDeniedException"):
        me.list_secrets()


def test_policy_variables_and_global_keys(iam, sm, coffer, user):
    own = f"home/{user}/token"
    sm.create_secret(Name=own, SecretString="mine")
    theirs = unique_name("home/someone-else")
    sm.create_secret(Name=theirs, SecretString="not mine")
    iam.put_user_policy(
        UserName=user,
        PolicyName="home",
        PolicyDocument=_policy(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "arn:aws:secretsmanager:*:*:secret:home/${aws:username}/*",
                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}, "Bool": {"aws:SecureTransport": "false"}},
            }
        ),
    )
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    assert me.get_secret_value(SecretId=own)["SecretString"] == "mine"
    with raises_aws("AccessDeniedException"):
        me.get_secret_value(SecretId=theirs)


def test_iam_actions_follow_policies(iam, coffer, user):
    iam.put_user_policy(
        UserName=user,
        PolicyName="self-service",
        PolicyDocument=_policy(
            {"Effect": "Allow", "Action": ["iam:ListAccessKeys", "iam:GetUser"], "Resource": "arn:aws:iam::*:user/*/${aws:username}"}
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    me_iam = boto3.session.Session().client(
        "iam",
        endpoint_url=coffer.url,
        region_name=coffer.region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    assert me_iam.get_user()["User"]["UserName"] == user  # without UserName: the caller itself
    assert len(me_iam.list_access_keys()["AccessKeyMetadata"]) == 1
    with raises_aws("AccessDenied", status=403):
        me_iam.list_users()


def test_resource_policy_lifecycle_and_block_public(sm, coffer):
    name = unique_name("rp")
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)
    own = _policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{coffer.account}:root"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    )
    out = sm.put_resource_policy(SecretId=name, ResourcePolicy=own, BlockPublicPolicy=True)
    assert (out["ARN"], out["Name"]) == (arn, name)
    assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"]) == json.loads(own)
    public = _policy({"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    with raises_aws(
        "PublicPolicyException",
        "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.",
    ):
        sm.put_resource_policy(SecretId=name, ResourcePolicy=public, BlockPublicPolicy=True)
    with raises_aws("MalformedPolicyDocumentException", "This policy has invalid syntax."):
        sm.put_resource_policy(SecretId=name, ResourcePolicy='{"Statement": "nope"}')
    verdict = sm.validate_resource_policy(ResourcePolicy=public)
    assert verdict["PolicyValidationPassed"] is False
    assert [e["CheckName"] for e in verdict["ValidationErrors"]] == ["BROAD_ACCESS_CHECK"]
    assert sm.validate_resource_policy(SecretId=name, ResourcePolicy=own)["PolicyValidationPassed"] is True
    bad = sm.validate_resource_policy(ResourcePolicy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}')
    assert bad["PolicyValidationPassed"] is False and bad["ValidationErrors"][0]["CheckName"] == "SYNTAX_CHECK"
    sm.delete_resource_policy(SecretId=name)
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


def test_resource_policy_deny_overrides_identity_allow(iam, sm, coffer, user):
    name = unique_name("rp-deny")
    sm.create_secret(Name=name, SecretString="v")
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite")
    assert me.get_secret_value(SecretId=name)["SecretString"] == "v"
    user_arn = f"arn:aws:iam::{coffer.account}:user/team/{user}"
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=_policy({"Effect": "Deny", "Principal": {"AWS": user_arn}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}),
    )
    with raises_aws("AccessDeniedException", match=r"with an explicit deny in a resource-based policy$"):
        me.get_secret_value(SecretId=name)
    # the root user is not exempt from an explicit deny in a resource policy
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=_policy(
            {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{coffer.account}:root"}, "Action": "secretsmanager:DescribeSecret", "Resource": "*"}
        ),
    )
    with raises_aws("AccessDeniedException"):
        sm.describe_secret(SecretId=name)
    sm.delete_resource_policy(SecretId=name)
    assert sm.describe_secret(SecretId=name)["Name"] == name


def test_resource_policy_grants_within_the_account(iam, sm, coffer, user):
    name = unique_name("rp-allow")
    sm.create_secret(Name=name, SecretString="shared")
    me = _as(coffer, iam.create_access_key(UserName=user)["AccessKey"])
    with raises_aws("AccessDeniedException"):
        me.get_secret_value(SecretId=name)
    user_arn = f"arn:aws:iam::{coffer.account}:user/team/{user}"
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=_policy({"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}),
    )
    # within one account, an allow in the resource policy suffices (AWS policy evaluation logic)
    assert me.get_secret_value(SecretId=name)["SecretString"] == "shared"


def test_simulate_principal_and_custom_policy(iam, coffer, user):
    iam.put_user_policy(
        UserName=user,
        PolicyName="prod-read",
        PolicyDocument=_policy(
            {"Sid": "ProdRead", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*:*:secret:prod/*"}
        ),
    )
    arn = f"arn:aws:iam::{coffer.account}:user/team/{user}"
    prod = f"arn:aws:secretsmanager:us-east-1:{coffer.account}:secret:prod/db-AbCdEf"
    dev = f"arn:aws:secretsmanager:us-east-1:{coffer.account}:secret:dev/db-AbCdEf"
    out = iam.simulate_principal_policy(
        PolicySourceArn=arn, ActionNames=["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"], ResourceArns=[prod, dev]
    )["EvaluationResults"]
    decisions = {(r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"] for r in out}
    assert decisions == {
        ("secretsmanager:GetSecretValue", prod): "allowed",
        ("secretsmanager:GetSecretValue", dev): "implicitDeny",
        ("secretsmanager:DeleteSecret", prod): "implicitDeny",
        ("secretsmanager:DeleteSecret", dev): "implicitDeny",
    }
    allowed = next(r for r in out if r["EvalDecision"] == "allowed")
    assert allowed["MatchedStatements"][0]["SourcePolicyId"] == "prod-read"

    custom = iam.simulate_custom_policy(
        PolicyInputList=[
            _policy(
                {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}},
                }
            )
        ],
        ActionNames=["secretsmanager:GetSecretValue"],
        ContextEntries=[{"ContextKeyName": "aws:ResourceTag/env", "ContextKeyValues": ["prod"], "ContextKeyType": "string"}],
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in custom] == ["allowed"]
    with raises_aws("MalformedPolicyDocument"):
        iam.simulate_custom_policy(PolicyInputList=["{not json"], ActionNames=["s3:GetObject"])
    with raises_aws("NoSuchEntity", status=404):
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{coffer.account}:user/ghost", ActionNames=["iam:GetUser"])


def test_rename_user_and_group_carries_everything(iam, coffer, user):
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(READ_POLICY))
    group = "grp-" + uuid.uuid4().hex[:8]
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    new = user + "-renamed"
    iam.update_user(UserName=user, NewUserName=new, NewPath="/moved/")
    with raises_aws("NoSuchEntity", status=404):
        iam.get_user(UserName=user)
    got = iam.get_user(UserName=new)["User"]
    assert got["Arn"] == f"arn:aws:iam::{coffer.account}:user/moved/{new}"
    assert iam.list_user_policies(UserName=new)["PolicyNames"] == ["p"]
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=new)["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [new]
    new_group = group + "-2"
    iam.update_group(GroupName=group, NewGroupName=new_group)
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=new)["Groups"]] == [new_group]
    other = "taken-" + uuid.uuid4().hex[:8]
    iam.create_user(UserName=other)
    with raises_aws("EntityAlreadyExists", status=409):
        iam.update_user(UserName=new, NewUserName=other.upper())


def test_cli_simulates_a_stored_principal_from_the_data_dir(tmp_path):
    import os
    import socket
    import subprocess
    import time

    from conftest import coffer_binary

    coffer_bin = str(coffer_binary())
    data = tmp_path / "data"
    init = json.loads(subprocess.run([coffer_bin, "init", "--data-dir", str(data), "--format", "json"], check=True, capture_output=True, text=True).stdout)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [coffer_bin, "server", "--data-dir", str(data), "--insecure-http", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=init["access_key_id"],
            aws_secret_access_key=init["secret_access_key"],
        )
        for _ in range(100):
            try:
                iam.list_users()
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        iam.create_user(UserName="alice")
        iam.put_user_policy(UserName="alice", PolicyName="prod-read", PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*:*:secret:prod/*"}
        ))
    finally:
        server.terminate()
        server.wait(timeout=10)
    account = init["account_id"]
    out = subprocess.run(
        [
            coffer_bin, "policy", "simulate", "--data-dir", str(data),
            "--principal", f"arn:aws:iam::{account}:user/alice",
            "--action", "secretsmanager:GetSecretValue",
            "--resource", f"arn:aws:secretsmanager:us-east-1:{account}:secret:prod/db-AbCdEf",
            "--resource", f"arn:aws:secretsmanager:us-east-1:{account}:secret:dev/db-AbCdEf",
            "--output", "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["decision"] for r in rows] == ["allowed", "implicitDeny"]
    assert rows[0]["statements"] == ["prod-read (user)"]


def test_list_resource_policies(sm, raw, coffer):
    # ListResourcePolicies is newer than the pinned botocore, so it is sent raw.
    name = unique_name("lrp")
    sm.create_secret(Name=name, SecretString="v")
    resp = raw.call("ListResourcePolicies", {"SecretId": name})
    assert resp.status == 200, resp.body
    assert json.loads(resp.body) == {"ResourcePolicies": []}
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=_policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{coffer.account}:root"}, "Action": "secretsmanager:*", "Resource": "*"}
        ),
    )
    resp = raw.call("ListResourcePolicies", {"SecretId": name})
    assert json.loads(resp.body) == {"ResourcePolicies": [{"PolicyName": "default"}]}
    resp = raw.call("ListResourcePolicies", {"SecretId": "no-such-" + uuid.uuid4().hex})
    assert resp.status == 400 and json.loads(resp.body)["__type"] == "ResourceNotFoundException"
