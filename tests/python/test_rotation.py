"""Rotation through boto3 against a manual-clock server: RotateSecret / CancelRotateSecret with AWS's shapes and
errors, an AWS-template-shaped Python rotation function run as a local executable, a webhook rotator that calls back
with its scoped credentials, schedules driven by the manual clock, failures that leave AWSCURRENT alone and a retry
that completes them, and a hanging webhook cut by its timeout.

`/_coffer/tasks/run` (admin.run_tasks) runs the rotations that are due and waits for them, so no test sleeps for the
scheduler."""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import REPO_ROOT, run_coffer
from support import raises_aws, unique_name

GLUE = REPO_ROOT / "examples" / "rotation" / "aws_lambda_glue.py"
TEMPLATE = REPO_ROOT / "examples" / "rotation" / "template_rotation.py"
NO_FUNCTION = "No Lambda rotation function ARN is associated with this secret."
UNFINISHED = "A previous rotation isn't complete. That rotation will be continued."
DAY = 86_400


@pytest.fixture(scope="module")
def sm(coffer_clock):
    if coffer_clock.data_dir is None:
        pytest.skip("needs coffer's dev data directory")
    return boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=coffer_clock.url,
        region_name=coffer_clock.region,
        aws_access_key_id=coffer_clock.access_key,
        aws_secret_access_key=coffer_clock.secret_key,
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def function_arn(endpoint, name: str) -> str:
    return f"arn:aws:lambda:{endpoint.region}:{endpoint.account}:function:{name}"


def register(endpoint, name: str, *how: str) -> str:
    arn = function_arn(endpoint, f"{name}-{uuid.uuid4().hex[:8]}")
    run_coffer("rotation", "function", "register", "--arn", arn, *how, data_dir=endpoint.data_dir)
    return arn


def python_function(endpoint, tmp_path: Path, fail_flag: Path | None = None) -> str:
    """The AWS-shaped template through the glue; while `fail_flag` exists it fails at the step the file names
    (setSecret when it names none)."""
    if fail_flag is None:
        return register(
            endpoint, "template", "--executable", sys.executable, "--arg", str(GLUE), "--arg", str(TEMPLATE), "--timeout", "60"
        )
    wrapper = tmp_path / "flaky_rotation.py"
    wrapper.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(TEMPLATE.parent)!r})\n"
        "import template_rotation as t\n"
        "def lambda_handler(event, context):\n"
        f"    flag = {str(fail_flag)!r}\n"
        "    if os.path.exists(flag) and event['Step'] == (open(flag).read().strip() or 'setSecret'):\n"
        "        raise RuntimeError('the database refused the new password (test)')\n"
        "    return t.lambda_handler(event, context)\n"
    )
    return register(
        endpoint, "flaky", "--executable", sys.executable, "--arg", str(GLUE), "--arg", str(wrapper), "--timeout", "60"
    )


def stages(sm, arn) -> dict:
    return sm.describe_secret(SecretId=arn)["VersionIdsToStages"]


def value(sm, arn, **kwargs) -> dict:
    return json.loads(sm.get_secret_value(SecretId=arn, **kwargs)["SecretString"])


def status(endpoint, arn) -> dict:
    return run_coffer("rotation", "status", arn, "--output", "json", data_dir=endpoint.data_dir).json["secret"]


def test_rotate_needs_a_registered_function(sm, coffer_clock):
    arn = sm.create_secret(Name=unique_name("rot"), SecretString="{}")["ARN"]
    with raises_aws("InvalidRequestException", NO_FUNCTION):
        sm.rotate_secret(SecretId=arn)
    with raises_aws("AccessDeniedException", match="^Secrets Manager cannot invoke the specified Lambda function"):
        sm.rotate_secret(SecretId=arn, RotationLambdaARN=function_arn(coffer_clock, "nobody-registered-this"))
    with raises_aws("InvalidParameterException", match="both"):
        sm.rotate_secret(
            SecretId=arn,
            RotationLambdaARN=function_arn(coffer_clock, "x"),
            RotationRules={"AutomaticallyAfterDays": 3, "ScheduleExpression": "rate(3 days)"},
        )
    with raises_aws("ResourceNotFoundException"):
        sm.rotate_secret(SecretId=unique_name("missing"), RotationLambdaARN=function_arn(coffer_clock, "x"))
    assert "RotationEnabled" not in sm.describe_secret(SecretId=arn)


