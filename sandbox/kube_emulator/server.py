"""The HTTP(S) front of the emulator: the REST paths of the official clients, authentication, and the verbs.

Paths (Kubernetes API concepts, "Resource URIs"): ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...``
for the others; ``namespaces/<ns>/<plural>[/<name>[/<subresource>]]`` for namespaced resources, ``<plural>[/<name>]``
for cluster-scoped ones and for lists across namespaces. Verbs: GET (get, list, ``?watch=1``), POST (create → 201),
PUT (update, with the resourceVersion precondition), PATCH (server-side apply → 201 when it creates, 200 when it
updates; merge, strategic merge and JSON patches) and DELETE; ``dryRun=All`` on every write. Subresources: ``status``
and ``scale``. Reads answer Tables when asked (server-side printing). Also ``/version``, ``/healthz``, ``/livez``,
``/readyz``, discovery and ``/openapi/v3``.
"""

from __future__ import annotations

import copy
import json
import secrets
import select
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from kube_emulator import admission, discovery, openapi, printing, rbac, watch
from kube_emulator.apply import ApplyConflict, apply, describe_path, record_change, record_update
from kube_emulator.auth import Authenticator, Identity
from kube_emulator.controllers import Controllers
from kube_emulator.patch import patched
from kube_emulator.resources import (
    BY_PATH,
    RESOURCES,
    ApiError,
    ResourceType,
    bad_request,
    conflict,
    forbidden,
    method_not_allowed,
    not_acceptable,
    not_emulated,
    path_not_found,
    success,
    unauthorized,
    unsupported_media_type,
)
from kube_emulator.scale import replicas_of, scale_of
from kube_emulator.store import Store

PUBLIC_PATHS = ("/version", *discovery.HEALTH_PATHS)
APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+json")
# Their registries set ReturnDeletedObject (pkg/registry/core/*/storage): a DELETE answers the object.
RETURNS_DELETED = ("pods", "services", "namespaces")
# The Scale view a patch of the scale subresource applies to (its schema gives strategic merge nothing to merge)
SCALE = ResourceType("autoscaling", "v1", "scale", "Scale", namespaced=True)


