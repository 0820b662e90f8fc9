"""The tags this project puts on what it creates: who manages it, what it was made for, which execution made it."""

from __future__ import annotations

import re

MANAGED_BY_TAG = "managed-by"
CREATED_FOR_TAG = "fargate-app/created-for"  # Fargate profile: <namespace>.<app>
CLUSTER_TAG = "fargate-app/cluster"  # pod execution role
# Shared resources (the per-cluster role, a profile): who created it makes a retried create still "ours". Who uses
# them is not a tag: DynamoDB holder sets (fargate_app/holders.py).
CREATED_BY_TAG = "fargate-app/created-by"
# IAM and EKS tag values: at most 256 of letters, digits, spaces and _.:/=+-@; execution names may also hold ! ' ( ).
_NOT_IN_TAG_VALUE = re.compile(r"[^\w .:/=+\-@]", re.ASCII)


def execution_tag(execution_arn: str) -> str:
    """The execution ARN as a tag value (what the tags store and compensation compares)."""
    return _NOT_IN_TAG_VALUE.sub("_", execution_arn)[:256]
