"""Kubernetes API failures mapped once to the package's named errors (like nolar/kopf ``_cogs/clients/errors.py``).

Every call into the ``kubernetes`` client goes through :func:`translate_api_error`, so no ``ApiException`` or urllib3
error crosses this package's boundary. The API server answers failures with a ``Status`` object (Kubernetes API
conventions, "Response Status Kind"): its ``message`` is what we quote, truncated.
"""

from __future__ import annotations

import json
from typing import Any

from fargate_app.errors import (
    FargateAppError,
    KubernetesConflict,
    KubernetesForbidden,
    KubernetesUnavailable,
    ManifestInvalid,
    PermanentError,
    truncate,
)


class KubernetesNotFound(PermanentError):
    """404 from the API server: callers decide what it means (already deleted, missing namespace…).

    Not in docs/design.md §4 on purpose: every step handles it before it could reach a state machine.
    """


def status_body(body: Any) -> dict[str, Any]:
    """The ``Status`` object of an error response, or {} when the body is not one (a proxy's HTML page…)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) and body.get("kind") == "Status" else {}


def _describe(status: int | None, body: Any) -> str:
    parsed = status_body(body)
    if parsed.get("message"):
        return truncate(str(parsed["message"]))
    return truncate(body if isinstance(body, (str, bytes)) else str(body or "")) or f"HTTP {status}"


def _conflict_fields(body: Any) -> str:
    causes = (status_body(body).get("details") or {}).get("causes") or []
    fields = sorted({str(cause.get("field")) for cause in causes if cause.get("field")})
    return ", ".join(fields)


def map_status(status: int | None, body: Any, action: str) -> FargateAppError:
    """The named error for an HTTP failure of the Kubernetes API; ``action`` leads the message."""
    message = _describe(status, body)
    if status in (401, 403):
        return KubernetesForbidden(
            f"{action}: the Kubernetes API refused our identity ({status}): {message}; give this function's role an "
            "EKS access entry with permission on the namespace"
        )
    if status == 404:
        return KubernetesNotFound(f"{action}: {message}")
    if status == 409:
        fields = _conflict_fields(body)
        where = f" (fields: {fields})" if fields else ""
        return KubernetesConflict(
            f"{action}: {message}{where}; another field manager owns them: change the object through that manager "
            "or remove its ownership first"
        )
    if status in (400, 422):
        return ManifestInvalid(f"{action}: the API server rejected the object: {message}")
    if status == 429 or status is None or status >= 500:
        return KubernetesUnavailable(
            f"{action}: the Kubernetes API is unavailable ({status or 'no answer'}): {message}"
        )
    return PermanentError(f"{action}: the Kubernetes API answered {status}: {message}")


def translate_api_error(exc: Exception, action: str) -> FargateAppError:
    """Wrap an exception raised by the ``kubernetes`` client or by urllib3 under it.

    Raises:
        TypeError: ``exc`` is not an error of the client or of the transport (a bug: let it surface).
    """
    from kubernetes.client.exceptions import ApiException  # the kubernetes layer: imported only when used
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return map_status(exc.status or None, exc.body, action)
    if isinstance(exc, (HTTPError, OSError)):
        return KubernetesUnavailable(f"{action}: the Kubernetes API did not answer ({type(exc).__name__}); will retry")
    raise TypeError(f"not a Kubernetes client error: {type(exc).__name__}") from exc
