"""A generic rotation function in the shape of AWS's Secrets Manager rotation template.

It rotates the ``password`` field of a JSON secret such as
``{"username": "app", "password": "...", "host": "..."}``: every other field is carried over
unchanged. Run it under coffer with ``aws_lambda_glue.py`` (it is equally a valid AWS
Lambda rotation function). boto3 reads coffer's endpoint, the region and the temporary
credentials from the environment coffer sets.

The four steps, each safe to run again (coffer, like Secrets Manager, retries a failed
rotation from the step that failed):

createSecret  Generate a new password with GetRandomPassword and store the new value as the
              version ``ClientRequestToken`` with the label AWSPENDING (unless it exists).
setSecret     Set the new password in the service the secret is for. This sample has no
              service: replace ``set_secret`` with the call that changes the password.
testSecret    Check that the new password works in the service. Here it only checks that
              the pending value is well formed: replace ``test_secret`` with a login.
finishSecret  Move AWSCURRENT to the new version (AWSPREVIOUS follows the old one) and take
              AWSPENDING off it.

Environment: EXCLUDE_CHARACTERS (characters the password must not contain, default
``/@"'\\``), PASSWORD_LENGTH (default 32).
"""

import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


def lambda_handler(event, context):
    """Run one rotation step for the secret and version named in ``event``.

    Raises:
        ValueError: the secret is not set up for rotation, or the version is not staged
            for this rotation, or the step is unknown.
        KeyError: the event lacks SecretId, ClientRequestToken or Step.
    """
    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]

    # Endpoint, region and credentials come from the environment (coffer sets them).
    client = boto3.client("secretsmanager")

    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise ValueError(f"secret {arn} does not have rotation enabled")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise ValueError(f"secret {arn} has no version {token} to rotate to")
    if CURRENT in stages[token]:
        logger.info("version %s of %s is already AWSCURRENT: nothing to do", token, arn)
        return
    if PENDING not in stages[token]:
        raise ValueError(f"version {token} of secret {arn} is not staged AWSPENDING")

    steps = {
        "createSecret": create_secret,
        "setSecret": set_secret,
        "testSecret": test_secret,
        "finishSecret": finish_secret,
    }
    if step not in steps:
        raise ValueError(f"unknown rotation step {step!r}")
    steps[step](client, arn, token)


def create_secret(client, arn, token):
    """Store a new value with a fresh password as the AWSPENDING version ``token``."""
    current = json.loads(
        client.get_secret_value(SecretId=arn, VersionStage=CURRENT)["SecretString"]
    )
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        logger.info("createSecret: version %s of %s exists already", token, arn)
        return
    except client.exceptions.ResourceNotFoundException:
        pass

    password = client.get_random_password(
        PasswordLength=int(os.environ.get("PASSWORD_LENGTH", "32")),
        ExcludeCharacters=os.environ.get("EXCLUDE_CHARACTERS", "/@\"'\\"),
    )["RandomPassword"]
    pending = dict(current, password=password)
    client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps(pending),
        VersionStages=[PENDING],
    )
    logger.info("createSecret: stored version %s of %s as AWSPENDING", token, arn)


def set_secret(client, arn, token):
    """Set the AWSPENDING password in the service (a database user, an API key...)."""
    pending = pending_value(client, arn, token)
    # Replace this with the call that changes the password in your service, using the
    # current credentials (or an admin secret) to log in, e.g.
    #   ALTER USER {pending["username"]} WITH PASSWORD {pending["password"]}
    logger.warning(
        "setSecret: the sample sets no password anywhere (user %s); edit set_secret",
        pending.get("username", "?"),
    )


def test_secret(client, arn, token):
    """Check that the AWSPENDING password works in the service."""
    pending = pending_value(client, arn, token)
    if not isinstance(pending.get("password"), str) or not pending["password"]:
        raise ValueError(f"version {token} of {arn} has no password")
    # Replace this with a login to your service using pending["password"].
    logger.info("testSecret: version %s of %s is well formed", token, arn)


def finish_secret(client, arn, token):
    """Make version ``token`` AWSCURRENT and take AWSPENDING off it."""
    metadata = client.describe_secret(SecretId=arn)
    current_version = None
    for version, stages in metadata["VersionIdsToStages"].items():
        if CURRENT in stages:
            if version == token:
                logger.info("finishSecret: version %s of %s is already AWSCURRENT", token, arn)
                return
            current_version = version
            break

    move = {"SecretId": arn, "VersionStage": CURRENT, "MoveToVersionId": token}
    if current_version is not None:
        move["RemoveFromVersionId"] = current_version
    client.update_secret_version_stage(**move)
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token
    )
    logger.info("finishSecret: version %s of %s is now AWSCURRENT", token, arn)


def pending_value(client, arn, token):
    """The AWSPENDING value of version ``token``, parsed."""
    response = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
    return json.loads(response["SecretString"])
