"""The emulator validates a write with the schema it compiled once, and finds what kubernetes-validate finds: the
library (which reads and compiles its schema files at every call) is the oracle."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from kube_emulator import admission
from kube_emulator.resources import BY_KIND, ApiError
from kube_emulator.schemas import strict_validator

VERSION = "1.31"
LABELS = {"app": "web"}


def deployment(**spec: Any) -> dict[str, Any]:
    template = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"selector": {"matchLabels": LABELS}, "template": template, **spec},
    }


INVALID = {
    "an unknown field": deployment(bogus=1),
    "a wrong type": deployment(replicas="three"),
    "a required field missing": {**deployment(), "spec": {"selector": {"matchLabels": LABELS}}},
    "a port without a number": deployment(
        template={
            "metadata": {"labels": LABELS},
            "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http"}]}]},
        }
    ),
    "an unknown field of a service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPrt": 80}]},
    },
    "a rule of a role without verbs": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"]}],
    },
}


def library_finding(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(kubernetes_validate.ValidationError) as found:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    field = ".".join(str(part) for part in found.value.path) or "<root>"
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {found.value.message}", "field": field}


@pytest.mark.parametrize("obj", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_object_is_refused_with_the_cause_kubernetes_validate_finds(obj: dict[str, Any]) -> None:
    # Given an object kubernetes-validate's strict schema refuses
    expected = library_finding(obj)
    # When the emulator admits it
    with pytest.raises(ApiError) as refused:
        admission.validate(BY_KIND[obj["kind"]], obj, VERSION)
    # Then it is 422 Invalid with the library's cause
    assert refused.value.code == 422
    assert refused.value.body["details"]["causes"] == [expected]


def test_a_valid_object_is_admitted_and_its_schema_is_compiled_once() -> None:
    admission.validate(BY_KIND["Deployment"], deployment(replicas=2), VERSION)
    assert strict_validator(VERSION, "Deployment", "apps/v1") is strict_validator(VERSION, "Deployment", "apps/v1")
