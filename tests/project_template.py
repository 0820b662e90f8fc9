"""template.yaml as the static tests read it: cfn-lint's loader, which keeps the intrinsic functions (!Ref, !Sub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
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
