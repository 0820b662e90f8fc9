"""Step Functions' GetExecutionHistory in pages, as the API gives it (moto answers every event in one page).

API reference, GetExecutionHistory ``maxResults``: "The default is 100 and the maximum allowed page size is 1000. A
value of 0 uses the default"; ``nextToken`` names the next page ("Keep all other arguments unchanged"), and a token
that is not one is answered HTTP 400 ``InvalidToken``; ``reverseOrder`` lists the newest first;
``includeExecutionData`` false leaves out "execution data (input or output of a history event)". moto's answer
ignores all four: a client that reads one page as the whole history, or the newest page for the latest state,
worked against moto and misreads in AWS; here it misreads too.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fargate_sandbox.aws_protocol import AwsError

DEFAULT_PAGE_SIZE = 100


class InvalidToken(Exception):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.error = AwsError("InvalidToken", f"Invalid Token: '{token}'", 400)


def history_page(events: list[dict[str, Any]], parameters: dict[str, Any]) -> dict[str, Any]:
    """The page of ``events`` (the whole history) that ``parameters`` ask for, in the order they ask for.

    Raises:
        InvalidToken: ``nextToken`` is not a token this history gave, for this execution.
    """
    events = sorted(events, key=lambda event: int(event["id"]), reverse=bool(parameters.get("reverseOrder")))
    size = int(parameters.get("maxResults") or DEFAULT_PAGE_SIZE)
    start = _offset(parameters.get("nextToken"), str(parameters.get("executionArn", "")), len(events))
    page: dict[str, Any] = {"events": events[start : start + size]}
    if parameters.get("includeExecutionData") is False:
        page["events"] = [_without_data(event) for event in page["events"]]
    if start + size < len(events):
        page["nextToken"] = _token(start + size, str(parameters.get("executionArn", "")))
    return page


def _token(offset: int, execution_arn: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "executionArn": execution_arn}).encode()).decode()


def _offset(token: Any, execution_arn: str, events: int) -> int:
    if token is None:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        offset = decoded["offset"]
        if decoded["executionArn"] != execution_arn or not isinstance(offset, int) or not 0 < offset < events:
            raise ValueError(offset)
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(str(token)) from exc
    return offset


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the input and output its details carry."""
    return {
        key: {name: value for name, value in details.items() if name not in _EXECUTION_DATA}
        if key.endswith("EventDetails") and isinstance(details, dict)
        else details
        for key, details in event.items()
    }


_EXECUTION_DATA = frozenset({"input", "output"})
