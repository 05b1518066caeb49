#!/usr/bin/env python3
"""Run a Secrets Manager rotation function written for AWS Lambda as a coffer executable.

Register it with coffer as an executable rotation function:

    program: /path/to/.venv/bin/python   (any Python with boto3)
    args:    [/path/to/aws_lambda_glue.py, /path/to/lambda_function.py]

or, with a handler other than ``lambda_handler``, ``/path/to/module.py:handler`` (an
importable module name instead of a path works too: ``my_package.rotation:handler``).

coffer starts this script once per rotation step. It reads the rotation event (AWS's
``{"Step", "SecretId", "ClientRequestToken", "RotationToken"}``) from stdin, imports the
module, and calls ``handler(event, context)`` with a Lambda-like context. boto3 finds coffer
through the environment coffer sets: AWS_ENDPOINT_URL(_SECRETSMANAGER), AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (and SECRETS_MANAGER_ENDPOINT,
which AWS's own templates read), so ``boto3.client("secretsmanager")`` talks to coffer with
credentials scoped to the secret being rotated.

Exit status 0 when the handler returns; when it raises, the traceback goes to stderr (coffer
quotes its end in the rotation error) and the exit status is 1. Usage errors exit with 2.
The handler's log records (``logging``) go to stderr, as they would to CloudWatch.

Options (before the module): ``--timeout SECONDS`` is what
``context.get_remaining_time_in_millis()`` counts down from (default 60; set it to the
timeout registered with coffer).
"""

import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
import uuid

USAGE = "usage: aws_lambda_glue.py [--timeout SECONDS] MODULE_OR_PATH[:HANDLER]"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class LambdaContext:
    """The parts of Lambda's context object rotation functions use."""

    def __init__(self, function_name, timeout_seconds):
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:000000000000:function:{function_name}"
        )
        self.memory_limit_in_mb = "128"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/coffer/rotation/{function_name}"
        self.log_stream_name = self.aws_request_id
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def fail_usage(message):
    print(f"aws_lambda_glue: {message}\n{USAGE}", file=sys.stderr)
    sys.exit(2)


def load_handler(spec):
    """``path/to/module.py[:handler]`` or ``package.module[:handler]``."""
    target, _, handler_name = spec.partition(":")
    handler_name = handler_name or "lambda_handler"
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            fail_usage(f"no such module file: {path}")
        name = os.path.splitext(os.path.basename(path))[0]
        # Like Lambda's task root: the function's directory is importable (sibling modules).
        sys.path.insert(0, os.path.dirname(path))
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        name = target.rsplit(".", 1)[-1]
        module = importlib.import_module(target)
    handler = getattr(module, handler_name, None)
    if not callable(handler):
        fail_usage(f"{target} has no function {handler_name}")
    return name, handler


def main(argv):
    args = list(argv[1:])
    timeout = 60.0
    if len(args) >= 2 and args[0] == "--timeout":
        try:
            timeout = float(args[1])
        except ValueError:
            fail_usage(f"--timeout wants seconds, not {args[1]!r}")
        args = args[2:]
    if len(args) != 1:
        fail_usage("expected exactly one module")

    # Log records of the function (and of boto3 warnings) to stderr, as Lambda's runtime
    # sends them to CloudWatch; AWS's templates set the root logger's level themselves.
    logging.basicConfig(
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )

    try:
        event = json.load(sys.stdin)
    except ValueError as e:
        fail_usage(f"stdin is not the rotation event JSON: {e}")
    if not isinstance(event, dict) or event.get("Step") not in STEPS:
        fail_usage("stdin is not a rotation event (no known Step)")

    try:
        name, handler = load_handler(args[0])
        result = handler(event, LambdaContext(name, timeout))
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 -- any failure of the function fails the step
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        return 1
    if result is not None:
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
