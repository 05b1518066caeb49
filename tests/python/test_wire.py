"""The wire: JSON 1.1 framing, malformed input, and SigV4 authentication errors.

Requests here are built by hand (botocore's SigV4Auth + urllib3) because an SDK would never send them.
Every answer must be a 4xx AWS JSON error, never a 5xx.
"""

from datetime import timedelta

import pytest

from support import (
    MISSING_AUTH_TOKEN,
    NOT_FOUND,
    SIGNATURE_EXPIRED_RE,
    SIGNATURE_MISMATCH_PREFIX,
    UNRECOGNIZED_CLIENT,
    make_client_for,
    null_member,
    raises_aws,
    unique_name,
    utcnow,
)


def assert_json_error(resp, code, message=None, status=400):
    assert resp.status == status, f"status {resp.status}: {resp.body[:300]!r}"
    assert resp.headers.get("content-type", "").startswith("application/x-amz-json-1.1"), resp.headers
    assert resp.headers.get("x-amzn-requestid"), "every response carries x-amzn-RequestId"
    assert resp.error_code == code, f"expected {code}, got {resp.error_code}: {resp.body[:300]!r}"
    if message is not None:
        assert resp.error_message == message, resp.error_message


# ---------------------------------------------------------------- JSON 1.1 framing


def test_a_well_formed_raw_request_works(raw, secret):
    resp = raw.call("GetSecretValue", {"SecretId": secret["Name"]})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("application/x-amz-json-1.1")
    assert resp.headers.get("x-amzn-requestid")
    body = resp.json
    assert body["SecretString"] == secret["Value"]
    assert isinstance(body["CreatedDate"], (int, float)), "timestamps are epoch seconds on the JSON protocol"


def test_secret_binary_is_base64_on_the_wire(raw, sm, name):
    sm.create_secret(Name=name, SecretBinary=b"\x00\x01binary\xff")
    body = raw.call("GetSecretValue", {"SecretId": name}).json
    assert body["SecretBinary"] == "AAFiaW5hcnn/"


def test_raw_request_errors_have_the_json_error_shape(raw):
    resp = raw.call("DescribeSecret", {"SecretId": unique_name("missing")})
    assert_json_error(resp, "ResourceNotFoundException", NOT_FOUND)
    assert resp.json["__type"].endswith("ResourceNotFoundException")


def test_unknown_operation(raw):
    # AWS JSON services answer an unknown X-Amz-Target with 400 UnknownOperationException (aws-sdk-net#1536).
    assert_json_error(raw.call("FrobnicateSecret", {}), "UnknownOperationException")


def test_target_of_another_service(raw):
    assert_json_error(raw.request("DynamoDB_20120810.ListTables", {}), "UnknownOperationException")


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json at all", b'{"SecretId": "x",}', b"\xff\xfe\x00", b"[]", b'"just a string"'],
    ids=["truncated", "text", "trailing-comma", "not-utf8", "array", "string"],
)
def test_malformed_body(raw, body):
    # Coral-based JSON services answer undecodable bodies with SerializationException. Code only.
    assert_json_error(raw.call("DescribeSecret", body), "SerializationException")


@pytest.mark.parametrize(
    "operation, body",
    [
        ("DescribeSecret", {"SecretId": 123}),
        ("DescribeSecret", {"SecretId": ["a", "b"]}),
        ("DescribeSecret", {"SecretId": {"nested": True}}),
        ("ListSecrets", {"MaxResults": "ten"}),
        ("ListSecrets", {"Filters": "name"}),
        ("DeleteSecret", {"SecretId": "x", "ForceDeleteWithoutRecovery": "yes"}),
        ("ListSecrets", {"Filters": {"Key": "name", "Values": ["x"]}}),
    ],
    ids=["number-for-string", "list-for-string", "object-for-string", "string-for-int", "string-for-list",
         "string-for-bool", "object-for-list"],
)
def test_wrong_member_types(raw, operation, body):
    # Code only: SerializationException is what Coral JSON services answer for type mismatches.
    assert_json_error(raw.call(operation, body), "SerializationException")


