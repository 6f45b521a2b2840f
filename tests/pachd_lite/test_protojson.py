"""The generic protojson codec (pachd_lite.protojson) on messages other than pipeline specs."""

from __future__ import annotations

import json

import pytest
from pachyderm_sdk.api import pfs

from pachd_lite import protojson
from pachd_lite.errors import InvalidArgument


def test_round_trip_of_a_pfs_message():
    trigger = protojson.parse(
        pfs.Trigger, '{"branch": "staging", "commits": 3, "rate_limit_spec": "1h"}', "trigger"
    )
    assert (trigger.branch, trigger.commits, trigger.rate_limit_spec) == ("staging", 3, "1h")
    # camelCase keys, 64-bit ints as strings, unset fields left out
    assert json.loads(protojson.dumps(trigger)) == {
        "branch": "staging",
        "commits": "3",
        "rateLimitSpec": "1h",
    }
    assert protojson.is_set(protojson.parse(pfs.Commit, '{"branch": {}}', "commit").branch)
    assert not protojson.is_set(pfs.Commit().branch)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('{"branch": 1}', "branch", "branch: expected a string, got the number 1"),
        ('{"comits": 1}', "comits", 'unknown field "comits" in trigger'),
        ('{"all": true, "all": false}', "all", 'duplicate key "all" in trigger JSON'),
        (
            '{"commits": "three"}',
            "commits",
            'commits: expected an integer (number or string), got the string "three"',
        ),
        ("[]", "", "trigger must be a JSON object"),
    ],
)
def test_errors_name_the_document_and_the_field(text, field, message):
    with pytest.raises(protojson.ProtoJsonError) as exc:
        protojson.parse(pfs.Trigger, text, "trigger")
    assert exc.value.field == field and str(exc.value) == message
    assert isinstance(exc.value, InvalidArgument)
