"""The stack's app inventory and holder sets as tests read them, past the sandbox's front (no IAM, no faults)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows


def inventory_item(sandbox: Sandbox, workflows: Workflows, key: str) -> dict[str, Any]:
    """The app's item (``cluster/namespace/app``) in the template's inventory table, as plain values."""
    table = workflows.template.table("AppsTable")
    item = sandbox.moto_client("dynamodb").get_item(TableName=table.name, Key={"app": {"S": key}})["Item"]
    return {name: TypeDeserializer().deserialize(value) for name, value in item.items()}


def holders_of(sandbox: Sandbox, workflows: Workflows, resource: str) -> list[str]:
    """Who holds a shared resource (``podExecutionRole/<name>``, ``fargateProfile/<cluster>/<name>``,
    ``cacheRule/<prefix>``) in the template's holders table; [] when nothing does (or it never was taken)."""
    table = workflows.template.table("HoldersTable")
    item = sandbox.moto_client("dynamodb").get_item(TableName=table.name, Key={"resource": {"S": resource}})
    return sorted(item.get("Item", {}).get("holders", {}).get("SS", []))


def all_holders(sandbox: Sandbox, workflows: Workflows) -> dict[str, list[str]]:
    """Every resource the holders table knows, with its holders (resources nothing holds map to [])."""
    table = workflows.template.table("HoldersTable")
    pages = sandbox.moto_client("dynamodb").get_paginator("scan").paginate(TableName=table.name)
    return {
        item["resource"]["S"]: sorted(item.get("holders", {}).get("SS", []))
        for page in pages
        for item in page.get("Items", [])
    }


def no_app_holds_anything(sandbox: Sandbox, workflows: Workflows) -> None:
    """Empty the stack's holder sets (as the administrator). Each test module starts a sandbox with a new cluster
    while moto's AWS state, the tables included, lives as long as the process: the holds of the apps of the previous
    module's cluster, which vanished with it, would otherwise keep this module's profiles alive."""
    dynamodb, table = sandbox.moto_client("dynamodb"), workflows.template.table("HoldersTable").name
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            dynamodb.delete_item(TableName=table, Key={"resource": item["resource"]})
