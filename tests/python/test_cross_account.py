"""Several accounts in one deployment, and Secrets Manager across them, end to end over HTTP.

Account B is made with the CLI (`coffer account create --output json`, which reaches the running dev server
through its admin socket); B's root user creates an IAM user `reader` in B. Account A is the dev account. B's
reader reads A's secret only when all three layers allow it: A's resource policy on the secret, B's identity
policy, and the key policy of A's customer managed key. Removing any one of them is refused with AWS's error; a
secret under the AWS managed key `aws/secretsmanager` is never readable from another account.

AWS's texts and where they were confirmed:
- "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service
  key." (InvalidRequestException): LocalStack's AWS-validated TestSecretsManagerMultiAccounts::
  test_cross_account_access (GetSecretValue and PutSecretValue), and the AWS knowledge center article
  secrets-manager-cross-account-key.
- "Access to KMS is not allowed" (AccessDeniedException): the same knowledge center article.
- "... because no resource-based policy allows the ... action" for another account's secret without a grant
  (tekumara/notes aws-secretsmanager.md quotes it for an ARN of another account and region).
"""

from __future__ import annotations

import json
import re
import uuid
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config

from conftest import Account, Endpoint, run_coffer
from support import raises_aws, unique_name

DEFAULT_KEY_ERROR = (
    "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key."
)
KMS_DENIED = "Access to KMS is not allowed"
NOT_FOUND = "Secrets Manager can't find the specified secret."
GET = "secretsmanager:GetSecretValue"


def client(endpoint: Endpoint, service: str, *, access_key: str | None = None, secret_key: str | None = None,
           region: str | None = None):
    region = region or endpoint.region
    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": 1}, connect_timeout=5,
                    read_timeout=30)
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint.url,
        region_name=region,
        aws_access_key_id=access_key or endpoint.access_key,
        aws_secret_access_key=secret_key or endpoint.secret_key,
        config=config,
    )


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def no_resource_policy(principal: str, action: str, resource: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no resource-based policy allows the {action} action"
    )


def no_identity_policy(principal: str, action: str, resource: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


class World(SimpleNamespace):
    """A (the dev account) shares with B (made by the CLI): A's secret under A's customer managed key, whose key
    policy lets account B use it; B's IAM user `reader`. No resource policy and no identity policy yet."""

    def share_with(self, principal: str, actions: list[str] | str = GET, secret_arn: str | None = None) -> None:
        self.a_sm.put_resource_policy(
            SecretId=secret_arn or self.secret_arn,
            ResourcePolicy=policy({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions,
                                   "Resource": "*"}),
        )

    def unshare(self) -> None:
        self.a_sm.delete_resource_policy(SecretId=self.secret_arn)

    def allow_reader(self, secret_actions: list[str], kms_actions: list[str]) -> None:
        statements = []
        if secret_actions:
            statements.append({"Effect": "Allow", "Action": secret_actions,
                               "Resource": f"arn:aws:secretsmanager:{self.region}:{self.a}:secret:*"})
        if kms_actions:
            statements.append({"Effect": "Allow", "Action": kms_actions, "Resource": self.key_arn})
        if statements:
            self.b_iam.put_user_policy(UserName=self.reader_name, PolicyName="cross",
                                       PolicyDocument=policy(*statements))
        else:
            self.b_iam.delete_user_policy(UserName=self.reader_name, PolicyName="cross")

    def set_key_policy(self, b_actions: list[str]) -> None:
        statements = [{"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{self.a}:root"},
                       "Action": "kms:*", "Resource": "*"}]
        if b_actions:
            statements.append({"Sid": "PartnerUse", "Effect": "Allow",
                               "Principal": {"AWS": f"arn:aws:iam::{self.b}:root"}, "Action": b_actions,
                               "Resource": "*"})
        self.a_kms.put_key_policy(KeyId=self.key_arn, PolicyName="default", Policy=policy(*statements))

    def read(self, sm=None, secret_id: str | None = None) -> str:
        return (sm or self.reader_sm).get_secret_value(SecretId=secret_id or self.secret_arn)["SecretString"]


@pytest.fixture
def world(coffer: Endpoint, second_account: Account) -> World:
    b = second_account.endpoint
    b_iam = client(b, "iam")
    reader_name = "reader-" + uuid.uuid4().hex[:10]
    b_iam.create_user(UserName=reader_name)
    key = b_iam.create_access_key(UserName=reader_name)["AccessKey"]
    creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    a_sm, a_kms = client(coffer, "secretsmanager"), client(coffer, "kms")
    key_arn = a_kms.create_key(Description="shared with B")["KeyMetadata"]["Arn"]
    name = unique_name("shared")
    value = f"value-{uuid.uuid4()}"
    secret_arn = a_sm.create_secret(Name=name, SecretString=value, KmsKeyId=key_arn)["ARN"]
    w = World(
        a=coffer.account, b=second_account.account, region=coffer.region, a_sm=a_sm, a_kms=a_kms,
        b_sm=client(b, "secretsmanager"), b_iam=b_iam, b_root_arn=f"arn:aws:iam::{second_account.account}:root",
        reader_name=reader_name, reader_arn=f"arn:aws:iam::{second_account.account}:user/{reader_name}",
        reader_sm=client(b, "secretsmanager", **creds),
        reader_sm_elsewhere=client(b, "secretsmanager", region="eu-west-1", **creds),
        key_arn=key_arn, name=name, value=value, secret_arn=secret_arn,
    )
    w.set_key_policy(["kms:Decrypt", "kms:GenerateDataKey"])
    return w