def test_python_template_rotates_through_an_executable(sm, coffer_clock, admin, tmp_path):
    fn = python_function(coffer_clock, tmp_path)
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"username": "app", "password": "old"}))["ARN"]
    first = sm.list_secret_version_ids(SecretId=arn)["Versions"][0]["VersionId"]
    out = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn, RotationRules={"AutomaticallyAfterDays": 30})
    token = out["VersionId"]
    assert out["ARN"] == arn
    # Before the run, as in AWS: a version with the token labelled AWSPENDING and no value yet.
    assert stages(sm, arn)[token] == ["AWSPENDING"]
    with raises_aws("ResourceNotFoundException"):
        sm.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")
    assert admin.run_tasks() >= 0
    after = value(sm, arn)
    assert after["username"] == "app" and after["password"] != "old" and len(after["password"]) == 32
    assert stages(sm, arn) == {token: ["AWSCURRENT"], first: ["AWSPREVIOUS"]}
    assert value(sm, arn, VersionStage="AWSPREVIOUS")["password"] == "old"
    d = sm.describe_secret(SecretId=arn)
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == fn
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert d["NextRotationDate"] > d["LastRotatedDate"]
    st = status(coffer_clock, arn)
    assert st["run"] is None
    assert st["last_run"]["outcome"] == "succeeded"
    assert [e["event"] for e in st["events"]][-1] == "RotationSucceeded"


def test_a_schedule_fires_by_the_clock(sm, coffer_clock, admin, tmp_path):
    fn = python_function(coffer_clock, tmp_path)
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "v1"}))["ARN"]
    out = sm.rotate_secret(
        SecretId=arn, RotationLambdaARN=fn, RotationRules={"ScheduleExpression": "rate(2 days)"}, RotateImmediately=False
    )
    assert "VersionId" not in out
    d = sm.describe_secret(SecretId=arn)
    assert d["RotationEnabled"] is True and "LastRotatedDate" not in d and "NextRotationDate" in d
    admin.run_tasks()
    assert value(sm, arn)["password"] == "v1"
    admin.advance(3 * DAY)
    admin.run_tasks()
    assert value(sm, arn)["password"] != "v1"
    assert "LastRotatedDate" in sm.describe_secret(SecretId=arn)


@pytest.mark.parametrize("failing", ["createSecret", "setSecret", "testSecret", "finishSecret"])
def test_a_failing_step_keeps_awscurrent_and_a_retry_finishes(sm, coffer_clock, admin, tmp_path, failing):
    flag = tmp_path / "fail"
    flag.write_text(failing)
    fn = python_function(coffer_clock, tmp_path, fail_flag=flag)
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "stable"}))["ARN"]
    token = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn)["VersionId"]
    admin.run_tasks()
    # AWSCURRENT is untouched and readable; the new version waits as AWSPENDING.
    assert value(sm, arn)["password"] == "stable"
    assert stages(sm, arn)[token] == ["AWSPENDING"]
    run = status(coffer_clock, arn)["run"]
    assert run["token"] == token and run["attempts"] == 1
    steps = {s["step"]: s for s in run["steps"]}
    order = ["createSecret", "setSecret", "testSecret", "finishSecret"]
    for done in order[: order.index(failing)]:
        assert steps[done]["ok"] is True
    assert steps[failing]["ok"] is False and "refused the new password" in steps[failing]["error"]
    # Asking again continues the same rotation instead of starting another.
    with raises_aws("InvalidRequestException", UNFINISHED):
        sm.rotate_secret(SecretId=arn)
    flag.unlink()
    run_coffer("rotation", "retry", arn, data_dir=coffer_clock.data_dir)
    admin.run_tasks()
    assert stages(sm, arn)[token] == ["AWSCURRENT"]
    assert value(sm, arn)["password"] != "stable"