@pytest.mark.parametrize(
    "operation, member",
    [
        ("DescribeSecret", "secretId"),
        ("GetSecretValue", "secretId"),
        ("DeleteSecret", "secretId"),
        ("CreateSecret", "name"),
        ("TagResource", "secretId"),
    ],
)
def test_missing_required_member(raw, operation, member):
    # Message quoted from a real AWS answer in aws-sdk-kotlin#1469.
    assert_json_error(raw.call(operation, {}), "ValidationException", null_member(member))


def test_unknown_members_are_ignored(raw, secret):
    resp = raw.call("GetSecretValue", {"SecretId": secret["Name"], "SomethingNew": 1})
    assert resp.status == 200, resp.body


def test_missing_client_request_token_on_raw_create(raw):
    # AWS-validated (LocalStack test_no_client_request_token): a raw request must carry its own token.
    resp = raw.call("CreateSecret", {"Name": unique_name("no-token"), "SecretString": "x"})
    assert_json_error(
        resp, "InvalidRequestException", "You must provide a ClientRequestToken value. We recommend a UUID-type value."
    )


@pytest.mark.parametrize(
    "body",
    [b"{" * 10000, b'{"SecretId": "' + b"x" * 2_000_000 + b'"}'],
    ids=["deep-nesting", "two-megabytes"],
)
def test_hostile_bodies_never_cause_5xx(raw, body):
    resp = raw.call("DescribeSecret", body)
    assert 400 <= resp.status < 500, f"status {resp.status}"


# ---------------------------------------------------------------- SigV4


def test_bad_signature(coffer):
    client = make_client_for(coffer, secret_key=coffer.secret_key[:-1] + ("A" if coffer.secret_key[-1] != "A" else "B"))
    with raises_aws("InvalidSignatureException", match="^" + SIGNATURE_MISMATCH_PREFIX.replace(".", r"\.")):
        client.list_secrets()


def test_unknown_access_key(coffer):
    client = make_client_for(coffer, access_key="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with raises_aws("UnrecognizedClientException", UNRECOGNIZED_CLIENT):
        client.list_secrets()


def test_test_test_keys_are_refused_by_default(coffer):
    with raises_aws("UnrecognizedClientException", UNRECOGNIZED_CLIENT):
        make_client_for(coffer, access_key="test", secret_key="test").list_secrets()


def test_no_authentication(raw):
    # 400 MissingAuthenticationTokenException on JSON 1.1 services (aws-sdk-cpp#2407 shows Secrets Manager's).
    assert_json_error(raw.call("ListSecrets", {}, sign=False), "MissingAuthenticationTokenException", MISSING_AUTH_TOKEN)


def test_signature_from_20_minutes_ago_has_expired(raw):
    resp = raw.call("ListSecrets", {}, at=utcnow() - timedelta(minutes=20))
    assert_json_error(resp, "InvalidSignatureException")
    assert SIGNATURE_EXPIRED_RE.match(resp.error_message), resp.error_message


def test_signature_from_the_future_is_refused(raw):
    resp = raw.call("ListSecrets", {}, at=utcnow() + timedelta(minutes=20))
    assert_json_error(resp, "InvalidSignatureException")


def test_signature_4_minutes_old_is_accepted(raw):
    assert raw.call("ListSecrets", {}, at=utcnow() - timedelta(minutes=4)).status == 200


def test_signature_scoped_to_another_service_is_refused(raw):
    resp = raw.call("ListSecrets", {}, service="kms")
    assert_json_error(resp, "InvalidSignatureException")
    assert resp.error_message.startswith("Credential should be scoped to correct service"), resp.error_message


def test_tampered_body_is_refused(raw):
    resp = raw.call("ListSecrets", b'{"MaxResults": 1}', send_body=b'{"MaxResults": 2}')
    assert_json_error(resp, "InvalidSignatureException")
    assert resp.error_message.startswith(SIGNATURE_MISMATCH_PREFIX), resp.error_message


def test_accept_any_credentials_mode(coffer_any_creds):
    client = make_client_for(coffer_any_creds, access_key="test", secret_key="test")
    secret_name = unique_name("any-creds")
    client.create_secret(Name=secret_name, SecretString="hello")
    assert client.get_secret_value(SecretId=secret_name)["SecretString"] == "hello"
    other = make_client_for(coffer_any_creds, access_key="AKIAANYTHING", secret_key="whatever")
    assert other.describe_secret(SecretId=secret_name)["Name"] == secret_name
