"""``Sandbox``: moto behind the AWS front, the registry front, fault hooks and seeds, started and stopped as one.

    with Sandbox(registry_proxies={"public.ecr.aws": "http://127.0.0.1:5001"}) as sandbox:
        eks = sandbox.boto3_client("eks")        # or AWS_ENDPOINT_URL=sandbox.endpoint_url for any SDK/CLI

Everything listens on free 127.0.0.1 ports; ``stop()`` (also on an exception in the ``with`` block) joins every thread
and closes every socket it opened. Nothing here changes ``os.environ``.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fargate_sandbox import authorization_records
from fargate_sandbox.aws_front import AwsFront, Interceptor
from fargate_sandbox.botocore_preload import share_one_loader
from fargate_sandbox.ecr_rules import PullThroughCache
from fargate_sandbox.eks_rules import FargateProfileRules
from fargate_sandbox.events import EventRouter, Target
from fargate_sandbox.fargate_cluster import ClusterServices, start_cluster, stop_cluster
from fargate_sandbox.faults import FaultInjector
from fargate_sandbox.iam_enforcement import Authorizer
from fargate_sandbox.lifecycle import StartStop
from fargate_sandbox.moto_backend import MotoBackend
from fargate_sandbox.registry_front import RegistryFront
from fargate_sandbox.seeded_registries import SeededRegistries
from fargate_sandbox.seeds import (
    ACCOUNT_ID,
    CLUSTER_NAME,
    KUBERNETES_VERSION,
    REGION,
    UPSTREAM_CREDENTIALS,
    Seeds,
    seed,
)
from kube_emulator import KubeEmulator, PodTiming

EventRule = tuple[str, Mapping[str, Any] | str, Target]


PRELOADED_MODULES = (
    "moto.ec2.models",
    "moto.stepfunctions.models",
    "moto.stepfunctions.parser.models",
    "moto.sts.models",
    "moto.ssm.models",
)
# A read-only call per service the start makes calls to: moto makes a service's app and backend at its first request
# (EC2's first answer alone took 0.55 s), so these run while the registries start, which only waits for processes.
FIRST_CALLS = (
    ("ec2", "describe_vpcs"),
    ("eks", "list_clusters"),
    ("iam", "list_roles"),
    ("secretsmanager", "list_secrets"),
    ("stepfunctions", "list_state_machines"),
    ("dynamodb", "list_tables"),
    ("ssm", "describe_parameters"),
    ("sts", "get_caller_identity"),
)


def _prepare_moto(moto: MotoBackend) -> None:
    """Import moto's slowest models, then make each service's first request (moto serves already)."""
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    for service, operation in FIRST_CALLS:
        # Only a head start: a service that fails here fails the same way when the start really calls it.
        with contextlib.suppress(ClientError, BotoCoreError):
            getattr(moto.client(service), operation)()


class Sandbox(StartStop):
    def __init__(
        self,
        *,
        registry_proxies: Mapping[str, str] | None = None,
        profile_create_seconds: float = 3.0,
        profile_delete_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        event_rules: list[EventRule] | None = None,
        upstream_credentials: Mapping[str, dict[str, str]] | None = None,
        seed_registries: bool = True,
        pod_timing: PodTiming | None = None,
    ) -> None:
        """
        Args:
            registry_proxies: upstreamRegistryUrl → base URL of its pull-through proxy (registry_procs starts them);
                more can be added later with ``set_registry_proxy``.
            profile_create_seconds / profile_delete_seconds: how long a Fargate profile stays CREATING / DELETING.
            clock: the time source of those delays (tests pass ``eks_rules.ManualClock``).
            event_rules: EventBridge rules as (name, EventPattern, target callback), e.g. from template.yaml.
            upstream_credentials: upstream URL → {"username", "accessToken"} its registry accepts (default: seeds).
            seed_registries: start the seeded upstream registries and their pull-through proxies.
            pod_timing: how long the cluster takes to start and stop a Fargate pod (real seconds; e.g.
                ``PodTiming.fargate(time_scale)``: Fargate's times scaled like the workflow's waits). Default: at once.
        """
        share_one_loader()  # moto, the fronts and the harness make many botocore sessions: one read of its data
        self.account_id = ACCOUNT_ID
        self.region = REGION
        self.faults = FaultInjector()
        self.events = EventRouter()
        self._moto = MotoBackend(ACCOUNT_ID, REGION)
        self.profiles = FargateProfileRules(self._moto, clock, profile_create_seconds, profile_delete_seconds)
        self.cache = PullThroughCache(
            self._moto,
            registry_url=lambda: self.registry.url,
            expected_credentials=dict(upstream_credentials or UPSTREAM_CREDENTIALS),
        )
        self.credentials = ("AKIASANDBOX000000000", "sandbox")  # the account administrator's (fake) credential
        self.iam = Authorizer(ACCOUNT_ID, REGION, *self.credentials, admin_client=self._moto.client)
        self.registry = RegistryFront(self.cache, registry_proxies or {}, self.faults, self.iam, REGION)
        self._front = AwsFront(self._moto, self.faults, self.profiles, self.cache, self.events, self.iam)
        for name, pattern, target in event_rules or []:
            self.events.add_rule(name, dict(pattern) if isinstance(pattern, Mapping) else pattern, target)
        self._seed_registries = seed_registries
        self.pod_timing = pod_timing or PodTiming()
        self._upstream_credentials = dict(upstream_credentials or UPSTREAM_CREDENTIALS)
        self.upstreams: SeededRegistries | None = None
        self.kubernetes: KubeEmulator | None = None
        self._stack: ExitStack | None = None
        self._seeds: Seeds | None = None
        self._session_lock = threading.Lock()
        self._session = boto3.session.Session(
            aws_access_key_id=self.credentials[0],
            aws_secret_access_key=self.credentials[1],
            region_name=REGION,
        )

    # --- lifecycle --------------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start moto, the fronts, and seed. If any step fails, whatever already started is stopped again."""
        with ExitStack() as stack:
            self._moto.start()
            stack.callback(self._moto.stop)
            # Importing moto's EC2 and Step Functions models and making its services take seconds, while the
            # registries' start only waits for processes: both at once. Only once moto has started: its start imports
            # moto modules too, and two threads importing modules that import each other deadlock (Python raises
            # _DeadlockError in one of them).
            preparing = threading.Thread(target=_prepare_moto, args=(self._moto,), name="prepare-moto")
            preparing.start()
            stack.callback(preparing.join)
            self._front.start()
            stack.callback(self._front.stop)
            self.registry.start()
            stack.callback(self.registry.stop)
            if self._seed_registries:
                self.upstreams = SeededRegistries(credentials=self._upstream_credentials).start()
                stack.callback(self.upstreams.stop)
                for upstream_url, proxy_url in self.upstreams.proxies.items():
                    self.registry.proxies.setdefault(upstream_url, proxy_url)  # a proxy given explicitly wins
            preparing.join()
            self._seeds = seed(self._moto)
            services = ClusterServices(
                region=self.region,
                account_id=self.account_id,
                administrator_key=self.credentials[0],
                profiles=self.profiles,
                iam=self.iam,
                faults=self.faults,
                registry_url=lambda: self.registry.url,
                aws_client=self.boto3_client,
            )
            self.kubernetes = start_cluster(services, CLUSTER_NAME, KUBERNETES_VERSION, self.pod_timing)
            stack.callback(stop_cluster, services, self.kubernetes)
            self._stack = stack.pop_all()
        return self

    def stop(self) -> None:
        """Stop in reverse order, then record its authorization decisions (``IAM_RESULTS_DIR``); idempotent."""
        if self._close_stack():
            kubernetes = self.kubernetes.api.authorizer if self.kubernetes is not None else None
            authorization_records.write(self.iam.decisions, kubernetes.decisions if kubernetes is not None else {})

    # --- what clients use -------------------------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        """``AWS_ENDPOINT_URL`` for every SDK and the AWS CLI."""
        return self._front.url

    @property
    def registry_url(self) -> str:
        return self.registry.url

    @property
    def seeds(self) -> Seeds:
        assert self._seeds is not None, "start the sandbox first"
        return self._seeds

    def boto3_client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` pointed at the sandbox: one attempt per call unless ``config`` says otherwise,
        so tests see every answer the sandbox gives."""
        kwargs.setdefault("config", Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        # boto3's guide: clients are thread-safe, sessions are not; tests create clients from many threads at once
        with self._session_lock:
            return self._session.client(service, endpoint_url=self.endpoint_url, **kwargs)  # type: ignore[call-overload]

    def moto_client(self, service: str) -> Any:
        """A client straight to moto, bypassing the front's rules and faults (for seeding and assertions)."""
        return self._moto.client(service)

    def intercept_aws(self, interceptor: Interceptor) -> Callable[[], None]:
        """Let ``interceptor`` answer AWS requests before the front's rules and moto (after injected faults); it
        returns ``None`` for requests it leaves alone. Returns the function that removes it again."""
        self._front.interceptors.append(interceptor)
        return lambda: self._front.interceptors.remove(interceptor)

    def set_registry_proxy(self, upstream_registry_url: str, proxy_base_url: str) -> None:
        """Serve ``upstream_registry_url``'s images through another pull-through proxy (benchmarks start their own)."""
        self.registry.proxies[upstream_registry_url] = proxy_base_url

    def fargate_profiles(self, cluster: str) -> list[dict[str, Any]]:
        """The cluster's profiles with their current status, as DescribeFargateProfile answers (for the scheduler)."""
        return self.profiles.profiles(cluster)
