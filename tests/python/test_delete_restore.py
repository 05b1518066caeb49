"""DeleteSecret (recovery window and forced), RestoreSecret, and the purge after the window (manual clock)."""

from datetime import timedelta

import pytest

from support import (
    MARKED_FOR_DELETION,
    NOT_FOUND,
    RECOVERY_WINDOW_RANGE,
    SCHEDULED_NAME,
    assert_about,
    fields,
    raises_aws,
    unique_name,
    utcnow,
)


def test_default_recovery_window_is_30_days(sm, secret):
    out = sm.delete_secret(SecretId=secret["Name"])
    assert fields(out) == {"ARN", "Name", "DeletionDate"}
    assert (out["ARN"], out["Name"]) == (secret["ARN"], secret["Name"])
    assert_about(out["DeletionDate"], utcnow() + timedelta(days=30))

    d = sm.describe_secret(SecretId=secret["Name"])
    assert "DeletedDate" in d
    # Whether DeletedDate is the request time or the purge time is not pinned down by AWS's docs; it lies between.
    assert utcnow() - timedelta(minutes=5) <= d["DeletedDate"] <= utcnow() + timedelta(days=30, minutes=5)


@pytest.mark.parametrize("days", [7, 18, 30])
def test_recovery_window_bounds(sm, secret, days):
    out = sm.delete_secret(SecretId=secret["Name"], RecoveryWindowInDays=days)
    assert_about(out["DeletionDate"], utcnow() + timedelta(days=days))


@pytest.mark.parametrize("days", [-1, 0, 1, 6, 31, 365])
def test_recovery_window_out_of_range(sm, secret, days):
    with raises_aws("InvalidParameterException", RECOVERY_WINDOW_RANGE):
        sm.delete_secret(SecretId=secret["Name"], RecoveryWindowInDays=days)
    assert "DeletedDate" not in sm.describe_secret(SecretId=secret["Name"])


def test_recovery_window_with_force_is_refused(sm, secret):
    # Code only: the wording "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
    # appears only in emulators.
    with raises_aws("InvalidParameterException"):
        sm.delete_secret(SecretId=secret["Name"], RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
    assert sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == secret["Value"]


def test_window_zero_with_force_reports_the_range(sm, secret):
    # Real AWS answer quoted in moto#6461 (Terraform's recovery_window_in_days = 0 sends exactly this).
    with raises_aws("InvalidParameterException", RECOVERY_WINDOW_RANGE):
        sm.delete_secret(SecretId=secret["Name"], RecoveryWindowInDays=0, ForceDeleteWithoutRecovery=True)


def test_force_delete_frees_the_name(sm, secret):
    out = sm.delete_secret(SecretId=secret["Name"], ForceDeleteWithoutRecovery=True)
    assert fields(out) == {"ARN", "Name", "DeletionDate"}
    assert out["ARN"] == secret["ARN"]
    assert_about(out["DeletionDate"], utcnow())

    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm.describe_secret(SecretId=secret["Name"])
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm.get_secret_value(SecretId=secret["ARN"])

    again = sm.create_secret(Name=secret["Name"], SecretString="reborn")
    assert again["ARN"] != secret["ARN"]  # a new secret: new random suffix
    assert sm.get_secret_value(SecretId=secret["Name"])["SecretString"] == "reborn"
    with raises_aws("ResourceNotFoundException"):
        sm.get_secret_value(SecretId=secret["ARN"])  # the old ARN does not find the new secret


def test_force_delete_of_an_unknown_secret_succeeds(sm):
    # Documented ("does not return ResourceNotFoundException") and AWS-validated by LocalStack.
    missing = unique_name("never-existed")
    out = sm.delete_secret(SecretId=missing, ForceDeleteWithoutRecovery=True)
    assert out["Name"] == missing
    assert out["ARN"]
    assert out["DeletionDate"]


def test_unknown_secret_without_force_is_not_found(sm):
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm.delete_secret(SecretId=unique_name("never-existed"))


@pytest.fixture
def scheduled(sm, secret):
    sm.delete_secret(SecretId=secret["Name"], RecoveryWindowInDays=7)
    return secret


@pytest.mark.parametrize(
    "operation",
    [
        ("get_secret_value", {}),
        ("put_secret_value", {"SecretString": "x"}),
        ("update_secret", {"Description": "d"}),
        ("update_secret", {"SecretString": "x"}),
    ],
    ids=["get_secret_value", "put_secret_value", "update_secret-description", "update_secret-value"],
)
def test_scheduled_secret_refuses_reads_and_changes(sm, scheduled, operation):
    method, extra = operation
    with raises_aws("InvalidRequestException", MARKED_FOR_DELETION):
        getattr(sm, method)(SecretId=scheduled["Name"], **extra)


@pytest.mark.parametrize(
    "operation",
    [("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}), ("untag_resource", {"TagKeys": ["k"]})],
    ids=lambda op: op[0],
)
def test_scheduled_secret_refuses_tagging(sm, scheduled, operation):
    # AWS-validated code (LocalStack test_tag_untag_resource_on_deleted_secret); message not captured.
    method, extra = operation
    with raises_aws("InvalidRequestException"):
        getattr(sm, method)(SecretId=scheduled["Name"], **extra)


def test_scheduled_secret_is_still_described(sm, scheduled):
    d = sm.describe_secret(SecretId=scheduled["Name"])
    assert d["ARN"] == scheduled["ARN"]
    assert "DeletedDate" in d
    assert d["VersionIdsToStages"] == {scheduled["VersionId"]: ["AWSCURRENT"]}


def test_scheduled_secret_hidden_from_list_unless_asked(sm, scheduled):
    only_this = [{"Key": "name", "Values": [scheduled["Name"]]}]
    assert sm.list_secrets(Filters=only_this)["SecretList"] == []
    (entry,) = sm.list_secrets(Filters=only_this, IncludePlannedDeletion=True)["SecretList"]
    assert entry["ARN"] == scheduled["ARN"]
    assert "DeletedDate" in entry


def test_scheduled_name_cannot_be_created_again(sm, scheduled):
    with raises_aws("InvalidRequestException", SCHEDULED_NAME):
        sm.create_secret(Name=scheduled["Name"], SecretString="again")


def test_deleting_again_is_refused(sm, scheduled):
    # Code only: AWS's message for this case is not captured anywhere we could find.
    with raises_aws("InvalidRequestException"):
        sm.delete_secret(SecretId=scheduled["Name"])
    with raises_aws("InvalidRequestException"):
        sm.delete_secret(SecretId=scheduled["Name"], RecoveryWindowInDays=30)


def test_scheduled_secret_can_be_force_deleted(sm, scheduled):
    # AWS-validated (LocalStack test_force_delete_deleted_secret).
    sm.delete_secret(SecretId=scheduled["Name"], ForceDeleteWithoutRecovery=True)
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm.describe_secret(SecretId=scheduled["Name"])


def test_restore_brings_everything_back(sm, scheduled):
    out = sm.restore_secret(SecretId=scheduled["Name"])
    assert fields(out) == {"ARN", "Name"}
    assert (out["ARN"], out["Name"]) == (scheduled["ARN"], scheduled["Name"])

    d = sm.describe_secret(SecretId=scheduled["Name"])
    assert "DeletedDate" not in d
    got = sm.get_secret_value(SecretId=scheduled["Name"])
    assert (got["SecretString"], got["VersionId"]) == (scheduled["Value"], scheduled["VersionId"])
    assert [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [scheduled["Name"]]}])["SecretList"]] == [
        scheduled["Name"]
    ]
    sm.put_secret_value(SecretId=scheduled["Name"], SecretString="writable again")


