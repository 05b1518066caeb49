"""Virtual MFA devices in IAM through boto3 and the AWS CLI: CreateVirtualMFADevice (a real Base32 seed and a real PNG),
EnableMFADevice with two consecutive TOTP codes computed here from the seed and the server's manual clock, ResyncMFADevice,
DeactivateMFADevice, DeleteVirtualMFADevice, the listings and tags, and AWS's error codes, statuses and messages.

Where each message was confirmed: "MFADevice entity at the same path and name already exists." and "Authentication code
for device is not valid." are quoted from real AWS (a CloudTrail record and console errors in public posts); "Cannot delete
entity, must delete MFA device first." from real AWS answers in aws-cdk#16511 and ansible#27247. The other texts are those
of ctyun's OOS IAM, which reproduces AWS's messages (no AWS capture found).
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib

import boto3
import pytest
from botocore.config import Config

from support import current_step, raises_aws, totp

STEP_S = 30
ALREADY_EXISTS = "MFADevice entity at the same path and name already exists."
INVALID_CODES = "Authentication code for device is not valid."
IN_USE = "MFA Device is already in use."
NOT_USERS = "MFA Device invalid for user."
DEVICE_IN_USE = "MFA VirtualDevice in use. Must deactivate first."
USER_HAS_MFA = "Cannot delete entity, must delete MFA device first."


def no_such_device(serial: str) -> str:
    return f"VirtualMFADevice with serial number {serial} does not exist."


def iam_client(endpoint, *, validate: bool = True):
    config = Config(
        region_name=endpoint.region,
        retries={"mode": "standard", "max_attempts": 1},
        parameter_validation=validate,
    )
    return boto3.session.Session().client(
        "iam",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=config,
    )


@pytest.fixture(scope="session")
def iam(coffer_clock):
    """IAM on the manual-clock server, whose TOTP steps the tests compute."""
    return iam_client(coffer_clock)


@pytest.fixture(scope="session")
def iam_raw(coffer_clock):
    """The same without botocore's client-side validation, so the server's own validation answers."""
    return iam_client(coffer_clock, validate=False)


def png_size(png: bytes) -> tuple[int, int]:
    """Checks the PNG's chunks (CRC-32) and that its image data inflates to 1-bit grayscale rows; returns (w, h)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        chunks.append((kind, data))
        at += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (1, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + (width + 7) // 8)
    return width, height


@pytest.fixture
def user(iam):
    name = "mfa-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name)
    return name


@pytest.fixture
def device(iam):
    """A new device: (serial number, Base32 seed)."""
    created = iam.create_virtual_mfa_device(VirtualMFADeviceName="dev-" + uuid.uuid4().hex[:10])["VirtualMFADevice"]
    return created["SerialNumber"], created["Base32StringSeed"]


def enable(iam, admin, user: str, device) -> int:
    """Enables `device` for `user` with the codes of the previous and the current step; returns the current step."""
    serial, seed = device
    step = current_step(admin)
    iam.enable_mfa_device(
        UserName=user,
        SerialNumber=serial,
        AuthenticationCode1=totp(seed, step - 1),
        AuthenticationCode2=totp(seed, step),
    )
    return step


def test_create_returns_a_base32_seed_and_a_png(iam, coffer_clock):
    name = "phone-" + uuid.uuid4().hex[:8]
    created = iam.create_virtual_mfa_device(
        VirtualMFADeviceName=name, Path="/team/", Tags=[{"Key": "owner", "Value": "ops"}]
    )["VirtualMFADevice"]
    assert created["SerialNumber"] == f"arn:aws:iam::{coffer_clock.account}:mfa/team/{name}"
    seed = created["Base32StringSeed"]  # a Blob: botocore has decoded the base64 already
    assert len(seed) == 64 and len(base64.b32decode(seed)) == 40
    width, height = png_size(created["QRCodePNG"])
    assert width == height and width >= 21 * 5
    assert created["Tags"] == [{"Key": "owner", "Value": "ops"}]
    with raises_aws("EntityAlreadyExists", ALREADY_EXISTS, status=409):
        iam.create_virtual_mfa_device(VirtualMFADeviceName=name.upper(), Path="/team/")
    # The same name on another path is another device.
    iam.create_virtual_mfa_device(VirtualMFADeviceName=name)


@pytest.mark.parametrize(
    "params",
    [
        {"VirtualMFADeviceName": "has space"},
        {"VirtualMFADeviceName": "semi;colon"},
        {"VirtualMFADeviceName": "x" * 129},
        {"VirtualMFADeviceName": "ok", "Path": "no-slashes"},
    ],
)
def test_create_validates_its_input(iam_raw, params):
    with raises_aws("ValidationError"):
        iam_raw.create_virtual_mfa_device(**params)


def test_enable_list_and_deactivate(iam, admin, user, device, coffer_clock):
    serial, _ = device
    enable(iam, admin, user, device)
    listed = iam.list_mfa_devices(UserName=user)
    assert [(d["UserName"], d["SerialNumber"]) for d in listed["MFADevices"]] == [(user, serial)]
    assert listed["IsTruncated"] is False
    assigned = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    mine = [d for d in assigned if d["SerialNumber"] == serial]
    assert len(mine) == 1
    assert mine[0]["User"]["UserName"] == user
    assert mine[0]["User"]["Arn"] == f"arn:aws:iam::{coffer_clock.account}:user/{user}"
    assert "EnableDate" in mine[0]
    assert "Base32StringSeed" not in mine[0] and "QRCodePNG" not in mine[0]
    unassigned = iam.list_virtual_mfa_devices(AssignmentStatus="Unassigned")["VirtualMFADevices"]
    assert serial not in [d["SerialNumber"] for d in unassigned]

    with raises_aws("EntityAlreadyExists", IN_USE, status=409):
        enable(iam, admin, user, device)
    with raises_aws("DeleteConflict", DEVICE_IN_USE, status=409):
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    with raises_aws("DeleteConflict", USER_HAS_MFA, status=409):
        iam.delete_user(UserName=user)

    iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
    assert iam.list_mfa_devices(UserName=user)["MFADevices"] == []
    with raises_aws("NoSuchEntity", NOT_USERS, status=404):
        iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    with raises_aws("NoSuchEntity", no_such_device(serial), status=404):
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    iam.delete_user(UserName=user)


def test_enable_needs_two_consecutive_current_codes(iam, admin, user, device):
    serial, seed = device
    step = current_step(admin)
    wrong_pairs = [
        (step, step - 1),  # reversed
        (step - 1, step + 1),  # not consecutive
        (step - 3, step - 2),  # too old
        (step + 1, step + 2),  # too new
    ]
    for first, second in wrong_pairs:
        with raises_aws("InvalidAuthenticationCode", INVALID_CODES, status=403):
            iam.enable_mfa_device(
                UserName=user,
                SerialNumber=serial,
                AuthenticationCode1=totp(seed, first),
                AuthenticationCode2=totp(seed, second),
            )
    # Thirty seconds later the pair of the previous step and this one works.
    admin.advance(STEP_S)
    enable(iam, admin, user, device)


def test_enable_names_what_does_not_exist(iam, admin, user, device, coffer_clock):
    serial, seed = device
    step = current_step(admin)
    codes = {"AuthenticationCode1": totp(seed, step - 1), "AuthenticationCode2": totp(seed, step)}
    with raises_aws("NoSuchEntity", "The user with name nobody-mfa cannot be found.", status=404):
        iam.enable_mfa_device(UserName="nobody-mfa", SerialNumber=serial, **codes)
    missing = f"arn:aws:iam::{coffer_clock.account}:mfa/missing-{uuid.uuid4().hex[:8]}"
    with raises_aws("NoSuchEntity", no_such_device(missing), status=404):
        iam.enable_mfa_device(UserName=user, SerialNumber=missing, **codes)


@pytest.mark.parametrize(
    "code1,code2",
    [("12345", "123456"), ("123456", "1234567"), ("12345a", "123456")],
)
def test_malformed_codes_are_validation_errors(iam_raw, user, device, code1, code2):
    serial, _ = device
    with raises_aws("ValidationError"):
        iam_raw.enable_mfa_device(
            UserName=user, SerialNumber=serial, AuthenticationCode1=code1, AuthenticationCode2=code2
        )


def test_missing_members_are_validation_errors(iam_raw, user):
    with raises_aws(
        "ValidationError",
        "1 validation error detected: Value null at 'serialNumber' failed to satisfy constraint: "
        "Member must not be null",
    ):
        iam_raw.deactivate_mfa_device(UserName=user)
    with raises_aws("ValidationError"):
        iam_raw.delete_virtual_mfa_device(SerialNumber="bad serial number")
    with raises_aws("ValidationError"):
        iam_raw.list_virtual_mfa_devices(AssignmentStatus="Some")
    with raises_aws("ValidationError"):
        iam_raw.list_mfa_devices(UserName="")


def test_resync_finds_a_drifted_device(iam, admin, user, device):
    serial, seed = device
    enable(iam, admin, user, device)
    admin.advance(3 * STEP_S)
    ahead = current_step(admin) + 6  # the device's clock runs three minutes fast
    with raises_aws("InvalidAuthenticationCode", INVALID_CODES, status=403):
        iam.resync_mfa_device(
            UserName=user,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, ahead),
            AuthenticationCode2=totp(seed, ahead - 1),
        )
    iam.resync_mfa_device(
        UserName=user,
        SerialNumber=serial,
        AuthenticationCode1=totp(seed, ahead - 1),
        AuthenticationCode2=totp(seed, ahead),
    )
    # The codes of a resync are used up like any other.
    with raises_aws("InvalidAuthenticationCode", INVALID_CODES, status=403):
        iam.resync_mfa_device(
            UserName=user,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, ahead - 1),
            AuthenticationCode2=totp(seed, ahead),
        )
    other = "mfa-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=other)
    with raises_aws("NoSuchEntity", NOT_USERS, status=404):
        iam.resync_mfa_device(
            UserName=other,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, ahead + 1),
            AuthenticationCode2=totp(seed, ahead + 2),
        )


