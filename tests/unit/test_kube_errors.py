"""Kubernetes API failures become the named errors of docs/design.md §4, once, with bounded messages."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from fargate_app.errors import (
    MAX_BODY_IN_MESSAGE,
    KubernetesConflict,
    KubernetesForbidden,
    KubernetesUnavailable,
    ManifestInvalid,
    PermanentError,
)
from fargate_app.kube.errors import KubernetesNotFound, map_status, translate_api_error


def status(code: int, reason: str, message: str, **details: object) -> str:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    body.update(reason=reason, code=code, details=details)
    return json.dumps(body)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, KubernetesForbidden),
        (403, KubernetesForbidden),
        (404, KubernetesNotFound),
        (409, KubernetesConflict),
        (400, ManifestInvalid),
        (422, ManifestInvalid),
        (429, KubernetesUnavailable),
        (500, KubernetesUnavailable),
        (503, KubernetesUnavailable),
        (None, KubernetesUnavailable),
        (418, PermanentError),
    ],
)
def test_each_status_code_maps_to_its_named_error(code, error):
    mapped = map_status(code, status(code or 0, "X", "what the server said"), "apply Deployment fargate/demo-app")
    assert type(mapped) is error
    assert mapped.message.startswith("apply Deployment fargate/demo-app")
    assert "what the server said" in mapped.message
    assert mapped.retryable is (error is KubernetesUnavailable)


def test_a_conflict_names_the_fields_from_the_status_causes():
    body = status(
        409,
        "Conflict",
        'Apply failed with 2 conflicts: conflicts with "ops" using apps/v1',
        causes=[{"field": ".spec.replicas"}, {"field": ".metadata.labels.tier"}],
    )
    error = map_status(409, body, "apply Deployment fargate/demo-app")
    assert "(fields: .metadata.labels.tier, .spec.replicas)" in error.message
    assert '"ops"' in error.message


def test_a_long_body_that_is_not_a_status_is_truncated():
    error = map_status(502, "<html>" + "x" * 5000 + "</html>", "read deployment fargate/demo-app")
    assert len(error.message) < MAX_BODY_IN_MESSAGE + 150


def test_client_and_transport_exceptions_are_wrapped():
    api_error = ApiException(status=422, reason="Unprocessable Entity")
    api_error.body = status(422, "Invalid", 'Deployment.apps "demo-app" is invalid: spec.replicas: Invalid value')
    assert isinstance(translate_api_error(api_error, "apply"), ManifestInvalid)
    refused = MaxRetryError(None, "/", NewConnectionError(None, "connection refused"))  # type: ignore[arg-type]
    assert isinstance(translate_api_error(refused, "apply"), KubernetesUnavailable)
    with pytest.raises(TypeError):
        translate_api_error(ValueError("a bug"), "apply")
