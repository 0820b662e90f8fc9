"""Identity-policy evaluation as IAM does it, for one request: an action, a resource ARN and the request context.

IAM user guide, "Policy evaluation logic": an explicit Deny in any policy wins; otherwise an Allow in any policy
allows; otherwise the request is implicitly denied. "IAM JSON policy elements": ``Action``/``NotAction`` (case
insensitive, ``*`` and ``?`` wildcards), ``Resource``/``NotResource`` (an ARN is matched field by field — partition,
service, region, account, then the resource part — each with wildcards; policy variables ``${aws:…}`` take their
context value), and ``Condition``: every operator block must hold, every key in a block must hold, and a key holds if
any of the policy's values matches (the documented operators, ``…IfExists``, ``ForAnyValue:``/``ForAllValues:``, and
``Null``; a key missing from the context fails a positive operator and passes a negated one).

Written here rather than taken from a library: the maintained evaluators are AGPL (principalmapper, unmaintained
since 2022; @cloud-copilot/iam-simulate, a Node package) or compute whole effective policies instead of answering
one request (iam-ape). See docs/sandbox.md.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

Context = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool
    # The Allow statements that matched (or the Deny ones that won), each as ``<policy name>/<Sid or #position>``
    statements: tuple[str, ...]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def evaluate(policies: Mapping[str, Mapping[str, Any]], action: str, resource: str, context: Context) -> Decision:
    """Explicit deny > allow > implicit deny, over every statement of ``policies`` (name → policy document)."""
    allows: list[str] = []
    denies: list[str] = []
    for name, document in policies.items():
        for index, statement in enumerate(as_list(document.get("Statement"))):
            if not _applies(statement, action, resource, context):
                continue
            ref = f"{name}/{statement.get('Sid') or f'#{index}'}"
            (denies if statement.get("Effect") == "Deny" else allows).append(ref)
    if denies:
        return Decision(False, True, tuple(denies))
    return Decision(bool(allows), False, tuple(allows))


def _applies(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if "Action" in statement:
        if not any(_action_matches(pattern, action) for pattern in as_list(statement["Action"])):
            return False
    elif any(_action_matches(pattern, action) for pattern in as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(resource_matches(pattern, resource, context) for pattern in as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(
        resource_matches(pattern, resource, context) for pattern in as_list(statement["NotResource"])
    ):
        return False
    return all(
        _condition_holds(operator, keys, context) for operator, keys in (statement.get("Condition") or {}).items()
    )


def _action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern.lower()).fullmatch(action.lower()) is not None


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def substitute(text: str, context: Context) -> str:
    """Policy variables: ``${aws:username}`` → its context value; ``${*}``, ``${?}``, ``${$}`` → the character."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):
            return "\0" + name  # a literal character, not a wildcard
        found = _lookup(context, name)
        return str(found[0]) if found else match.group(0)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def resource_matches(pattern: str, resource: str, context: Context) -> bool:
    pattern = substitute(pattern, context)
    if pattern == "*":
        return True
    wanted, given = pattern.split(":", 5), resource.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return _literal_glob(pattern, resource)
    return all(_literal_glob(w, g) for w, g in zip(wanted, given, strict=True))


def _literal_glob(pattern: str, value: str) -> bool:
    """Case-sensitive ``*``/``?`` matching; a ``\\0``-marked character is literal."""
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\0" and index + 1 < len(pattern):
            regex += re.escape(pattern[index + 1])
            index += 2
            continue
        regex += ".*" if char == "*" else "." if char == "?" else re.escape(char)
        index += 1
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _lookup(context: Context, key: str) -> list[str]:
    """A context key's values; keys are case-insensitive (the tag part of ``aws:RequestTag/…`` is not)."""
    for name, value in context.items():
        if name.lower() == key.lower():
            return [str(item) for item in as_list(value)]
    return []


def _has(context: Context, key: str) -> bool:
    return any(name.lower() == key.lower() for name in context)


def _condition_holds(operator: str, keys: Mapping[str, Any], context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    for key, policy_values in keys.items():
        wanted = [substitute(str(value), context) for value in as_list(policy_values)]
        if base == "Null":
            expect_absent = str(policy_values).lower() == "true"
            if (not _has(context, key)) != expect_absent:
                return False
            continue
        present = _has(context, key)
        given = _lookup(context, key)
        negated = "Not" in base
        if not present:
            if if_exists or qualifier == "ForAllValues":
                continue
            if qualifier == "ForAnyValue" or not negated:
                return False
            continue
        if qualifier == "ForAllValues":
            holds = all(_any_matches(base, value, wanted) for value in given)
        elif qualifier == "ForAnyValue":
            holds = any(_any_matches(base, value, wanted) for value in given)
        else:
            holds = any(_any_matches(base, value, wanted) for value in given)
        if not holds:
            return False
    return True


def _any_matches(operator: str, value: str, wanted: Iterable[str]) -> bool:
    """For a negated operator, "matches" means none of the policy's values matches the positive form."""
    negated = operator.replace("Not", "", 1) if "Not" in operator else None
    if negated is not None:
        return not any(_matches(negated, value, policy_value) for policy_value in wanted)
    return any(_matches(operator, value, policy_value) for policy_value in wanted)


def _matches(operator: str, value: str, policy_value: str) -> bool:
    if operator == "StringEquals":
        return value == policy_value
    if operator == "StringEqualsIgnoreCase":
        return value.lower() == policy_value.lower()
    if operator == "StringLike":
        return _literal_glob(policy_value, value)
    if operator in ("ArnEquals", "ArnLike"):
        return resource_matches(policy_value, value, {})
    if operator.startswith("Numeric"):
        return _compare(operator.removeprefix("Numeric"), float(value), float(policy_value))
    if operator.startswith("Date"):
        return _compare(operator.removeprefix("Date"), _time(value), _time(policy_value))
    if operator == "Bool":
        return value.lower() == policy_value.lower()
    if operator == "BinaryEquals":
        return value == policy_value
    if operator == "IpAddress":
        return ipaddress.ip_address(value) in ipaddress.ip_network(policy_value, strict=False)
    raise ValueError(f"condition operator {operator} is not supported by the sandbox's IAM evaluation")


def _compare(relation: str, value: Any, policy_value: Any) -> bool:
    outcomes: dict[str, bool] = {
        "Equals": value == policy_value,
        "LessThan": value < policy_value,
        "LessThanEquals": value <= policy_value,
        "GreaterThan": value > policy_value,
        "GreaterThanEquals": value >= policy_value,
    }
    return outcomes[relation]


def _time(value: str) -> float:
    if value.replace(".", "", 1).isdigit():
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
