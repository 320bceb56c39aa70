"""`next` frames are encoded once per (result data, operation id) and are valid protocol JSON."""

from __future__ import annotations

import json

from app.graphql.events.frames import next_frame


def test_one_encoding_per_data_and_operation_id() -> None:
    data = {"workflowProgress": {"sequence": 7, "type": "task.completed", "taskKey": "a"}}
    first = next_frame("op-1", data)
    assert next_frame("op-1", data) is first  # the same text object, written to everyone
    other = next_frame("op-2", data)
    assert other is not first
    assert json.loads(first) == {"id": "op-1", "type": "next", "payload": {"data": data}}
    assert json.loads(other)["id"] == "op-2"


def test_equal_but_distinct_data_is_encoded_afresh() -> None:
    one, two = {"x": {"n": 1}}, {"x": {"n": 2}}
    assert json.loads(next_frame("1", one))["payload"]["data"] == one
    assert json.loads(next_frame("1", two))["payload"]["data"] == two
    odd = 'a"b\\c'
    assert json.loads(next_frame(odd, one))["id"] == odd
