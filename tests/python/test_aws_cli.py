"""The AWS CLI (v1, from the venv) end to end: `aws --endpoint-url ... secretsmanager ...`."""

from support import arn_pattern, unique_name


def test_cli_lifecycle(aws_cli, coffer):
    name = unique_name("cli")

    created = aws_cli("secretsmanager", "create-secret", "--name", name, "--secret-string", '{"user":"app"}',
                      "--description", "from the CLI", "--tags", "Key=origin,Value=cli").json
    assert arn_pattern(coffer, name).match(created["ARN"]), created
    assert created["Name"] == name and created["VersionId"]

    got = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name).json
    assert got["SecretString"] == '{"user":"app"}'
    assert got["VersionStages"] == ["AWSCURRENT"]

    put = aws_cli("secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", "v2").json
    assert put["VersionStages"] == ["AWSCURRENT"]
    previous = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name, "--version-stage", "AWSPREVIOUS").json
    assert previous["VersionId"] == created["VersionId"]

    listed = aws_cli("secretsmanager", "list-secrets", "--filters", f"Key=name,Values={name}").json
    assert [s["Name"] for s in listed["SecretList"]] == [name]
    assert listed["SecretList"][0]["Tags"] == [{"Key": "origin", "Value": "cli"}]

    deleted = aws_cli("secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery").json
    assert deleted["Name"] == name and deleted["ARN"] == created["ARN"]

    gone = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name, check=False)
    assert gone.code != 0
    assert "ResourceNotFoundException" in gone.stderr
    assert "Secrets Manager can't find the specified secret." in gone.stderr


def test_cli_binary_secret_from_file(aws_cli, tmp_path):
    name = unique_name("cli-bin")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\x02binary\xff")
    aws_cli("secretsmanager", "create-secret", "--name", name, "--secret-binary", f"fileb://{blob}")
    got = aws_cli("secretsmanager", "get-secret-value", "--secret-id", name).json
    assert got["SecretBinary"] == "AAECYmluYXJ5/w=="  # the CLI prints blobs base64-encoded
    aws_cli("secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery")


def test_cli_error_exit_code_and_message(aws_cli):
    result = aws_cli("secretsmanager", "describe-secret", "--secret-id", unique_name("nope"), check=False)
    assert result.code != 0
    assert (
        "An error occurred (ResourceNotFoundException) when calling the DescribeSecret operation: "
        "Secrets Manager can't find the specified secret." in result.stderr
    )
    assert result.stdout == ""


def test_cli_get_random_password(aws_cli):
    out = aws_cli("secretsmanager", "get-random-password", "--password-length", "20", "--exclude-punctuation").json
    assert len(out["RandomPassword"]) == 20 and out["RandomPassword"].isalnum()