@dataclass(eq=False)  # one per emulator, compared by identity
class ApiServer:
    """The request logic, independent of HTTP plumbing; one per emulator."""

    store: Store
    controllers: Controllers
    authenticator: Authenticator
    version: str
    authorizer: rbac.Authorizer | None = None
    defaulter: admission.Defaulter = field(default_factory=admission.Defaulter, init=False)
    # Fault injection (the sandbox's hook): (method, path) -> (status, reason, message) to answer instead, or None.
    faults: Callable[[str, str], tuple[int, str, str] | None] | None = field(default=None, init=False)

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
        accept: str = "",
        agent: str = "",
    ) -> tuple[int, Any]:
        """The answer to one request: (status, body). The body is an object to send as JSON, ``PlainText``,
        ``RawJson`` or, for a watch, a ``WatchStream``."""
        fault = self.faults(method, path) if self.faults is not None else None
        if fault is not None:
            raise ApiError(*fault)
        if method == "GET" and path in discovery.HEALTH_PATHS:
            return 200, PlainText("ok")
        # The API server authorizes what the path asks (requestinfo.go) before it looks for a handler: a resource it
        # does not serve, or one the caller may not use, is 403 when RBAC denies it and 404 only when allowed.
        request = self.request_info(method, path, query)
        self.authorize(user, request)
        if method == "GET" and path == "/openapi/v2":
            if "json" not in accept and "*/*" not in accept and accept:
                raise not_acceptable(accept)
            return 200, RawJson(openapi.v2_document(self.version))
        if method == "GET":
            found = self._document(path)
            if found is not None:
                return 200, found
        resource, namespace, name, subresource = self.route(path)
        if resource.plural == "pods" and subresource in discovery.POD_RUNTIME_SUBRESOURCES:
            raise not_emulated(f"pods/{subresource}")
        if subresource is not None and (name is None or subresource not in resource.subresources):
            raise path_not_found()
        request_ = Request(resource, namespace, name, subresource, query, accept, agent)
        if method == "GET":
            return self._read(request_)
        if method == "POST" and name is None:
            return self._create(resource, namespace, self._decode(body, content_type), request_)
        if name is None:
            raise method_not_allowed(method)
        if method == "PUT":
            return self._replace(request_, self._decode(body, content_type))
        if method == "PATCH":
            return self._patch(request_, content_type, body, user)
        if method == "DELETE" and subresource is None:
            # kubectl sends the options as a DeleteOptions body: {"dryRun": ["All"], "propagationPolicy": …}
            options = self._object(self._decode(body, "json")) if body else {}
            _check_propagation(options.get("propagationPolicy", query.get("propagationPolicy")))
            return self._delete(resource, namespace, name, request_.dry_run or "All" in (options.get("dryRun") or []))
        raise method_not_allowed(method)

    def _document(self, path: str) -> Any:
        if path == "/openapi/v3":
            return openapi.index(self.version)
        if path.startswith("/openapi/v3/"):
            document = openapi.group_version_document(path.removeprefix("/openapi/v3/"), self.version)
            return RawJson(document) if document is not None else None
        return discovery.document(path, self.version)

    def _read(self, request: Request) -> tuple[int, Any]:
        resource, namespace, name, query = request.resource, request.namespace, request.name, request.query
        if query.get("watch") in ("1", "true"):
            if name is not None:  # GET …/<name>?watch=1, the deprecated form, watches that one object
                query = {
                    **query,
                    "fieldSelector": ",".join(filter(None, (query.get("fieldSelector"), f"metadata.name={name}"))),
                }
            stream = watch.events(self.store, self.controllers.refresh, resource, namespace, query)
            return 200, WatchStream(request.presented_events(stream, self.store.revision))
        self.controllers.reconcile()
        if name is not None:
            obj = self.store.get(resource, namespace, name)
            if request.subresource == "scale":
                return 200, scale_of(obj)
            return 200, request.presented([obj], self.store.revision, single=True)
        items = self.store.list(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        return 200, request.presented(items, self.store.revision)

    @staticmethod
    def _decode(body: bytes, content_type: str) -> Any:
        try:
            data = yaml.safe_load(body) if "yaml" in content_type else json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
        if not isinstance(data, dict | list):
            raise bad_request("the body of the request must be an object")
        return data

    @staticmethod
    def _object(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise bad_request("the body of the request must be an object")
        return data

    def _create(self, resource: ResourceType, namespace: str | None, data: Any, request: Request) -> tuple[int, Any]:
        obj = self._object(data)
        admission.check_identity(resource, obj, namespace, None)
        obj.setdefault("metadata", {})
        if resource.namespaced:
            obj["metadata"]["namespace"] = namespace
        if not obj["metadata"].get("name") and obj["metadata"].get("generateName"):
            obj["metadata"]["name"] = obj["metadata"]["generateName"] + secrets.token_hex(3)[:5]
        obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        admission.validate(resource, obj, self.version)
        record_update(obj, request.manager)
        self.defaulter.apply(resource, obj)
        if resource.kind == "Pod":
            self.controllers.admit(obj)
        created = self.store.create(resource, obj, dry_run=request.dry_run)
        self.controllers.reconcile()
        return 201, created

    def _replace(self, request: Request, data: Any) -> tuple[int, Any]:
        """PUT: the whole object (or its status, or its Scale) as sent, if its resourceVersion is still current."""
        resource, name = request.resource, request.name or ""
        sent = self._object(data)
        with self.store.lock:
            live = self.store.get(resource, request.namespace, name)
            wanted_version = (sent.get("metadata") or {}).get("resourceVersion")
            if wanted_version and wanted_version != live["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
            if request.subresource == "scale":
                new = copy.deepcopy(live)
                new["spec"]["replicas"] = replicas_of(sent)
            else:
                admission.check_identity(resource, sent, request.namespace, name)
                new = sent
            return self._write(request, live, new)

    def _patch(self, request: Request, content_type: str, body: bytes, user: rbac.User | None) -> tuple[int, Any]:
        media = content_type.split(";")[0].strip()
        if media in APPLY_TYPES:
            if request.subresource is not None:
                raise unsupported_media_type(media + " on a subresource")
            return self._apply(request, body, user)
        data = self._decode(body, "json")
        with self.store.lock:
            live = self.store.get(request.resource, request.namespace, request.name or "")
            if request.subresource == "scale":
                scale = patched(SCALE, scale_of(live), media, data, self.version)
                new = copy.deepcopy(live)
                new["spec"]["replicas"] = replicas_of(scale)
            else:
                new = patched(request.resource, copy.deepcopy(live), media, data, self.version)
                wanted_version = (new.get("metadata") or {}).get("resourceVersion")
                if wanted_version is not None and wanted_version != live["metadata"]["resourceVersion"]:
                    raise conflict(request.resource, request.name or "")  # a patch that sets one is a precondition
            return self._write(request, live, new)

    def _write(self, request: Request, live: dict[str, Any], new: dict[str, Any]) -> tuple[int, Any]:
        """Store ``new`` in place of ``live`` (under the store lock): a write to the status subresource changes only
        the status, a write to the object never does, as for every kind with a status subresource."""
        resource = request.resource
        if request.subresource == "status":
            new = {**live, "status": new.get("status")}
        elif "status" in resource.subresources:
            new["status"] = live.get("status")
        if new.get("status") is None:
            new.pop("status", None)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        metadata = new.setdefault("metadata", {})
        metadata["name"] = live["metadata"]["name"]
        if resource.namespaced:
            metadata["namespace"] = live["metadata"]["namespace"]
        admission.validate(resource, new, self.version)
        self.defaulter.apply(resource, new)
        record_change(live, new, request.manager)
        result = self.store.update(resource, new, dry_run=request.dry_run)
        self.controllers.reconcile()
        return 200, scale_of(result) if request.subresource == "scale" else result

    def _apply(self, request: Request, body: bytes, user: rbac.User | None) -> tuple[int, Any]:
        resource, namespace, name, query = request.resource, request.namespace, request.name or "", request.query
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
        config = self._object(self._decode(body, "yaml"))
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
            except ApplyConflict as conflict_:
                raise self._conflict(conflict_) from conflict_
            admission.validate(resource, merged, self.version)
            self.defaulter.apply(resource, merged)
            if live is None and resource.kind == "Pod":
                self.controllers.admit(merged)
            if live is None:
                result = self.store.create(resource, merged, dry_run=request.dry_run)
            else:
                result = self.store.update(resource, merged, dry_run=request.dry_run)
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

    def _delete(self, resource: ResourceType, namespace: str | None, name: str, dry_run: bool) -> tuple[int, Any]:
        if dry_run:
            obj = self.store.get(resource, namespace, name)
            return 200, obj if resource.plural in RETURNS_DELETED else success(resource, name, obj["metadata"]["uid"])
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
        if resource.plural in RETURNS_DELETED:
            return 200, removed
        return 200, success(resource, name, removed["metadata"]["uid"])


@dataclass(frozen=True)
class PlainText:
    text: str


@dataclass(frozen=True)
class RawJson:
    data: bytes


@dataclass(frozen=True)
class WatchStream:
    events: Iterator[dict[str, Any] | None]  # None: an idle tick


@dataclass(frozen=True)
class Request:
    """One resource request as the verbs need it: what it names, its options and how the answer is presented."""

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    query: dict[str, str]
    accept: str = ""
    agent: str = ""

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def manager(self) -> str:
        """The field manager: the ``fieldManager`` option, else the user agent's name (``kubectl``,
        ``OpenAPI-Generator``), as the API server derives it."""
        return self.query.get("fieldManager") or (self.agent.split("/")[0] if self.agent else "") or "unknown"

    def presented(self, objects: list[dict[str, Any]], revision: str, single: bool = False) -> dict[str, Any]:
        """A list (or one object) as asked: a Table for ``Accept: …;as=Table``, else the objects themselves."""
        table_version = printing.wants_table(self.accept)
        if table_version is not None:
            include = self.query.get("includeObject") or "Metadata"
            return printing.table(self.resource.kind, objects, revision, table_version, include)
        if single:
            return objects[0]
        for item in objects:  # list items carry no kind/apiVersion: the list does
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{self.resource.kind}List",
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": revision},
            "items": objects,
        }

    def presented_events(
        self, events: Iterator[dict[str, Any] | None], revision: str
    ) -> Iterator[dict[str, Any] | None]:
        """Watch events, their objects as Tables of one row when the watch asked for Tables (``kubectl get -w``)."""
        table_version = printing.wants_table(self.accept)
        for event in events:
            if event is not None and table_version is not None and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                include = self.query.get("includeObject") or "Metadata"
                obj = event["object"]
                event = {
                    **event,
                    "object": printing.table(
                        self.resource.kind,
                        [obj],
                        obj["metadata"].get("resourceVersion", revision),
                        table_version,
                        include,
                    ),
                }
            yield event


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the body waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

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
                self.command,
                parts.path,
                query,
                self.headers.get("Content-Type") or "",
                body,
                user,
                accept=self.headers.get("Accept") or "",
                agent=self.headers.get("User-Agent") or "",
            )
        except ApiError as error:
            code, payload = error.code, error.body
        if isinstance(payload, WatchStream):
            self._stream(payload.events)
            return
        content_type = "application/json"
        if isinstance(payload, PlainText):
            data, content_type = payload.text.encode(), "text/plain; charset=utf-8"
        elif isinstance(payload, RawJson):
            data = payload.data
        else:
            data = json.dumps(payload).encode()
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _client_gone(self) -> bool:
        """A watching client sends nothing after its request: a readable socket means it closed the connection."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return not self.connection.recv(1)
        except (OSError, ValueError):
            return True

    def _stream(self, events: Iterator[dict[str, Any] | None]) -> None:
        """A watch: one chunk per event (HTTP/1.1 chunked encoding), until the watch ends or the client goes (seen
        at the next idle tick, so an abandoned watch stops reconciling within ``watch.TICK``)."""
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.flush()
            for event in events:
                if event is None:
                    if self._client_gone():
                        break
                    continue
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass  # the client stopped watching (kubectl exits, a reflector restarts its watch)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    # socketserver's backlog is 5: a burst of Lambda workers connecting while the accepting thread waits for the GIL
    # would have SYNs dropped and retried 1, 3, 7... seconds later (TcpExtListenOverflows), or TLS handshakes cut.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, api: ApiServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer (a Lambda worker stopped at its timeout, an interrupted kubectl) is not an
        # emulator fault: socketserver would print a traceback for each one. Any other error is still printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(api: ApiServer, ssl_context: Any | None) -> tuple[_HttpServer, threading.Thread]:
    """Bind a free loopback port and serve in a daemon thread; wrap the socket in TLS when given a context."""
    httpd = _HttpServer(api)
    if ssl_context is not None:
        # The handshake happens in the request thread, so a slow or plain-HTTP client cannot stall the accept loop.
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, name="kube-emulator", daemon=True)
    thread.start()
    return httpd, thread


PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


def _check_propagation(policy: Any) -> None:
    """DeleteOptions' propagationPolicy (the body's, else the query's) is one of three or absent: apimachinery's
    ValidateDeleteOptions, answered as 422 Invalid of kind DeleteOptions.meta.k8s.io (apiserver rest/delete.go). The
    real message prints the whole options struct as the invalid value; the emulator prints the policy alone."""
    if policy is None or policy in PROPAGATION_POLICIES:
        return
    wanted = ", ".join(f'"{value}"' for value in PROPAGATION_POLICIES)
    message = f"Invalid value: {json.dumps(policy)}: DeletionPropagation need to be one of {wanted} or nil"
    raise ApiError(
        422,
        "Invalid",
        f'DeleteOptions.meta.k8s.io "" is invalid: : {message}',
        {
            "group": "meta.k8s.io",
            "kind": "DeleteOptions",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": ""}],
        },
    )
