"""Requests for table-driven tests: a base request with fields replaced or, with ``...``, removed."""

from __future__ import annotations

from typing import Any


def edited(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``changes`` applied; a value of ``...`` removes the field."""
    request = dict(base)
    for key, value in changes.items():
        if value is ...:
            request.pop(key, None)
        else:
            request[key] = value
    return request
