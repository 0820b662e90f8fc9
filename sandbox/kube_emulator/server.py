"""The HTTP(S) front of the emulator: the REST paths of the official clients, authentication, and the verbs.

Paths (Kubernetes API concepts, "Resource URIs"): ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...``
for the others; ``namespaces/<ns>/<plural>[/<name>]`` for namespaced resources, ``<plural>[/<name>]`` for
cluster-scoped ones and for lists across namespaces. Verbs: GET (get, list), POST (create → 201), PATCH with
``application/apply-patch+yaml`` (server-side apply → 201 when it creates, 200 when it updates) and DELETE.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from kube_emulator import admission, rbac
from kube_emulator.apply import ApplyConflict, apply, describe_path, record_update
from kube_emulator.auth import Authenticator, Identity
from kube_emulator.controllers import Controllers
from kube_emulator.resources import (
    BY_PATH,
    RESOURCES,
    ApiError,
    ResourceType,
    bad_request,
    forbidden,
    method_not_allowed,
    path_not_found,
    success,
    unauthorized,
    unsupported_media_type,
)
from kube_emulator.store import Store

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+json")
MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


class ApiServer:
    """The request logic, independent of HTTP plumbing; one per emulator."""

    def __init__(
        self,
        store: Store,
        controllers: Controllers,
        authenticator: Authenticator,
        version: str,
        authorizer: rbac.Authorizer | None = None,
    ) -> None:
        self.store = store
        self.controllers = controllers
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.version = version
        self.defaulter = admission.Defaulter()
        # Fault injection (the sandbox's hook): (method, path) -> (status, reason, message) to answer instead, or None.
        self.faults: Callable[[str, str], tuple[int, str, str] | None] | None = None

    # --- routing ---------------------------------------------------------------------------------------------------
    @staticmethod
    def route(path: str) -> tuple[ResourceType, str | None, str | None, str | None]:
        """(resource, namespace, name, subresource) for a resource path. Raises: ApiError 404."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise path_not_found()
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = BY_PATH.get((group, version, rest[0]))
        if resource is None or len(rest) > 3 or (namespace is not None and not resource.namespaced):
            raise path_not_found()
        name = rest[1] if len(rest) > 1 else None
        return resource, namespace, name, rest[2] if len(rest) > 2 else None

    def discovery(self, path: str) -> dict[str, Any] | None:
        major, minor = self.version.split(".")[:2]
        if path == "/version":
            return {
                "major": major,
                "minor": minor,
                "gitVersion": f"v{major}.{minor}.0-eks-emulated",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        for group_version in {r.api_version for r in RESOURCES}:
            prefix = "/api/" if "/" not in group_version else "/apis/"
            if path == prefix + group_version:
                listed = [
                    {
                        "name": r.plural,
                        "singularName": r.kind.lower(),
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["create", "delete", "get", "list", "patch"],
                    }
                    for r in RESOURCES
                    if r.api_version == group_version
                ]
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": listed,
                }
        return None

    # --- authentication --------------------------------------------------------------------------------------------
    def identify(self, authorization: str | None, path: str) -> Identity | None:
        """Raises: ApiError 401 for a bad token, 403 for anonymous access beyond the public paths."""
        if not authorization:
            if path in PUBLIC_PATHS:
                return None
            raise forbidden("system:anonymous", "get", f'"{path}"')
        scheme, _, token = authorization.partition(" ")
        identity = self.authenticator.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise unauthorized()
        return identity

    def user_of(self, identity: Identity | None) -> rbac.User | None:
        """The Kubernetes user of an authenticated caller: through the cluster's access entries when the cluster has
        an authorizer (an IAM principal without an access entry is refused, 401, as EKS refuses it).

        Raises: ApiError 401.
        """
        if identity is None:
            return None
        if self.authorizer is None or rbac.MASTERS in identity.groups:
            return rbac.User(identity.username, tuple(identity.groups))
        user = self.authorizer.user_for(identity.username)
        if user is None:
            raise unauthorized()
        return user

    def authorize(self, user: rbac.User | None, request: rbac.Attributes) -> None:
        """Raises: ApiError 403 Forbidden with the API server's message."""
        if user is None or self.authorizer is None or self.authorizer.allowed(user, request):
            return
        qualified = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
        raise rbac.forbidden(user, request, qualified if request.resource_request else "")

    @classmethod
    def request_info(cls, method: str, path: str, query: dict[str, str]) -> rbac.Attributes:
        """What a request asks, as the API server's RequestInfoFactory reads it from the path
        (``staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``)."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            return rbac.Attributes("get" if method == "GET" else method.lower(), False, path=path)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 2:
            # /namespaces/{name}[/status|/finalize] is the Namespace itself, and the request is "in" that namespace
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in ("status", "finalize"):
                rest = rest[2:]
        name = rest[1] if len(rest) > 1 else ""
        subresource = "/".join(rest[2:])
        return rbac.Attributes(
            cls.verb_of(method, name or None, query), True, group, rest[0], subresource, namespace, name
        )

    @staticmethod
    def verb_of(method: str, name: str | None, query: dict[str, str]) -> str:
        """The authorization verb of a resource request (Kubernetes documentation, "Request verbs")."""
        if method == "GET":
            if query.get("watch") in ("1", "true"):
                return "watch"
            return "get" if name else "list"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    # --- verbs -----------------------------------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        content_type: str,
        body: bytes,
        user: rbac.User | None = None,
    ) -> tuple[int, Any]:
        fault = self.faults(method, path) if self.faults is not None else None
        if fault is not None:
            raise ApiError(*fault)
        # The API server authorizes what the path asks (requestinfo.go) before it looks for a handler: a resource it
        # does not serve, or one the caller may not use, is 403 when RBAC denies it and 404 only when allowed.
        request = self.request_info(method, path, query)
        self.authorize(user, request)
        found = self.discovery(path) if method == "GET" else None
        if found is not None:
            return 200, found
        resource, namespace, name, subresource = self.route(path)
        if subresource is not None:
            raise path_not_found()
        if method == "GET":
            self.controllers.reconcile()
            if name is not None:
                return 200, self.store.get(resource, namespace, name)
            items = self.store.list(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
            for item in items:  # list items carry no kind/apiVersion: the list does
                item.pop("kind", None)
                item.pop("apiVersion", None)
            return 200, {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": self.store.revision},
                "items": items,
            }
        if method == "POST" and name is None:
            return self._create(resource, namespace, self._decode(body, content_type), query)
        if method == "PATCH" and name is not None:
            return self._patch(resource, namespace, name, content_type, body, query, user)
        if method == "DELETE" and name is not None:
            return self._delete(resource, namespace, name)
        raise method_not_allowed(method)

    @staticmethod
    def _decode(body: bytes, content_type: str) -> dict[str, Any]:
        try:
            data = yaml.safe_load(body) if "yaml" in content_type else json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
        if not isinstance(data, dict):
            raise bad_request("the body of the request must be an object")
        return data

    def _create(
        self, resource: ResourceType, namespace: str | None, obj: dict[str, Any], query: dict[str, str]
    ) -> tuple[int, Any]:
        admission.check_identity(resource, obj, namespace, None)
        obj.setdefault("metadata", {})
        if resource.namespaced:
            obj["metadata"]["namespace"] = namespace
        obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        admission.validate(resource, obj, self.version)
        record_update(obj, query.get("fieldManager") or "OpenAPI-Generator")
        self.defaulter.apply(resource, obj)
        if resource.kind == "Pod":
            self.controllers.admit(obj)
        created = self.store.create(resource, obj)
        self.controllers.reconcile()
        return 201, created

    def _patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: bytes,
        query: dict[str, str],
        user: rbac.User | None = None,
    ) -> tuple[int, Any]:
        media = content_type.split(";")[0].strip()
        if media in MERGE_TYPES:
            raise unsupported_media_type(media + " (the emulator implements server-side apply only)")
        if media not in APPLY_TYPES:
            raise unsupported_media_type(media)
        manager = query.get("fieldManager")
        if not manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                {
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }
                    ],
                },
            )
        config = self._decode(body, "yaml")
        admission.check_identity(resource, config, namespace, name)
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("apiVersion and kind are required in an apply configuration")
        config.setdefault("metadata", {})["name"] = name
        if resource.namespaced:
            config["metadata"]["namespace"] = namespace
        with self.store.lock:
            if resource.namespaced:
                self.store.require_namespace(namespace or "")
            live = self.store.find(resource, namespace, name)
            if live is None:
                # Applying an object that does not exist creates it: the API server checks "create" as well.
                in_namespace = namespace or (name if resource.plural == "namespaces" else "")
                create = rbac.Attributes("create", True, resource.group, resource.plural, "", in_namespace, name)
                if user is not None and self.authorizer is not None and not self.authorizer.allowed(user, create):
                    raise rbac.forbidden_to_create(resource.qualified, name)
            try:
                merged = apply(live, config, manager, force=query.get("force") == "true")
            except ApplyConflict as conflict:
                raise self._conflict(conflict) from conflict
            admission.validate(resource, merged, self.version)
            self.defaulter.apply(resource, merged)
            if live is None and resource.kind == "Pod":
                self.controllers.admit(merged)
            result = self.store.create(resource, merged) if live is None else self.store.update(resource, merged)
        self.controllers.reconcile()
        return (201 if live is None else 200), result

    @staticmethod
    def _conflict(conflict: ApplyConflict) -> ApiError:
        """409 as the API server words it: ``Apply failed with N conflict(s): conflict(s) with "mgr" using v: fields``."""
        count = len(conflict.conflicts)
        managers = sorted({manager for manager, _ in conflict.conflicts})
        fields = [describe_path(path) for _, path in conflict.conflicts]
        if count == 1:
            message = (
                f'Apply failed with 1 conflict: conflict with "{managers[0]}" using {conflict.api_version}: {fields[0]}'
            )
        else:
            lines = "\n".join(f"- {f}" for f in fields)
            message = f'Apply failed with {count} conflicts: conflicts with "{managers[0]}" using {conflict.api_version}:\n{lines}'
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{m}" using {conflict.api_version}',
                "field": describe_path(p),
            }
            for m, p in conflict.conflicts
        ]
        return ApiError(409, "Conflict", message, {"causes": causes})

    def _delete(self, resource: ResourceType, namespace: str | None, name: str) -> tuple[int, Any]:
        if resource.plural == "pods":
            # Graceful deletion: the pod is answered with its deletionTimestamp and goes once its containers stop.
            stopping = self.controllers.terminate_pod(self.store.get(resource, namespace, name))
            self.controllers.reconcile()
            return 200, stopping
        removed = self.store.delete(resource, namespace, name)
        if resource.plural == "namespaces":
            for other in RESOURCES:
                if other.namespaced:
                    for obj in self.store.list(other, name):
                        self.store.delete(other, name, obj["metadata"]["name"])
            removed.setdefault("status", {})["phase"] = "Terminating"
        self.controllers.reconcile()
        if resource.plural in ("pods", "services", "namespaces"):
            # Their registries set ReturnDeletedObject (pkg/registry/core/*/storage): the answer is the object.
            return 200, removed
        return 200, success(resource, name, removed["metadata"]["uid"])


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: requests carry bearer tokens in headers; nothing here is logged

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api = self.server.api
        try:
            user = api.user_of(api.identify(self.headers.get("Authorization"), parts.path))
            code, payload = api.handle(
                self.command, parts.path, query, self.headers.get("Content-Type") or "", body, user
            )
        except ApiError as error:
            code, payload = error.code, error.body
        data = json.dumps(payload).encode()
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, api: ApiServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


def serve(api: ApiServer, ssl_context: Any | None) -> tuple[_HttpServer, threading.Thread]:
    """Bind a free loopback port and serve in a daemon thread; wrap the socket in TLS when given a context."""
    httpd = _HttpServer(api)
    if ssl_context is not None:
        # The handshake happens in the request thread, so a slow or plain-HTTP client cannot stall the accept loop.
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, name="kube-emulator", daemon=True)
    thread.start()
    return httpd, thread
