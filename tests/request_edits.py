"""Requests for tests: the walkthrough's app as examples/nginx.json writes it, with fields replaced or, with
``...``, removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nginx.json"
REQUIRED_FIELDS = ("cluster", "namespace", "app", "image")


def edited(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``changes`` applied; a value of ``...`` removes the field."""
    request = dict(base)
    for key, value in changes.items():
        if value is ...:
            request.pop(key, None)
        else:
            request[key] = value
    return request


def walkthrough_request(**changes: Any) -> dict[str, Any]:
    """The walkthrough's app (examples/nginx.json) with only the required fields, the others left to their defaults,
    and ``changes`` applied as ``edited`` does."""
    example = json.loads(EXAMPLE.read_text())
    return edited({field: example[field] for field in REQUIRED_FIELDS}, **changes)
