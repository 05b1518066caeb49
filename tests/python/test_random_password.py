"""GetRandomPassword: length, every character-class switch, and the impossible requests."""

import string

import pytest

from support import fields, raises_aws

# The punctuation set the API documents for ExcludePunctuation: ! " # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \ ] ^ _ ` { | } ~
PUNCTUATION = set(string.punctuation)
LOWER, UPPER, DIGITS = set(string.ascii_lowercase), set(string.ascii_uppercase), set(string.digits)
ALL = LOWER | UPPER | DIGITS | PUNCTUATION


def password(sm, **kwargs) -> str:
    out = sm.get_random_password(**kwargs)
    assert fields(out) == {"RandomPassword"}
    return out["RandomPassword"]


def test_default_is_32_chars_with_every_type(sm):
    for _ in range(5):
        pw = password(sm)
        assert len(pw) == 32
        assert set(pw) <= ALL, set(pw) - ALL
        # RequireEachIncludedType defaults to true: at least one of every type.
        for kind in (LOWER, UPPER, DIGITS, PUNCTUATION):
            assert set(pw) & kind, pw


def test_passwords_differ(sm):
    assert len({password(sm) for _ in range(10)}) == 10


@pytest.mark.parametrize("length", [4, 64, 4096])
def test_length(sm, length):
    assert len(password(sm, PasswordLength=length)) == length


def test_length_1_with_a_single_type(sm):
    pw = password(
        sm, PasswordLength=1, ExcludeUppercase=True, ExcludeNumbers=True, ExcludePunctuation=True
    )
    assert len(pw) == 1 and pw in LOWER


@pytest.mark.parametrize(
    "switch, excluded",
    [
        ("ExcludeLowercase", LOWER),
        ("ExcludeUppercase", UPPER),
        ("ExcludeNumbers", DIGITS),
        ("ExcludePunctuation", PUNCTUATION),
    ],
)
def test_exclude_a_character_type(sm, switch, excluded):
    pw = password(sm, PasswordLength=4096, **{switch: True})
    assert not set(pw) & excluded
    assert set(pw) == ALL - excluded  # 4096 draws: every remaining character shows up


def test_exclude_characters(sm):
    # AWS-validated by LocalStack (test_get_random_exclude_characters_and_symbols).
    pw = password(sm, PasswordLength=120, ExcludeCharacters="xyzDje@?!.")
    assert len(pw) == 120
    assert not set(pw) & set("xyzDje@?!.")


def test_exclude_characters_and_types_together(sm):
    pw = password(sm, PasswordLength=4096, ExcludeCharacters="abc012", ExcludePunctuation=True, ExcludeUppercase=True)
    assert set(pw) == (LOWER | DIGITS) - set("abc012")


def test_include_space(sm):
    assert " " in password(sm, PasswordLength=4096, IncludeSpace=True)
    assert " " not in password(sm, PasswordLength=4096)


def test_require_each_included_type_with_few_types(sm):
    for _ in range(20):
        pw = password(sm, PasswordLength=2, ExcludeUppercase=True, ExcludePunctuation=True)
        assert set(pw) & LOWER and set(pw) & DIGITS, pw


def test_without_require_each_included_type_short_passwords_are_fine(sm):
    pw = password(sm, PasswordLength=1, RequireEachIncludedType=False)
    assert len(pw) == 1 and pw in ALL


def test_too_short_for_every_required_type(sm):
    # Four required types cannot fit in three characters. Code only: AWS's message is not captured.
    with raises_aws("InvalidParameterException"):
        password(sm, PasswordLength=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ExcludeLowercase": True, "ExcludeUppercase": True, "ExcludeNumbers": True, "ExcludePunctuation": True},
        {"ExcludeCharacters": "".join(sorted(ALL))},
        {
            "ExcludeUppercase": True,
            "ExcludeNumbers": True,
            "ExcludePunctuation": True,
            "ExcludeCharacters": string.ascii_lowercase,
        },
    ],
    ids=["every-type-switch", "every-character", "lowercase-only-all-excluded"],
)
def test_excluding_everything_is_refused(sm, kwargs):
    # Code only, not confirmed against AWS.
    with raises_aws("InvalidParameterException"):
        password(sm, **kwargs)


@pytest.mark.parametrize("length", [0, 4097])
def test_length_outside_1_to_4096(sm_raw, length):
    # Model constraint (PasswordLengthType 1..4096) enforced by the service; moto quotes AWS's wording for 4097.
    bound = "greater than or equal to 1" if length < 1 else "less than or equal to 4096"
    with raises_aws(
        "ValidationException",
        f"1 validation error detected: Value '{length}' at 'passwordLength' failed to satisfy constraint: "
        f"Member must have value {bound}",
    ):
        sm_raw.get_random_password(PasswordLength=length)