def test_restore_by_arn(sm, scheduled):
    sm.restore_secret(SecretId=scheduled["ARN"])
    assert sm.get_secret_value(SecretId=scheduled["ARN"])["SecretString"] == scheduled["Value"]


# ---------------------------------------------------------------- purge after the recovery window (manual clock)


def test_purge_after_the_recovery_window(sm_clock, admin):
    secret_name = unique_name("purge")
    keeper = unique_name("keeper")
    old = sm_clock.create_secret(Name=secret_name, SecretString="doomed")
    sm_clock.create_secret(Name=keeper, SecretString="stays")
    sm_clock.delete_secret(SecretId=secret_name, RecoveryWindowInDays=7)

    admin.advance(7 * 86400 - 60)
    admin.run_tasks()
    assert "DeletedDate" in sm_clock.describe_secret(SecretId=secret_name), "purged before the window ended"
    sm_clock.restore_secret(SecretId=secret_name)  # still recoverable a minute before the end
    sm_clock.delete_secret(SecretId=secret_name, RecoveryWindowInDays=7)

    admin.advance(7 * 86400 + 1)
    assert admin.run_tasks() >= 1
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm_clock.describe_secret(SecretId=secret_name)
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm_clock.get_secret_value(SecretId=old["ARN"])
    assert sm_clock.list_secrets(Filters=[{"Key": "name", "Values": [secret_name]}], IncludePlannedDeletion=True)[
        "SecretList"
    ] == []

    reborn = sm_clock.create_secret(Name=secret_name, SecretString="new life")
    assert reborn["ARN"] != old["ARN"]
    assert sm_clock.get_secret_value(SecretId=keeper)["SecretString"] == "stays"


def test_purge_uses_the_default_30_day_window(sm_clock, admin):
    secret_name = unique_name("purge30")
    sm_clock.create_secret(Name=secret_name, SecretString="doomed")
    sm_clock.delete_secret(SecretId=secret_name)

    admin.advance(29 * 86400)
    admin.run_tasks()
    assert "DeletedDate" in sm_clock.describe_secret(SecretId=secret_name)

    admin.advance(86400 + 1)
    assert admin.run_tasks() >= 1
    with raises_aws("ResourceNotFoundException", NOT_FOUND):
        sm_clock.describe_secret(SecretId=secret_name)


def test_running_tasks_with_nothing_due_purges_nothing(sm_clock, admin):
    keeper = unique_name("keeper")
    sm_clock.create_secret(Name=keeper, SecretString="x")
    admin.run_tasks()  # whatever earlier tests left due
    assert admin.run_tasks() == 0
    assert sm_clock.get_secret_value(SecretId=keeper)["SecretString"] == "x"
