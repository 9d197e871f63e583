"""EventBridge's input transformer, as strict as AWS documents it ("Amazon EventBridge input
transformation", EventBridge user guide): the input template filled from the input paths' values,
a string value put in as it is inside a quoted template ("EventBridge doesn't escape values
extracted by Input Path"), any other value as JSON; `$.time` is the event's ISO 8601 time. An
output that is not valid JSON is Undeliverable: no target gets it. sluice.aws.events puts this in
place of moto's transformer (its correct_moto).

    >>> transformed('{"state": <state>, "text": "<state> at <time>"}', {"state": "$.detail.state",
    ...             "time": "$.time"}, {"time": 0, "detail": {"state": "FAILED"}})
    {'state': 'FAILED', 'text': 'FAILED at 1970-01-01T00:00:00Z'}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


class Undeliverable(str):
    """An input transformer's output that is not valid JSON: no target can be given it."""


def transformed(input_template: str, input_paths_map: dict[str, Any], event: Any) -> Any:
    """The target input of `event` (a dict, its `time` moto's epoch seconds or AWS's text): the
    template filled with each input path's value; a path the event lacks makes no variable."""
    from jsonpath_ng.ext import parse as json_path

    event = dict(event)
    if isinstance(event.get("time"), int | float):
        moment = datetime.fromtimestamp(float(event["time"]), UTC)
        event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    values: dict[str, Any] = {"aws.events.event.json": event}
    for name, path in input_paths_map.items():
        found = json_path(path).find(event)
        if found:  # a path the event lacks makes no variable (the page's "Common issues")
            values[name] = found[0].value
    text = filled(input_template, values)
    try:
        return json.loads(text)
    except ValueError:
        return Undeliverable(text)


def filled(template: str, values: dict[str, Any]) -> str:
    """The template with each <variable> replaced: inside a quoted string, a string value as it is
    (not escaped); anywhere else, the value as JSON (an unquoted string variable comes out quoted,
    as the page's "Simple JSON" example shows).

    >>> filled('"<a> is in <b>"', {"a": 'say "hi"', "b": 2})
    '"say "hi" is in 2"'
    >>> filled('{"x": <a>, "y": [<b>]}', {"a": "i-1", "b": 2})
    '{"x": "i-1", "y": [2]}'
    """
    out, in_string, i = [], False, 0
    while i < len(template):
        char = template[i]
        if char == "<" and (end := template.find(">", i)) > i and template[i + 1:end] in values:
            value = values[template[i + 1:end]]
            raw = in_string and isinstance(value, str)
            out.append(value if raw else json.dumps(value, ensure_ascii=False))
            i = end + 1
            continue
        if char == "\\" and in_string:
            out.append(template[i:i + 2])
            i += 2
            continue
        in_string ^= char == '"'
        out.append(char)
        i += 1
    return "".join(out)
