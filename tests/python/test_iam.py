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
