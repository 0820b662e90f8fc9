"""Tags that record which provision execution created (or last ensured) a shared AWS resource."""

from __future__ import annotations

import re

CREATED_BY_TAG = "fargate-app/created-by"
LAST_ENSURED_TAG = "fargate-app/last-ensured-by"
# IAM and EKS tag values: at most 256 of letters, digits, spaces and _.:/=+-@; execution names may also hold ! ' ( ).
_NOT_IN_TAG_VALUE = re.compile(r"[^\w .:/=+\-@]", re.ASCII)


def execution_tag(execution_arn: str) -> str:
    """The execution ARN as a tag value (what the tags store and compensation compares)."""
    return _NOT_IN_TAG_VALUE.sub("_", execution_arn)[:256]
