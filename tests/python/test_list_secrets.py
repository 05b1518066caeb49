"""ListSecrets: filters (and their negation), sorting, pagination.

Other tests create secrets on the same server at the same time, so every query here is scoped with an extra
`tag-key` filter on a tag key only this test's secrets carry (filters of different keys are ANDed).
"""

import time
import uuid

import pytest

from support import Admin, NameFactory, assert_recent, fields, paginate, raises_aws, unique_name


def listed(sm, scope: str, *filters: dict, **kwargs) -> list[str]:
    """Names of the secrets matching `filters`, among the ones tagged with the `scope` key, in listing order."""
    items, _ = paginate(
        sm.list_secrets, "SecretList", Filters=[{"Key": "tag-key", "Values": [scope]}, *filters], **kwargs
    )
    return [s["Name"] for s in items]


@pytest.fixture
def catalog(sm):
    """The secrets of LocalStack's AWS-validated test_list_secrets_filtering, plus tags for the tag filters."""
    scope = unique_name("scope")
    u = uuid.uuid4().hex[:10]
    spec = {
        "one": (f"testing1/one-{u}", "a secret", [{"Key": "Environment", "Value": "Production"}]),
        "two": (f"/testing2/two-{u}", "an secret", [{"Key": "environment", "Value": "staging"}]),
        "three": (f"testing3/three-{u}", "asecret", []),
        "four": (f"/testing4/four-{u}", "thesecret", []),
    }
    for key, (secret_name, description, tags) in spec.items():
        sm.create_secret(
            Name=secret_name,
            SecretString=key,
            Description=description,
            Tags=[{"Key": scope, "Value": key}, *tags],
        )
    return scope, {key: secret_name for key, (secret_name, _, _) in spec.items()}


# AWS-validated cases (LocalStack test_list_secrets_filtering, recorded against AWS): filter -> matching secrets.
AWS_VALIDATED_FILTERS = [
    ([{"Key": "name", "Values": ["/"]}], {"two", "four"}),
    ([{"Key": "name", "Values": ["!/"]}], {"one", "three"}),
    ([{"Key": "name", "Values": ["testing1 one"]}], set()),
    ([{"Key": "description", "Values": ["a"]}], {"one", "two", "three"}),
    ([{"Key": "description", "Values": ["!a"]}], {"four"}),
    ([{"Key": "description", "Values": ["a secret"]}], {"one", "two"}),
    ([{"Key": "description", "Values": ["!c"]}], {"one", "two", "three", "four"}),
    ([{"Key": "description", "Values": ["a"]}, {"Key": "name", "Values": ["secret"]}], set()),
    ([{"Key": "description", "Values": ["a"]}, {"Key": "name", "Values": ["an"]}], set()),
]

# Documented semantics (API_Filter): name/tag-key/tag-value are case-sensitive prefixes, description is not
# case-sensitive, `all` searches every attribute without case.
DOCUMENTED_FILTERS = [
    ([{"Key": "name", "Values": ["testing1/"]}], {"one"}),
    ([{"Key": "name", "Values": ["TESTING1/"]}], set()),
    ([{"Key": "name", "Values": ["testing1/", "testing3/"]}], {"one", "three"}),
    ([{"Key": "description", "Values": ["THESECRET"]}], {"four"}),
    ([{"Key": "tag-key", "Values": ["Env"]}], {"one"}),
    ([{"Key": "tag-key", "Values": ["env"]}], {"two"}),
    ([{"Key": "tag-value", "Values": ["Prod"]}], {"one"}),
    ([{"Key": "tag-value", "Values": ["prod"]}], set()),
    ([{"Key": "tag-value", "Values": ["staging", "Production"]}], {"one", "two"}),
    ([{"Key": "all", "Values": ["production"]}], {"one"}),
    ([{"Key": "all", "Values": ["STAGING"]}], {"two"}),
    ([{"Key": "all", "Values": ["thesecret"]}], {"four"}),
    ([{"Key": "primary-region", "Values": ["ap-south-9"]}], set()),
    ([{"Key": "owning-service", "Values": ["rds"]}], set()),
]


def _case_id(case):
    filters, _ = case
    return " & ".join(f"{f['Key']}={'|'.join(f['Values'])}" for f in filters)


@pytest.mark.parametrize("case", AWS_VALIDATED_FILTERS + DOCUMENTED_FILTERS, ids=_case_id)
def test_filters(sm, catalog, case):
    filters, expected = case
    scope, by_key = catalog
    got = listed(sm, scope, *filters)
    assert sorted(got) == sorted(by_key[k] for k in expected)


def test_scope_tag_alone_lists_all_four(sm, catalog):
    scope, by_key = catalog
    assert sorted(listed(sm, scope)) == sorted(by_key.values())


