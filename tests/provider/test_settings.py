"""Settings parsers: a wrong value is an error naming the setting, never read as a default."""

import pytest

from pachflow.exceptions import ConfigurationError
from pachflow.settings import as_bool, parse_commit_ref


@pytest.mark.parametrize("value", [True, "true", " Yes ", "1", "on", 1])
def test_true_values(value):
    assert as_bool("force", value) is True


@pytest.mark.parametrize("value", [False, "false", "0", "off", "", None, 0])
def test_false_values(value):
    assert as_bool("force", value) is False


def test_a_value_that_is_not_a_bool_names_the_setting():
    with pytest.raises(ConfigurationError, match="connection extra tls must be true or false, got 'maybe'"):
        as_bool("connection extra tls", "maybe")


def test_commit_refs():
    assert parse_commit_ref("research/events@abc", "--commit") == ("research", "events", "abc")
    assert parse_commit_ref(" raw@master ", "--commit") == (None, "raw", "master")
    for bad in ("raw", "raw@", "@abc", "/@abc"):
        with pytest.raises(ConfigurationError, match=r"--commit .*expected \[PROJECT/\]REPO@COMMIT_ID"):
            parse_commit_ref(bad, "--commit")