def test_three_layers_allow_and_each_one_removed_denies(world: World):
    w = world
    w.share_with(w.reader_arn)
    w.allow_reader([GET], ["kms:Decrypt"])
    assert w.read() == w.value

    # 1. A's resource policy.
    w.unshare()
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, GET, w.secret_arn)):
        w.read()
    w.share_with(w.reader_arn)
    assert w.read() == w.value

    # 2. B's identity policy: on the secret, then on the key.
    w.allow_reader([], ["kms:Decrypt"])
    with raises_aws("AccessDeniedException", no_identity_policy(w.reader_arn, GET, w.secret_arn)):
        w.read()
    w.allow_reader([GET], [])
    with raises_aws("AccessDeniedException", KMS_DENIED):
        w.read()
    w.allow_reader([GET], ["kms:Decrypt"])
    assert w.read() == w.value

    # 3. A's key policy.
    w.set_key_policy([])
    with raises_aws("AccessDeniedException", KMS_DENIED):
        w.read()
    w.set_key_policy(["kms:Decrypt"])
    assert w.read() == w.value

    # An explicit deny in A's resource policy wins over every allow.
    w.a_sm.put_resource_policy(
        SecretId=w.secret_arn,
        ResourcePolicy=policy(
            {"Effect": "Allow", "Principal": {"AWS": w.reader_arn}, "Action": GET, "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": w.reader_arn}, "Action": GET, "Resource": "*"},
        ),
    )
    with raises_aws(
        "AccessDeniedException",
        f"User: {w.reader_arn} is not authorized to perform: {GET} on resource: {w.secret_arn} "
        "with an explicit deny in a resource-based policy",
    ):
        w.read()


def test_a_grant_to_account_b_delegates_to_b_identity_policies(world: World):
    w = world
    w.share_with(w.b_root_arn)
    with raises_aws("AccessDeniedException", no_identity_policy(w.reader_arn, GET, w.secret_arn)):
        w.read()
    w.allow_reader([GET], ["kms:Decrypt"])
    assert w.read() == w.value


def test_b_root_also_needs_the_resource_policy(world: World):
    w = world
    with raises_aws("AccessDeniedException", no_resource_policy(w.b_root_arn, GET, w.secret_arn)):
        w.read(w.b_sm)
    w.share_with(w.b_root_arn)
    assert w.read(w.b_sm) == w.value
    w.set_key_policy([])
    with raises_aws("AccessDeniedException", KMS_DENIED):
        w.read(w.b_sm)


def test_the_default_key_is_not_usable_across_accounts(world: World):
    w = world
    arn = w.a_sm.create_secret(Name=unique_name("default-key"), SecretString="under aws/secretsmanager")["ARN"]
    w.share_with(w.reader_arn, ["secretsmanager:*"], secret_arn=arn)
    w.allow_reader(["secretsmanager:*"], ["kms:*"])
    # The metadata is shared, the value is not.
    assert w.reader_sm.describe_secret(SecretId=arn)["ARN"] == arn
    with raises_aws("InvalidRequestException", DEFAULT_KEY_ERROR):
        w.read(secret_id=arn)
    with raises_aws("InvalidRequestException", DEFAULT_KEY_ERROR):
        w.reader_sm.put_secret_value(SecretId=arn, SecretString="from B")
    assert w.read(w.a_sm, arn) == "under aws/secretsmanager"


def test_missing_and_refused_secrets_look_alike(world: World):
    w = world
    w.allow_reader([GET], ["kms:Decrypt"])
    missing = f"arn:aws:secretsmanager:{w.region}:{w.a}:secret:no/such-AbCdEf"
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, GET, w.secret_arn)):
        w.read()
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, GET, missing)):
        w.read(secret_id=missing)
    with raises_aws("AccessDeniedException", no_resource_policy(w.b_root_arn, "secretsmanager:DeleteSecret", missing)):
        w.b_sm.delete_secret(SecretId=missing, ForceDeleteWithoutRecovery=True)
    # Shared: the full ARN reaches it; a partial ARN of another account names nothing, and a name is B's own.
    w.share_with(w.reader_arn)
    assert w.read() == w.value
    partial = f"arn:aws:secretsmanager:{w.region}:{w.a}:secret:{w.name}"
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, GET, partial)):
        w.read(secret_id=partial)
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        w.b_sm.get_secret_value(SecretId=w.name)
    # Malformed ids get the validation error whichever account they name.
    with raises_aws("ValidationException"):
        w.read(secret_id=w.secret_arn + "!")


