"""A Kubernetes API emulator for tests and the local sandbox (docs/design.md §6.7): never imported by production code.

It is a real HTTPS server on 127.0.0.1 (a free port) that the official ``kubernetes`` client talks to unchanged:
namespaces, deployments, replicasets, services, ingresses, pods, nodes and events; create, get, list, server-side
apply with field ownership and conflicts, delete; ``Status`` error bodies; strict validation with kubernetes-validate;
a deployment controller and a pluggable scheduler; EKS-style bearer-token authentication.

    with KubeEmulator(cluster="blog", scheduler=FargateLikeScheduler(...)) as emulator:
        emulator.endpoint        # https://127.0.0.1:<port>
        emulator.ca_data         # base64 PEM, as DescribeCluster's certificateAuthority.data
"""

from __future__ import annotations

import base64
from types import TracebackType
from typing import Any

from kube_emulator import rbac
from kube_emulator.auth import (
    AllowAll,
    Authenticator,
    EksTokenAuthenticator,
    Identity,
    SignatureVerifier,
    StsReplayVerifier,
)
from kube_emulator.controllers import Controllers
from kube_emulator.resources import BY_KIND
from kube_emulator.scheduling import (
    Bind,
    FargateLikeScheduler,
    ImagePullFailed,
    NoCapacityScheduler,
    PodTiming,
    Scheduler,
    Starting,
    Unschedulable,
    Wait,
    selector_matcher,
    static_profiles,
)
from kube_emulator.server import ApiServer, serve
from kube_emulator.store import Store
from kube_emulator.tls import generate

__all__ = [
    "AllowAll",
    "Authenticator",
    "Bind",
    "EksTokenAuthenticator",
    "FargateLikeScheduler",
    "Identity",
    "ImagePullFailed",
    "KubeEmulator",
    "NoCapacityScheduler",
    "PodTiming",
    "Scheduler",
    "SignatureVerifier",
    "Starting",
    "StsReplayVerifier",
    "Unschedulable",
    "Wait",
    "selector_matcher",
    "static_profiles",
]


class KubeEmulator:
    """Start with ``start()`` or ``with``; ``stop()`` closes the socket and joins the server thread."""

    def __init__(
        self,
        cluster: str = "blog",
        version: str = "1.31",
        authenticator: Authenticator | None = None,
        scheduler: Scheduler | None = None,
        tls: bool = True,
        pod_timing: PodTiming | None = None,
        authorizer: rbac.Authorizer | None = None,
    ) -> None:
        self.cluster = cluster
        self.version = version
        self.store = Store()
        self.scheduler = scheduler or NoCapacityScheduler()
        self.controllers = Controllers(self.store, self.scheduler, pod_timing or PodTiming(), version=version)
        self.api = ApiServer(self.store, self.controllers, authenticator or AllowAll(), version, authorizer)
        self.certificates = generate() if tls else None
        self._httpd: Any = None
        self._thread: Any = None

    def start(self) -> KubeEmulator:
        context = self.certificates.server_context() if self.certificates else None
        self._httpd, self._thread = serve(self.api, context)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.certificates else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> str:
        return self.certificates.ca_pem.decode("ascii") if self.certificates else ""

    @property
    def ca_data(self) -> str:
        """The CA as ``DescribeCluster`` returns it in ``certificateAuthority.data``."""
        return base64.b64encode(self.certificates.ca_pem).decode("ascii") if self.certificates else ""

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a kind after a reconcile (for assertions and the sandbox's reports)."""
        self.controllers.reconcile()
        return self.store.list(BY_KIND[kind], namespace)
