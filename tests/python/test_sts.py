"""STS through boto3 and the AWS CLI: GetCallerIdentity, AssumeRole (trust policies, ExternalId, session policies,
session tags, role chaining, durations), GetSessionToken, and temporary credentials that expire (by coffer's manual
clock, not by sleeping) and cannot be tampered with."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from support import current_step, raises_aws, totp, unique_name

NO_RETRY = Config(retries={"mode": "standard", "max_attempts": 1})
ROOT_REFUSED = "Roles may not be assumed by root accounts."
CHAINING_LIMIT = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
ROLE_LIMIT = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
EXPIRED = "The security token included in the request is expired"
INVALID_TOKEN = "The security token included in the request is invalid."


def client(endpoint, service, creds=None):
    creds = creds or {"AccessKeyId": endpoint.access_key, "SecretAccessKey": endpoint.secret_key}
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=NO_RETRY,
    )


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@dataclass
class World:
    """One server (plain or manual clock) with a root IAM client and helpers to make users and roles."""

    endpoint: object

    @property
    def iam(self):
        return client(self.endpoint, "iam")

    def user(self, *policies) -> dict:
        name = "u-" + uuid.uuid4().hex[:10]
        iam = self.iam
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        for i, p in enumerate(policies):
            iam.put_user_policy(UserName=name, PolicyName=f"p{i}", PolicyDocument=doc(*p))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"name": name, "arn": arn, **key}

    def role(self, trust: list, *policies, max_session=None, tags=None) -> dict:
        name = "r-" + uuid.uuid4().hex[:10]
        kwargs = {"MaxSessionDuration": max_session} if max_session else {}
        if tags:
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        role = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc(*trust), **kwargs)["Role"]
        for i, p in enumerate(policies):
            self.iam.put_role_policy(RoleName=name, PolicyName=f"p{i}", PolicyDocument=doc(*p))
        return role

    def secret(self, value="s3cret") -> str:
        return client(self.endpoint, "secretsmanager").create_secret(Name=unique_name("sts"), SecretString=value)["ARN"]


def trust_of(*principals, **condition):
    st = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}
    if condition:
        st["Condition"] = condition
    return [st]


@pytest.fixture(scope="module")
def world(coffer):
    return World(coffer)


@pytest.fixture(scope="module")
def clock_world(coffer_clock):
    if not coffer_clock.manual_clock:
        pytest.skip("needs coffer's --manual-clock admin routes")
    return World(coffer_clock)


def assume(endpoint, creds, role_arn, **kwargs):
    kwargs.setdefault("RoleSessionName", "sess")
    return client(endpoint, "sts", creds).assume_role(RoleArn=role_arn, **kwargs)


# --- GetCallerIdentity -------------------------------------------------------------------------------------------------
def test_caller_identity_of_root_user_and_role_session(world, coffer):
    root = client(coffer, "sts").get_caller_identity()
    assert root["Account"] == coffer.account
    assert root["Arn"] == f"arn:aws:iam::{coffer.account}:root"
    assert root["UserId"] == coffer.account

    u = world.user()
    me = client(coffer, "sts", u).get_caller_identity()
    assert me["Arn"] == u["arn"] and me["Account"] == coffer.account
    assert me["UserId"].startswith("AIDA")

    role = world.role(trust_of(u["arn"]))
    out = assume(coffer, u, role["Arn"], RoleSessionName="alice@example.com")
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40
    session_arn = f"arn:aws:sts::{coffer.account}:assumed-role/{role['RoleName']}/alice@example.com"
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{role['RoleId']}:alice@example.com", "Arn": session_arn}
    now = datetime.now(timezone.utc)
    assert timedelta(minutes=59) < creds["Expiration"] - now <= timedelta(minutes=61)
    assert "PackedPolicySize" not in out
    who = client(coffer, "sts", creds).get_caller_identity()
    assert who == {**who, "Arn": session_arn, "UserId": f"{role['RoleId']}:alice@example.com", "Account": coffer.account}


# --- AssumeRole: who may -------------------------------------------------------------------------------------------------
def test_root_user_may_not_assume_roles(world, coffer):
    role = world.role(trust_of(f"arn:aws:iam::{coffer.account}:root"))
    with raises_aws("AccessDenied", ROOT_REFUSED, status=403):
        assume(coffer, None, role["Arn"])


def test_trust_naming_the_user_suffices_within_the_account(world, coffer):
    u = world.user()  # no identity policy at all
    role = world.role(trust_of(u["arn"]))
    assert assume(coffer, u, role["Arn"])["Credentials"]["AccessKeyId"].startswith("ASIA")
    stranger = world.user([allow("sts:AssumeRole")])
    # A trust policy that doesn't name the stranger: its own identity allow isn't enough.
    with raises_aws(
        "AccessDenied",
        f"User: {stranger['arn']} is not authorized to perform: sts:AssumeRole on resource: {role['Arn']}",
        status=403,
    ):
        assume(coffer, stranger, role["Arn"])


def test_trust_naming_the_account_delegates_to_identity_policies(world, coffer):
    role = world.role(trust_of(f"arn:aws:iam::{coffer.account}:root"))
    without = world.user()
    with raises_aws("AccessDenied", status=403):
        assume(coffer, without, role["Arn"])
    with_policy = world.user([allow("sts:AssumeRole", role["Arn"])])
    assume(coffer, with_policy, role["Arn"])
    # An explicit deny in the identity policy wins over the trust policy.
    denied = world.user([allow("sts:AssumeRole", role["Arn"]), {"Effect": "Deny", "Action": "sts:*", "Resource": "*"}])
    with raises_aws("AccessDenied", status=403):
        assume(coffer, denied, role["Arn"])


def test_a_missing_role_looks_like_a_refused_one(world, coffer):
    u = world.user([allow("sts:AssumeRole")])
    arn = f"arn:aws:iam::{coffer.account}:role/does-not-exist-{uuid.uuid4().hex[:6]}"
    with raises_aws(
        "AccessDenied", f"User: {u['arn']} is not authorized to perform: sts:AssumeRole on resource: {arn}", status=403
    ):
        assume(coffer, u, arn)


@pytest.mark.parametrize(
    "kwargs, code, message",
    [
        ({"RoleArn": "arn:aws:iam::123456789012:user/not-a-role"}, "ValidationError", "Request ARN is invalid"),
        ({"RoleArn": "arn:aws:s3:::bucket-name-long"}, "ValidationError", "Request ARN is invalid"),
        (
            {"RoleSessionName": "has space"},
            "ValidationError",
            "1 validation error detected: Value 'has space' at 'roleSessionName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ),
        (
            {"DurationSeconds": 899},
            "ValidationError",
            "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: "
            "Member must have value greater than or equal to 900",
        ),
        ({"ExternalId": "bad id!"}, "ValidationError", None),
        ({"Policy": "{not json"}, "MalformedPolicyDocument", None),
        ({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}]}, "InvalidParameterValue", None),
    ],
)
def test_assume_role_input_errors(world, coffer, kwargs, code, message):
    u = world.user()
    role = world.role(trust_of(u["arn"]))
    args = {"RoleArn": role["Arn"], "RoleSessionName": "s1", **kwargs}
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=coffer.url,
        region_name=coffer.region,
        aws_access_key_id=u["AccessKeyId"],
        aws_secret_access_key=u["SecretAccessKey"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}, parameter_validation=False),
    )
    with raises_aws(code, message):
        sts.assume_role(**args)


# --- ExternalId ----------------------------------------------------------------------------------------------------------
def test_external_id_condition(world, coffer):
    u = world.user()
    role = world.role(trust_of(u["arn"], StringEquals={"sts:ExternalId": "vendor-42"}))
    with raises_aws("AccessDenied", status=403):
        assume(coffer, u, role["Arn"])
    with raises_aws("AccessDenied", status=403):
        assume(coffer, u, role["Arn"], ExternalId="vendor-43")
    assume(coffer, u, role["Arn"], ExternalId="vendor-42")


# --- what a session may do ---------------------------------------------------------------------------------------------
def test_role_session_acts_with_the_roles_policies(world, coffer):
    wanted, other = world.secret("one"), world.secret("two")
    u = world.user()
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue", wanted)])
    creds = assume(coffer, u, role["Arn"], RoleSessionName="reader")["Credentials"]
    sm = client(coffer, "secretsmanager", creds)
    assert sm.get_secret_value(SecretId=wanted)["SecretString"] == "one"
    session_arn = f"arn:aws:sts::{coffer.account}:assumed-role/{role['RoleName']}/reader"
    with raises_aws(
        "AccessDeniedException",
        f"User: {session_arn} is not authorized to perform: secretsmanager:GetSecretValue on resource: {other} "
        "because no identity-based policy allows the secretsmanager:GetSecretValue action",
    ):
        sm.get_secret_value(SecretId=other)
    # The user itself has no permission; only the role does.
    with raises_aws("AccessDeniedException"):
        client(coffer, "secretsmanager", u).get_secret_value(SecretId=wanted)


def test_session_policy_narrows_the_role(world, coffer):
    a, b = world.secret("a"), world.secret("b")
    u = world.user()
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue")])
    # Secrets Manager decrypts with the caller's permissions (a forward access session), so a session policy that
    # narrows a role must leave kms:Decrypt too, as on AWS.
    out = assume(coffer, u, role["Arn"], Policy=doc(allow("secretsmanager:GetSecretValue", a), allow("kms:Decrypt")))
    assert 0 <= out["PackedPolicySize"] <= 100
    sm = client(coffer, "secretsmanager", out["Credentials"])
    assert sm.get_secret_value(SecretId=a)["SecretString"] == "a"
    with raises_aws("AccessDeniedException", match="because no session policy allows the secretsmanager:GetSecretValue"):
        sm.get_secret_value(SecretId=b)
    no_kms = assume(coffer, u, role["Arn"], Policy=doc(allow("secretsmanager:GetSecretValue", a)))["Credentials"]
    with raises_aws("AccessDeniedException", "Access to KMS is not allowed"):
        client(coffer, "secretsmanager", no_kms).get_secret_value(SecretId=a)
    # A session policy cannot widen: it allows everything, the role still only GetSecretValue.
    wide = assume(coffer, u, role["Arn"], Policy=doc(allow("secretsmanager:*")))["Credentials"]
    with raises_aws("AccessDeniedException", match="because no identity-based policy allows"):
        client(coffer, "secretsmanager", wide).delete_secret(SecretId=a)


def test_managed_session_policies_narrow_too(world, coffer):
    a, b = world.secret("a"), world.secret("b")
    u = world.user()
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue")])
    managed = world.iam.create_policy(
        PolicyName="sess-" + uuid.uuid4().hex[:8],
        PolicyDocument=doc(allow("secretsmanager:GetSecretValue", b), allow("kms:Decrypt")),
    )["Policy"]["Arn"]
    creds = assume(coffer, u, role["Arn"], PolicyArns=[{"arn": managed}])["Credentials"]
    sm = client(coffer, "secretsmanager", creds)
    assert sm.get_secret_value(SecretId=b)["SecretString"] == "b"
    with raises_aws("AccessDeniedException"):
        sm.get_secret_value(SecretId=a)
    with raises_aws("InvalidParameterValue"):
        assume(coffer, u, role["Arn"], PolicyArns=[{"arn": f"arn:aws:iam::{coffer.account}:policy/nope-123456"}])


def test_deleting_the_role_ends_what_its_sessions_may_do(world, coffer):
    a = world.secret("a")
    u = world.user()
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue")])
    creds = assume(coffer, u, role["Arn"])["Credentials"]
    sm = client(coffer, "secretsmanager", creds)
    sm.get_secret_value(SecretId=a)
    world.iam.delete_role_policy(RoleName=role["RoleName"], PolicyName="p0")
    world.iam.delete_role(RoleName=role["RoleName"])
    # A role of the same name created again is another role: the old session gets nothing from it.
    world.iam.create_role(RoleName=role["RoleName"], AssumeRolePolicyDocument=doc(*trust_of(u["arn"])))
    world.iam.put_role_policy(
        RoleName=role["RoleName"], PolicyName="p0", PolicyDocument=doc(allow("secretsmanager:GetSecretValue"))
    )
    with raises_aws("AccessDeniedException"):
        sm.get_secret_value(SecretId=a)


def test_session_tags_need_tag_session_and_become_principal_tags(world, coffer):
    mine, theirs = world.secret("mine"), world.secret("theirs")
    client(coffer, "secretsmanager").tag_resource(SecretId=mine, Tags=[{"Key": "team", "Value": "red"}])
    client(coffer, "secretsmanager").tag_resource(SecretId=theirs, Tags=[{"Key": "team", "Value": "blue"}])
    u = world.user()
    abac = [
        allow(
            "secretsmanager:GetSecretValue",
            Condition={"StringEquals": {"secretsmanager:ResourceTag/team": "${aws:PrincipalTag/team}"}},
        )
    ]
    plain = world.role(trust_of(u["arn"]), abac)
    with raises_aws("AccessDenied", status=403, match="sts:TagSession"):
        assume(coffer, u, plain["Arn"], Tags=[{"Key": "team", "Value": "red"}])
    trust = trust_of(u["arn"])
    trust[0]["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    role = world.role(trust, abac, tags={"team": "blue"})
    out = assume(coffer, u, role["Arn"], Tags=[{"Key": "team", "Value": "red"}])
    assert out["PackedPolicySize"] >= 0
    sm = client(coffer, "secretsmanager", out["Credentials"])
    # The session tag overrides the role's tag of the same key.
    assert sm.get_secret_value(SecretId=mine)["SecretString"] == "mine"
    with raises_aws("AccessDeniedException"):
        sm.get_secret_value(SecretId=theirs)
    # Without session tags the role's own tag applies.
    untagged = client(coffer, "secretsmanager", assume(coffer, u, role["Arn"])["Credentials"])
    assert untagged.get_secret_value(SecretId=theirs)["SecretString"] == "theirs"


# --- chaining and durations ----------------------------------------------------------------------------------------------
def test_durations_and_role_chaining(world, coffer):
    u = world.user()
    first = world.role(trust_of(u["arn"]), [allow("sts:AssumeRole")], max_session=4 * 3600)
    long = assume(coffer, u, first["Arn"], DurationSeconds=4 * 3600)["Credentials"]
    assert long["Expiration"] - datetime.now(timezone.utc) > timedelta(hours=3, minutes=58)
    with raises_aws("ValidationError", ROLE_LIMIT):
        assume(coffer, u, first["Arn"], DurationSeconds=4 * 3600 + 1)

    second = world.role(trust_of(first["Arn"]), max_session=12 * 3600)
    with raises_aws("ValidationError", CHAINING_LIMIT):
        assume(coffer, long, second["Arn"], DurationSeconds=7200)
    chained = assume(coffer, long, second["Arn"], RoleSessionName="hop", DurationSeconds=3600)
    assert chained["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{coffer.account}:assumed-role/{second['RoleName']}/hop"
    assert chained["Credentials"]["Expiration"] - datetime.now(timezone.utc) <= timedelta(hours=1, minutes=1)


def test_transitive_session_tags_follow_a_chain(world, coffer):
    u = world.user()
    trust = trust_of(u["arn"])
    trust[0]["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    first = world.role(trust, [allow("sts:AssumeRole")])
    second_trust = trust_of(first["Arn"])
    second_trust[0]["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    second = world.role(second_trust, [allow("secretsmanager:GetSecretValue", Condition={"StringEquals": {"aws:PrincipalTag/project": "apollo"}})])
    s = world.secret("x")
    one = assume(coffer, u, first["Arn"], Tags=[{"Key": "project", "Value": "apollo"}], TransitiveTagKeys=["project"])
    two = assume(coffer, one["Credentials"], second["Arn"])["Credentials"]
    assert client(coffer, "secretsmanager", two).get_secret_value(SecretId=s)["SecretString"] == "x"
    with raises_aws("InvalidParameterValue"):
        assume(coffer, one["Credentials"], second["Arn"], Tags=[{"Key": "project", "Value": "gemini"}])


# --- expiry and tampering ------------------------------------------------------------------------------------------------
def test_expired_credentials_are_refused(clock_world, coffer_clock, admin):
    u = clock_world.user()
    role = clock_world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue")])
    s = clock_world.secret("v")
    creds = assume(coffer_clock, u, role["Arn"], DurationSeconds=900)["Credentials"]
    sm = client(coffer_clock, "secretsmanager", creds)
    assert sm.get_secret_value(SecretId=s)["SecretString"] == "v"
    admin.advance(899)
    assert sm.get_secret_value(SecretId=s)["SecretString"] == "v"
    admin.advance(2)
    with raises_aws("ExpiredTokenException", EXPIRED):
        sm.get_secret_value(SecretId=s)
    with raises_aws("ExpiredToken", EXPIRED, status=403):
        client(coffer_clock, "sts", creds).get_caller_identity()


def test_get_session_token_expires_by_its_duration(clock_world, coffer_clock, admin):
    u = clock_world.user([allow("secretsmanager:GetSecretValue")])
    s = clock_world.secret("v")
    creds = client(coffer_clock, "sts", u).get_session_token(DurationSeconds=1800)["Credentials"]
    sm = client(coffer_clock, "secretsmanager", creds)
    assert sm.get_secret_value(SecretId=s)["SecretString"] == "v"
    admin.advance(1801)
    with raises_aws("ExpiredTokenException"):
        sm.get_secret_value(SecretId=s)


def flip(token: str, at: int) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_a_tampered_or_borrowed_token_is_refused(world, coffer):
    u = world.user()
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:ListSecrets")])
    creds = assume(coffer, u, role["Arn"], DurationSeconds=900)["Credentials"]
    client(coffer, "secretsmanager", creds).list_secrets()
    token = creds["SessionToken"]
    raw_len = len(base64.b64decode(token))
    for at in (0, 5, 20, raw_len // 2, raw_len - 1):
        bad = {**creds, "SessionToken": flip(token, at)}
        with raises_aws("UnrecognizedClientException", INVALID_TOKEN):
            client(coffer, "secretsmanager", bad).list_secrets()
    with raises_aws("InvalidClientTokenId", INVALID_TOKEN, status=403):
        client(coffer, "sts", {**creds, "SessionToken": "not base64 !!"}).get_caller_identity()
    # Another session's token with this session's keys: the token names its own access key id.
    other = assume(coffer, u, role["Arn"])["Credentials"]
    with raises_aws("UnrecognizedClientException"):
        client(coffer, "secretsmanager", {**creds, "SessionToken": other["SessionToken"]}).list_secrets()
    # The right token with a wrong secret fails the signature.
    with raises_aws("InvalidSignatureException"):
        client(coffer, "secretsmanager", {**creds, "SecretAccessKey": "x" * 40}).list_secrets()
    # A temporary key id without any token is unknown.
    with raises_aws("UnrecognizedClientException"):
        client(coffer, "secretsmanager", {k: v for k, v in creds.items() if k != "SessionToken"}).list_secrets()


# --- GetSessionToken -----------------------------------------------------------------------------------------------------
def test_get_session_token_rules(world, coffer):
    u = world.user([allow("iam:ListUsers"), allow("secretsmanager:ListSecrets")])
    sts = client(coffer, "sts", u)
    creds = sts.get_session_token()["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    left = creds["Expiration"] - datetime.now(timezone.utc)
    assert timedelta(hours=11, minutes=58) < left <= timedelta(hours=12, minutes=1)
    # It acts as the user.
    assert client(coffer, "sts", creds).get_caller_identity()["Arn"] == u["arn"]
    client(coffer, "secretsmanager", creds).list_secrets()
    # No IAM without MFA, and no GetSessionToken from a session.
    with raises_aws("InvalidClientTokenId", INVALID_TOKEN, status=403):
        client(coffer, "iam", creds).list_users()
    with raises_aws("AccessDenied", "Cannot call GetSessionToken with session credentials", status=403):
        client(coffer, "sts", creds).get_session_token()
    with raises_aws("ValidationError"):
        sts.get_session_token(DurationSeconds=129601)
    # The root user's sessions last at most an hour, whatever is asked.
    root = client(coffer, "sts").get_session_token(DurationSeconds=129600)["Credentials"]
    assert root["Expiration"] - datetime.now(timezone.utc) <= timedelta(hours=1, minutes=1)


# --- the AWS CLI with an assume-role profile -----------------------------------------------------------------------------
def test_aws_cli_assume_role_profile_reads_a_secret(world, coffer, tmp_path):
    aws = Path(sys.executable).parent / "aws"
    if not aws.exists():
        pytest.skip("the AWS CLI is not installed in this Python environment")
    u = world.user()
    secret = world.secret("through-a-profile")
    role = world.role(trust_of(u["arn"]), [allow("secretsmanager:GetSecretValue", secret)])
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\n"
        f"aws_access_key_id = {u['AccessKeyId']}\n"
        f"aws_secret_access_key = {u['SecretAccessKey']}\n"
        f"region = {coffer.region}\n"
        "[profile app]\n"
        f"role_arn = {role['Arn']}\n"
        "source_profile = base\n"
        "role_session_name = cli-app\n"
        f"region = {coffer.region}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ENDPOINT_URL=coffer.url,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    run = lambda *args: subprocess.run(  # noqa: E731
        [str(aws), "--profile", "app", "--output", "json", *args], env=env, capture_output=True, text=True, timeout=60
    )
    who = run("sts", "get-caller-identity")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == f"arn:aws:sts::{coffer.account}:assumed-role/{role['RoleName']}/cli-app"
    got = run("secretsmanager", "get-secret-value", "--secret-id", secret)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["SecretString"] == "through-a-profile"


# --- MFA -------------------------------------------------------------------------------------------------------------
MFA_GUARD = [
    allow("secretsmanager:GetSecretValue"),
    allow("kms:Decrypt"),
    {
        "Effect": "Deny",
        "Action": "secretsmanager:*",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    },
]
INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."


def mfa_user(world, admin, *policies):
    """A user with an enabled virtual MFA device: (user, serial number, Base32 seed)."""
    u = world.user(*policies)
    device = world.iam.create_virtual_mfa_device(VirtualMFADeviceName="d-" + uuid.uuid4().hex[:10])
    serial, seed = device["VirtualMFADevice"]["SerialNumber"], device["VirtualMFADevice"]["Base32StringSeed"]
    step = current_step(admin)
    world.iam.enable_mfa_device(
        UserName=u["name"],
        SerialNumber=serial,
        AuthenticationCode1=totp(seed, step - 1),
        AuthenticationCode2=totp(seed, step),
    )
    admin.advance(30)  # the enabling codes are spent; the next step's code is fresh
    return u, serial, seed


def test_a_policy_demanding_mfa(clock_world, coffer_clock, admin):
    u, serial, seed = mfa_user(clock_world, admin, MFA_GUARD)
    s = clock_world.secret("behind-mfa")
    # Long-term keys: the MFA key is absent, BoolIfExists holds, the deny applies.
    with raises_aws("AccessDeniedException", match="with an explicit deny in an identity-based policy"):
        client(coffer_clock, "secretsmanager", u).get_secret_value(SecretId=s)
    sts = client(coffer_clock, "sts", u)
    # A session without MFA: aws:MultiFactorAuthPresent is false.
    plain = sts.get_session_token()["Credentials"]
    with raises_aws("AccessDeniedException", match="explicit deny"):
        client(coffer_clock, "secretsmanager", plain).get_secret_value(SecretId=s)
    # With a valid code the same user gets in.
    code = totp(seed, current_step(admin))
    creds = sts.get_session_token(SerialNumber=serial, TokenCode=code)["Credentials"]
    sm = client(coffer_clock, "secretsmanager", creds)
    assert sm.get_secret_value(SecretId=s)["SecretString"] == "behind-mfa"
    # The code is spent: the same code again is refused.
    with raises_aws("AccessDenied", INVALID_CODE, status=403):
        sts.get_session_token(SerialNumber=serial, TokenCode=code)
    with raises_aws("AccessDenied", INVALID_CODE, status=403):
        sts.get_session_token(SerialNumber=serial, TokenCode="000000" if code != "000000" else "111111")
    # MFA sessions may call IAM: the request is authenticated and then authorized like the user's own.
    with raises_aws("AccessDenied", status=403, match="not authorized to perform: iam:ListMFADevices"):
        client(coffer_clock, "iam", creds).list_mfa_devices()


def test_mfa_age_and_another_users_device(clock_world, coffer_clock, admin):
    recent = [
        allow("secretsmanager:ListSecrets", Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "600"}}),
    ]
    u, serial, seed = mfa_user(clock_world, admin, recent)
    creds = client(coffer_clock, "sts", u).get_session_token(SerialNumber=serial, TokenCode=totp(seed, current_step(admin)))[
        "Credentials"
    ]
    sm = client(coffer_clock, "secretsmanager", creds)
    sm.list_secrets()
    admin.advance(601)
    with raises_aws("AccessDeniedException"):
        sm.list_secrets()
    # Another user cannot use this user's device.
    other = clock_world.user()
    with raises_aws("AccessDenied", status=403, match="^MultiFactorAuthentication failed, unable to validate MFA code"):
        client(coffer_clock, "sts", other).get_session_token(SerialNumber=serial, TokenCode=totp(seed, current_step(admin)))


def test_assume_role_with_mfa(clock_world, coffer_clock, admin):
    u, serial, seed = mfa_user(clock_world, admin)
    role = clock_world.role(
        trust_of(u["arn"], Bool={"aws:MultiFactorAuthPresent": "true"}), [allow("secretsmanager:ListSecrets")]
    )
    with raises_aws("AccessDenied", status=403):
        assume(coffer_clock, u, role["Arn"])
    out = assume(coffer_clock, u, role["Arn"], SerialNumber=serial, TokenCode=totp(seed, current_step(admin)))
    client(coffer_clock, "secretsmanager", out["Credentials"]).list_secrets()
    # A session that proved MFA (GetSessionToken) may assume the role without a new code.
    admin.advance(30)
    mfa_session = client(coffer_clock, "sts", u).get_session_token(
        SerialNumber=serial, TokenCode=totp(seed, current_step(admin))
    )["Credentials"]
    assume(coffer_clock, mfa_session, role["Arn"])