def test_list_entry_fields(sm, name):
    scope = unique_name("scope")
    created = sm.create_secret(
        Name=name, SecretString="x", Description="listed", Tags=[{"Key": scope, "Value": "v"}]
    )
    (entry,) = sm.list_secrets(Filters=[{"Key": "tag-key", "Values": [scope]}])["SecretList"]
    assert {"ARN", "Name", "Description", "Tags", "SecretVersionsToStages", "CreatedDate", "LastChangedDate"} <= set(
        entry
    )
    assert entry["ARN"] == created["ARN"]
    assert entry["Name"] == name
    assert entry["Description"] == "listed"
    assert entry["Tags"] == [{"Key": scope, "Value": "v"}]
    assert entry["SecretVersionsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert_recent(entry["CreatedDate"])
    assert "DeletedDate" not in entry
    assert "VersionIdsToStages" not in entry  # that member belongs to DescribeSecret


def test_list_entry_of_a_secret_without_value_has_no_versions(sm, name):
    scope = unique_name("scope")
    sm.create_secret(Name=name, Tags=[{"Key": scope, "Value": "v"}])
    (entry,) = sm.list_secrets(Filters=[{"Key": "tag-key", "Values": [scope]}])["SecretList"]
    assert "SecretVersionsToStages" not in entry


def test_pagination_across_pages(sm, names):
    scope = unique_name("scope")
    created = {names() for _ in range(7)}
    for secret_name in created:
        sm.create_secret(Name=secret_name, SecretString="x", Tags=[{"Key": scope, "Value": "p"}])

    items, sizes = paginate(
        sm.list_secrets, "SecretList", Filters=[{"Key": "tag-key", "Values": [scope]}], MaxResults=3
    )
    got = [s["Name"] for s in items]
    assert len(got) == len(set(got)), "a secret was listed twice across pages"
    assert set(got) == created
    assert max(sizes) <= 3
    assert len(sizes) >= 3


def test_unfiltered_listing_paginates_and_includes_a_new_secret(sm, secret):
    items, sizes = paginate(sm.list_secrets, "SecretList", MaxResults=100)
    assert secret["Name"] in {s["Name"] for s in items}
    assert max(sizes) <= 100


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_name(sm, names, order):
    scope = unique_name("scope")
    created = [names(suffix) for suffix in ["charlie", "alpha", "delta", "bravo"]]
    for secret_name in created:
        sm.create_secret(Name=secret_name, SecretString="x", Tags=[{"Key": scope, "Value": "s"}])
    got = listed(sm, scope, SortBy="name", SortOrder=order)
    assert got == sorted(created, reverse=(order == "desc"))


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_created_date(sm_clock, coffer_clock, order):
    """Runs on the manual-clock server, so creation times are one second apart without sleeping."""
    scope = unique_name("scope")
    make = NameFactory(unique_name("created"))
    in_creation_order = []
    for suffix in ["zulu", "alpha", "mike"]:  # not alphabetical, so a name sort cannot pass for a date sort
        secret_name = make(suffix)
        sm_clock.create_secret(Name=secret_name, SecretString="x", Tags=[{"Key": scope, "Value": "d"}])
        in_creation_order.append(secret_name)
        if coffer_clock.manual_clock:
            Admin(coffer_clock).advance(1)
        else:
            time.sleep(1.1)
    got = listed(sm_clock, scope, SortBy="created-date", SortOrder=order)
    assert got == (in_creation_order if order == "asc" else in_creation_order[::-1])


def test_invalid_next_token(sm):
    with raises_aws("InvalidNextTokenException"):
        sm.list_secrets(NextToken="definitely-not-a-token-coffer-issued")


def test_unknown_filter_key_is_refused(sm_raw):
    # Enum constraint on Filter.Key enforced by the service (botocore does not check enums). Code only.
    with raises_aws("ValidationException"):
        sm_raw.list_secrets(Filters=[{"Key": "colour", "Values": ["red"]}])


def test_filter_value_outside_the_pattern_is_refused(sm_raw):
    # FilterValueStringType pattern ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$ ; '*' is not in it. Code only.
    with raises_aws("ValidationException"):
        sm_raw.list_secrets(Filters=[{"Key": "name", "Values": ["a*b"]}])


@pytest.mark.parametrize("max_results", [0, 101])
def test_max_results_outside_1_to_100(sm_raw, max_results):
    with raises_aws("ValidationException"):
        sm_raw.list_secrets(MaxResults=max_results)


def test_response_shape(sm):
    out = sm.list_secrets(MaxResults=1)
    assert fields(out) <= {"SecretList", "NextToken"}
    assert "SecretList" in out
