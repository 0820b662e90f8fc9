"""template.yaml as the static tests read it: the sandbox's reader, which keeps the intrinsic functions (!Ref, !Sub)
in their long form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fargate_sandbox.template_model import read_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE: dict[str, Any] = read_template(ROOT / "template.yaml")
# The app inventory as the stack creates it: CreateTable's arguments are the table's own properties.
APPS_TABLE_NAME = "fargate-app-provisioner-apps"
APPS_TABLE: dict[str, Any] = {
    "TableName": APPS_TABLE_NAME,
    **{
        key: value
        for key, value in TEMPLATE["Resources"]["AppsTable"]["Properties"].items()
        if key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")
    },
}
HOLDERS_TABLE_NAME = "fargate-app-provisioner-holders"
HOLDERS_TABLE: dict[str, Any] = {
    "TableName": HOLDERS_TABLE_NAME,
    **{
        key: value
        for key, value in TEMPLATE["Resources"]["HoldersTable"]["Properties"].items()
        if key in ("KeySchema", "AttributeDefinitions", "BillingMode")
    },
}
# Each state machine's properties, by logical id.
MACHINES: dict[str, dict[str, Any]] = {
    name: resource["Properties"]
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::StateMachine"
}
