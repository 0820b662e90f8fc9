"""The stack's app inventory as tests read it: an app's item, past the sandbox's front (no IAM, no faults)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows


def inventory_item(sandbox: Sandbox, workflows: Workflows, key: str) -> dict[str, Any]:
    """The app's item (``cluster/namespace/app``) in the template's inventory table, as plain values."""
    (table,) = workflows.template.tables
    item = sandbox.moto_client("dynamodb").get_item(TableName=table.name, Key={"app": {"S": key}})["Item"]
    return {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