def test_list_virtual_mfa_devices_paginates(iam):
    prefix = "/page-" + uuid.uuid4().hex[:6] + "/"
    made = [
        iam.create_virtual_mfa_device(VirtualMFADeviceName=f"d{i}", Path=prefix)["VirtualMFADevice"]["SerialNumber"]
        for i in range(3)
    ]
    seen = []
    pages = iam.get_paginator("list_virtual_mfa_devices").paginate(
        AssignmentStatus="Unassigned", PaginationConfig={"PageSize": 2}
    )
    for page in pages:
        assert len(page["VirtualMFADevices"]) <= 2
        seen.extend(d["SerialNumber"] for d in page["VirtualMFADevices"])
    assert len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    # The listing returns no tags and no seeds ("this operation does not return tags").
    any_page = iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    assert all(set(d) <= {"SerialNumber", "User", "EnableDate"} for d in any_page)


def test_list_mfa_devices_of_the_caller_and_unknown_users(iam):
    # The root user (the caller here) has no MFA device in coffer.
    assert iam.list_mfa_devices()["MFADevices"] == []
    with raises_aws("NoSuchEntity", "The user with name nobody-mfa cannot be found.", status=404):
        iam.list_mfa_devices(UserName="nobody-mfa")


def test_device_tags(iam, device):
    serial, _ = device
    iam.tag_mfa_device(SerialNumber=serial, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    iam.tag_mfa_device(SerialNumber=serial, Tags=[{"Key": "A", "Value": "3"}])
    tags = iam.list_mfa_device_tags(SerialNumber=serial)
    assert tags["Tags"] == [{"Key": "A", "Value": "3"}, {"Key": "b", "Value": "2"}]
    assert tags["IsTruncated"] is False
    iam.untag_mfa_device(SerialNumber=serial, TagKeys=["a"])
    assert iam.list_mfa_device_tags(SerialNumber=serial)["Tags"] == [{"Key": "b", "Value": "2"}]
    missing = serial + "-missing"
    with raises_aws("NoSuchEntity", no_such_device(missing), status=404):
        iam.list_mfa_device_tags(SerialNumber=missing)


def test_aws_cli_writes_the_seed_and_the_qr_code(aws_cli, tmp_path):
    name = "cli-" + uuid.uuid4().hex[:8]
    png = tmp_path / "qr.png"
    out = aws_cli(
        "iam", "create-virtual-mfa-device", "--virtual-mfa-device-name", name,
        "--outfile", str(png), "--bootstrap-method", "QRCodePNG",
    ).json
    assert out["VirtualMFADevice"]["SerialNumber"].endswith(f":mfa/{name}")
    png_size(png.read_bytes())
    seed_file = tmp_path / "seed.txt"
    aws_cli(
        "iam", "create-virtual-mfa-device", "--virtual-mfa-device-name", name + "-b",
        "--outfile", str(seed_file), "--bootstrap-method", "Base32StringSeed",
    )
    assert len(base64.b32decode(seed_file.read_bytes())) == 40
    aws_cli("iam", "delete-virtual-mfa-device", "--serial-number", out["VirtualMFADevice"]["SerialNumber"])