def test_secrets_are_regional_across_accounts_too(world: World, coffer: Endpoint):
    w = world
    w.share_with(w.reader_arn)
    w.allow_reader([GET], ["kms:Decrypt"])
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, GET, w.secret_arn)):
        w.reader_sm_elsewhere.get_secret_value(SecretId=w.secret_arn)
    a_elsewhere = client(coffer, "secretsmanager", region="eu-west-1")
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        a_elsewhere.get_secret_value(SecretId=w.secret_arn)


def test_operations_by_secret_id_across_accounts(world: World):
    w = world
    w.allow_reader(["secretsmanager:*"], ["kms:Decrypt", "kms:GenerateDataKey"])
    w.b_iam.put_user_policy(
        UserName=w.reader_name, PolicyName="account-wide",
        PolicyDocument=policy({"Effect": "Allow", "Resource": "*",
                               "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"]}),
    )
    sm, arn = w.reader_sm, w.secret_arn
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, "secretsmanager:DescribeSecret", arn)):
        sm.describe_secret(SecretId=arn)
    with raises_aws("AccessDeniedException", no_resource_policy(w.reader_arn, "secretsmanager:TagResource", arn)):
        sm.tag_resource(SecretId=arn, Tags=[{"Key": "team", "Value": "b"}])

    w.share_with(w.reader_arn, ["secretsmanager:*"])
    assert sm.describe_secret(SecretId=arn)["ARN"] == arn
    assert json.loads(sm.get_resource_policy(SecretId=arn)["ResourcePolicy"])["Statement"][0]["Action"] == \
        ["secretsmanager:*"]
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "team", "Value": "b"}])
    assert w.a_sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "team", "Value": "b"}]
    sm.untag_resource(SecretId=arn, TagKeys=["team"])
    assert not w.a_sm.describe_secret(SecretId=arn).get("Tags")

    put = sm.put_secret_value(SecretId=arn, SecretString="from B")
    assert put["ARN"] == arn
    assert w.read(w.a_sm) == "from B"
    versions = sm.list_secret_version_ids(SecretId=arn)["Versions"]
    assert len(versions) == 2
    previous = next(v["VersionId"] for v in versions if "AWSPREVIOUS" in v["VersionStages"])
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", RemoveFromVersionId=put["VersionId"],
                                   MoveToVersionId=previous)
    assert w.read() == w.value
    sm.update_secret(SecretId=arn, Description="edited by B")
    assert w.a_sm.describe_secret(SecretId=arn)["Description"] == "edited by B"

    batch = sm.batch_get_secret_value(SecretIdList=[arn, arn[:-1] + ("x" if arn[-1] != "x" else "y")])
    assert [v["ARN"] for v in batch["SecretValues"]] == [arn]
    assert [e["ErrorCode"] for e in batch["Errors"]] == ["AccessDeniedException"]

    # ListSecrets stays in the caller's account.
    assert arn not in [s["ARN"] for s in sm.list_secrets()["SecretList"]]

    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    assert "DeletedDate" in w.a_sm.describe_secret(SecretId=arn)
    sm.restore_secret(SecretId=arn)
    assert "DeletedDate" not in w.a_sm.describe_secret(SecretId=arn)


def test_account_cli_create_and_list(coffer: Endpoint, second_account: Account, new_account):
    account_id = "9" + str(uuid.uuid4().int)[:11]
    made = new_account(account_id)
    assert made.account == account_id
    assert made.access_key.startswith("AKIA") and len(made.secret_key) == 40
    # The new root credentials work at once, in their own account.
    assert client(made.endpoint, "iam").list_users()["Users"] == []

    listed = run_coffer("account", "list", "--output", "json", data_dir=coffer.data_dir).json
    ids = [a["account_id"] for a in listed["accounts"]]
    assert {coffer.account, second_account.account, account_id} <= set(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["created"]) for a in listed["accounts"])

    table = run_coffer("account", "list", data_dir=coffer.data_dir).stdout.splitlines()
    assert table[0].split() == ["ACCOUNT", "ID", "CREATED"]
    assert any(line.startswith(account_id + " ") for line in table[1:])

    text = run_coffer("account", "create", data_dir=coffer.data_dir).stdout
    assert "shown only this once" in text
    key_line = next(line for line in text.splitlines() if line.startswith("export AWS_ACCESS_KEY_ID="))
    assert re.fullmatch(r"export AWS_ACCESS_KEY_ID=AKIA[A-Z0-9]{16}", key_line)
    assert re.search(r"^export AWS_SECRET_ACCESS_KEY=\S{40}$", text, re.M)

    again = run_coffer("account", "create", "--account-id", account_id, data_dir=coffer.data_dir, check=False)
    assert again.code == 1 and f"account {account_id} already exists" in again.stderr, again
    bad = run_coffer("account", "create", "--account-id", "12345", data_dir=coffer.data_dir, check=False)
    assert bad.code == 2 and "12 digits" in bad.stderr, bad
    listed_again = run_coffer("account", "list", "--output", "json", data_dir=coffer.data_dir).json
    assert len(listed_again["accounts"]) == len(ids) + 1