def test_cancel_leaves_the_pending_version(sm, coffer_clock, admin, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("testSecret")
    fn = python_function(coffer_clock, tmp_path, fail_flag=flag)
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "p"}))["ARN"]
    token = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn, RotationRules={"AutomaticallyAfterDays": 7})["VersionId"]
    admin.run_tasks()
    out = sm.cancel_rotate_secret(SecretId=arn)
    assert out["ARN"] == arn and out["VersionId"] == token
    d = sm.describe_secret(SecretId=arn)
    assert d["RotationEnabled"] is False and "NextRotationDate" not in d
    assert "AWSPENDING" in d["VersionIdsToStages"][token]
    assert value(sm, arn)["password"] == "p"
    events = [e["event"] for e in status(coffer_clock, arn)["events"]]
    assert "RotationAbandoned" in events


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook rotation function: runs the template's steps with the credentials coffer sends in headers."""

    behaviour = "rotate"
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((body, dict(self.headers)))
        if type(self).behaviour == "hang":
            time.sleep(5)
            return
        client = boto3.session.Session().client(
            "secretsmanager",
            endpoint_url=self.headers["X-Coffer-Endpoint"],
            region_name=self.headers["X-Coffer-Region"],
            aws_access_key_id=self.headers["X-Coffer-Access-Key-Id"],
            aws_secret_access_key=self.headers["X-Coffer-Secret-Access-Key"],
            aws_session_token=self.headers["X-Coffer-Session-Token"],
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        sys.path.insert(0, str(TEMPLATE.parent))
        import template_rotation  # noqa: PLC0415

        try:
            steps = {
                "createSecret": template_rotation.create_secret,
                "setSecret": template_rotation.set_secret,
                "testSecret": template_rotation.test_secret,
                "finishSecret": template_rotation.finish_secret,
            }
            steps[body["Step"]](client, body["SecretId"], body["ClientRequestToken"])
            # The credentials reach this secret only.
            try:
                client.list_secrets()
                type(self).seen.append(("list_secrets", "allowed"))
            except client.exceptions.ClientError as e:
                type(self).seen.append(("list_secrets", e.response["Error"]["Code"]))
            self.send_response(200)
        except Exception as e:  # noqa: BLE001
            self.send_response(500)
            self.end_headers()
            self.wfile.write(str(e).encode())
            return
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.seen = []
    _Hook.behaviour = "rotate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/rotate"
    server.shutdown()


def test_a_webhook_rotates_with_scoped_credentials(sm, coffer_clock, admin, webhook):
    _, url = webhook
    fn = register(coffer_clock, "hook", "--webhook", url, "--timeout", "20")
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "w"}))["ARN"]
    token = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn)["VersionId"]
    admin.run_tasks()
    events = [b for b, _ in _Hook.seen if isinstance(b, dict)]
    assert [e["Step"] for e in events] == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert all(set(e) == {"Step", "SecretId", "ClientRequestToken", "RotationToken"} for e in events)
    assert all(e["SecretId"] == arn and e["ClientRequestToken"] == token for e in events)
    headers = [h for b, h in _Hook.seen if isinstance(b, dict)][0]
    assert headers["X-Coffer-Access-Key-Id"].startswith("ASIA")
    assert ("list_secrets", "AccessDeniedException") in _Hook.seen
    assert stages(sm, arn)[token] == ["AWSCURRENT"]
    assert value(sm, arn)["password"] != "w"


def test_a_hanging_webhook_is_timed_out(sm, coffer_clock, admin, webhook):
    _, url = webhook
    _Hook.behaviour = "hang"
    fn = register(coffer_clock, "slow", "--webhook", url, "--timeout", "1")
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "h"}))["ARN"]
    sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn)
    started = time.monotonic()
    admin.run_tasks()
    assert time.monotonic() - started < 4
    run = status(coffer_clock, arn)["run"]
    create = [s for s in run["steps"] if s["step"] == "createSecret"][0]
    assert create["ok"] is False and "timeout" in create["error"].lower()
    assert value(sm, arn)["password"] == "h"


def test_awscurrent_never_moves_to_the_empty_pending_version(sm, coffer_clock, admin, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("createSecret")
    fn = python_function(coffer_clock, tmp_path, fail_flag=flag)
    arn = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "p"}))["ARN"]
    current = sm.list_secret_version_ids(SecretId=arn)["Versions"][0]["VersionId"]
    token = sm.rotate_secret(SecretId=arn, RotationLambdaARN=fn)["VersionId"]
    admin.run_tasks()
    assert stages(sm, arn)[token] == ["AWSPENDING"]
    with raises_aws("InvalidRequestException", match="has no secret value yet"):
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
    assert value(sm, arn)["password"] == "p"
    # A token naming an existing version is refused: a rotation makes a new version.
    other = sm.create_secret(Name=unique_name("rot"), SecretString=json.dumps({"password": "q"}))
    with raises_aws("InvalidRequestException", match="names an existing version"):
        sm.rotate_secret(SecretId=other["ARN"], RotationLambdaARN=fn, ClientRequestToken=other["VersionId"])
