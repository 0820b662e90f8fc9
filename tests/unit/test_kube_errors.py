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


ACTION = "apply Deployment fargate/demo-app"
SAID = "what the server said"


@pytest.mark.parametrize(
    ("code", "body", "message"),
    [
        (
            403,
            status(403, "Forbidden", SAID),
            f"{ACTION}: the Kubernetes API refused our identity (403): {SAID}; give this function's role an EKS access "
            "entry with permission on the namespace",
        ),
        (404, status(404, "NotFound", SAID), f"{ACTION}: {SAID}"),
        (
            409,
            status(409, "Conflict", SAID),
            f"{ACTION}: {SAID}; another field manager owns them: change the object through that manager or remove its "
            "ownership first",
        ),
        (422, status(422, "Invalid", SAID), f"{ACTION}: the API server rejected the object: {SAID}"),
        (503, status(503, "ServiceUnavailable", SAID), f"{ACTION}: the Kubernetes API is unavailable (503): {SAID}"),
        (None, status(0, "X", SAID), f"{ACTION}: the Kubernetes API is unavailable (no answer): {SAID}"),
        (418, status(418, "Teapot", SAID), f"{ACTION}: the Kubernetes API answered 418: {SAID}"),
        # Bodies that are not a Status: the body itself is quoted, or the status when there is none
        (502, None, f"{ACTION}: the Kubernetes API is unavailable (502): HTTP 502"),
        (502, "", f"{ACTION}: the Kubernetes API is unavailable (502): HTTP 502"),
        (
            502,
            "<html>bad\n  gateway</html>",
            f"{ACTION}: the Kubernetes API is unavailable (502): <html>bad gateway</html>",
        ),
        (502, "[1, 2]", f"{ACTION}: the Kubernetes API is unavailable (502): [1, 2]"),
        (
            502,
            {"message": "not a Status"},
            f"{ACTION}: the Kubernetes API is unavailable (502): {{'message': 'not a Status'}}",
        ),
        # A Status as the raw bytes urllib3 read, one of them not UTF-8
        (422, status(422, "Invalid", SAID).encode(), f"{ACTION}: the API server rejected the object: {SAID}"),
        (
            422,
            b'{"kind": "Status", "message": "bad \xff byte"}',
            f"{ACTION}: the API server rejected the object: bad \N{REPLACEMENT CHARACTER} byte",
        ),
    ],
)
def test_each_failure_has_its_exact_message(code, body, message):
    assert map_status(code, body, ACTION).message == message


def test_wrapped_client_errors_keep_the_action_and_name_the_transport_failure():
    api_error = ApiException(status=404, reason="Not Found")
    api_error.body = status(404, "NotFound", 'deployments.apps "demo-app" not found')
    assert translate_api_error(api_error, ACTION).message == f'{ACTION}: deployments.apps "demo-app" not found'

    refused = MaxRetryError(None, "/", NewConnectionError(None, "connection refused"))  # type: ignore[arg-type]
    assert translate_api_error(refused, ACTION).message == (
        f"{ACTION}: the Kubernetes API did not answer (MaxRetryError); will retry"
    )
    with pytest.raises(TypeError, match=r"^not a Kubernetes client error: ValueError$"):
        translate_api_error(ValueError("a bug"), ACTION)
