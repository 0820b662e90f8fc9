"""EKS Fargate profile rules moto lacks, applied in the front around moto's EKS.

Sources (cited in docs/sandbox.md):
- EKS API reference, CreateFargateProfile: "only private subnets (with no direct route to an Internet Gateway) are
  accepted"; up to five selectors, a namespace in each; ``clientRequestToken`` for idempotency.
- EKS user guide, "Define which Pods use AWS Fargate when launched": status CREATING then ACTIVE; "you can only have
  one Fargate profile in a cluster in the CREATING or DELETING status at a time"; a deleted profile is DELETING first.
- Error texts as EKS returns them (seen in terraform-provider-aws #16272, hashicorp/terraform #25059,
  awslabs/eks-perf-tests #195): "Cannot create Fargate Profile X because cluster C currently has Fargate profile Y in
  status CREATING", "Cannot Delete Fargate Profile X because cluster C currently has Fargate profile Y in status
  DELETING", "Subnet S provided in Fargate Profile is not a private subnet".

Design: moto keeps the profile objects (ARN, selectors, tags); this module keeps only a timeline per profile and
overlays the status on moto's answers. Time is read lazily from a clock (no timer threads): a profile is CREATING
until ``created + create_seconds``, DELETING until ``deleted + delete_seconds``, and the deletion is passed to moto on
the first request after that. Overlaying the wire answers depends only on the EKS API, not on moto's internal
classes, so a moto upgrade cannot silently break it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fargate_sandbox.aws_protocol import AwsError, AwsRequest
from fargate_sandbox.moto_backend import MotoBackend

MAX_SELECTORS = 5
# Fargate profiles per cluster (Amazon EKS service quotas, "Fargate profiles per cluster": 10, not adjustable).
MAX_PROFILES_PER_CLUSTER = 10
IN_PROGRESS = ("CREATING", "DELETING")
Response = tuple[int, dict[str, str], bytes]
Forward = Callable[[AwsRequest], Response]
Clock = Callable[[], float]
HANDLED_OPERATIONS = frozenset(
    {"CreateFargateProfile", "DescribeFargateProfile", "ListFargateProfiles", "DeleteFargateProfile", "DescribeCluster"}
)


class ManualClock:
    """A clock tests move by hand, so "still CREATING" and "now ACTIVE" never depend on machine speed."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class _Timeline:
    token: str | None
    active_at: float
    gone_at: float | None = None

    def status(self, now: float) -> str | None:
        """CREATING, ACTIVE, DELETING, or None once the deletion has completed."""
        if self.gone_at is not None:
            return "DELETING" if now < self.gone_at else None
        return "CREATING" if now < self.active_at else "ACTIVE"


class EksProfileError(Exception):
    def __init__(self, error: AwsError) -> None:
        super().__init__(error.message)
        self.error = error


def _invalid(message: str) -> EksProfileError:
    return EksProfileError(AwsError("InvalidParameterException", message, 400))


class FargateProfileRules:
    def __init__(
        self, moto: MotoBackend, clock: Clock = time.monotonic, create_seconds: float = 3.0, delete_seconds: float = 3.0
    ) -> None:
        self._moto = moto
        self._clock = clock
        self.create_seconds = create_seconds
        self.delete_seconds = delete_seconds
        self._timelines: dict[tuple[str, str], _Timeline] = {}
        self._endpoints: dict[str, tuple[str, str]] = {}
        # One lock: the one-at-a-time rule must see and record a CREATING profile atomically.
        self._lock = threading.RLock()
        # Called (cluster, profile) when a profile's deletion starts, outside the lock: EKS deletes the pods it
        # scheduled (EKS user guide, "Delete a Fargate profile").
        self.on_delete: Callable[[str, str], None] | None = None

    def handle(self, request: AwsRequest, forward: Forward) -> Response:
        """Answer one of HANDLED_OPERATIONS. Raises EksProfileError for a rule violation."""
        cluster = request.path_params.get("name", "")
        if request.operation != "DescribeCluster" and not self._cluster_exists(cluster):
            # moto answers 500 (a KeyError) for profile calls on a missing cluster; EKS answers 404 with this text.
            raise EksProfileError(AwsError("ResourceNotFoundException", f"No cluster found for name: {cluster}.", 404))
        # Every call is judged at one reading of the clock: with two, a deletion ending in between would be seen
        # pending by the first and over by the second (a profile listed without a status, or deleted again).
        if request.operation == "DeleteFargateProfile":
            name = request.path_params.get("fargateProfileName", "")
            with self._lock:
                now = self._clock()
                self._finish_deletions(now)
                response = self._delete(cluster, name, request, forward, now)
            if response[0] == 200 and self.on_delete is not None:
                self.on_delete(cluster, name)  # outside the lock: the cluster reads profiles under its own lock
            return response
        with self._lock:
            now = self._clock()
            self._finish_deletions(now)
            if request.operation == "CreateFargateProfile":
                return self._create(cluster, request, forward, now)
            status, headers, body = forward(request)
            if request.operation == "DescribeFargateProfile" and status == 200:
                body = self._overlay(body, now)
            if request.operation == "DescribeCluster" and status == 200:
                body = self._complete_cluster(cluster, body)
            return status, headers, body

    def _cluster_exists(self, cluster: str) -> bool:
        eks = self._moto.client("eks")
        try:
            eks.describe_cluster(name=cluster)
        except eks.exceptions.ResourceNotFoundException:
            return False
        return True

    def _complete_cluster(self, cluster: str, body: bytes) -> bytes:
        """Add what EKS's DescribeCluster returns and moto omits: ``resourcesVpcConfig.vpcId`` (derived from the
        subnets, as EKS does) and the Kubernetes endpoint and CA of the emulator once one is plugged in."""
        answer = json.loads(body)
        vpc_config = answer["cluster"].setdefault("resourcesVpcConfig", {})
        subnets = vpc_config.get("subnetIds") or []
        if subnets and not vpc_config.get("vpcId"):
            found = self._moto.client("ec2").describe_subnets(SubnetIds=subnets[:1])["Subnets"]
            vpc_config["vpcId"] = found[0]["VpcId"] if found else None
        if cluster in self._endpoints:
            endpoint, ca_data = self._endpoints[cluster]
            answer["cluster"]["endpoint"] = endpoint
            answer["cluster"]["certificateAuthority"] = {"data": ca_data}
        return json.dumps(answer).encode()

    def set_cluster_endpoint(self, cluster: str, endpoint: str, certificate_authority_data: str) -> None:
        """Hook for the Kubernetes emulator: DescribeCluster answers its URL and base64 CA bundle (as EKS does)."""
        with self._lock:
            self._endpoints[cluster] = (endpoint, certificate_authority_data)

    def profiles(self, cluster: str) -> list[dict[str, Any]]:
        """The cluster's profiles as DescribeFargateProfile shows them (the Fargate scheduler reads this)."""
        eks = self._moto.client("eks")
        with self._lock:
            now = self._clock()  # one reading, as in ``handle``
            self._finish_deletions(now)
            names = eks.list_fargate_profiles(clusterName=cluster).get("fargateProfileNames", [])
            profiles = []
            for name in names:
                profile = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]
                timeline = self._timelines.get((cluster, name))
                if timeline is not None:
                    profile["status"] = timeline.status(now)
                profiles.append(profile)
            return profiles

    # --- operations -------------------------------------------------------------------------------------------------
    def _create(self, cluster: str, request: AwsRequest, forward: Forward, now: float) -> Response:
        params = request.json_body()
        name = str(params.get("fargateProfileName", ""))
        token = params.get("clientRequestToken")
        replay = self._timelines.get((cluster, name))
        if token and replay is not None and replay.token == token and replay.gone_at is None:
            if self._exists(cluster, name):
                # EKS idempotency: a retried request with the same token answers the profile the first one created.
                return self._describe_as_response(cluster, name, 200, now)
            # Removed behind the API's back (a test cleaning moto directly): nothing to replay, a new create.
            self._timelines.pop((cluster, name), None)
        self._check_selectors(params.get("selectors") or [])
        self._check_subnets(params.get("subnets") or [])
        self._check_quota(cluster)
        self._check_one_in_progress(cluster, name, "create", now)
        status, headers, body = forward(request)
        if status == 200:
            self._timelines[(cluster, name)] = _Timeline(token=token, active_at=now + self.create_seconds)
            body = self._overlay(body, now)
        return status, headers, body

    def _delete(self, cluster: str, name: str, request: AwsRequest, forward: Forward, now: float) -> Response:
        timeline = self._timelines.get((cluster, name))
        if timeline is not None or self._exists(cluster, name):
            self._check_one_in_progress(cluster, name, "Delete", now, include_self=True)
        else:
            # Unknown profile or cluster: moto answers ResourceNotFoundException as EKS does.
            return forward(request)
        if timeline is None:  # a profile created before the front saw it (seeded directly in moto)
            timeline = _Timeline(token=None, active_at=now)
            self._timelines[(cluster, name)] = timeline
        timeline.gone_at = now + self.delete_seconds
        return self._describe_as_response(cluster, name, 200, now)

    # --- rules ------------------------------------------------------------------------------------------------------
    def _check_selectors(self, selectors: list[dict[str, Any]]) -> None:
        if len(selectors) > MAX_SELECTORS:
            raise _invalid("Request contains more than 5 Selectors")
        # The per-selector rules (a namespace in each, at most 5 labels) are moto's, with EKS's texts.

    def _check_quota(self, cluster: str) -> None:
        existing = self._moto.client("eks").list_fargate_profiles(clusterName=cluster).get("fargateProfileNames", [])
        if len(existing) >= MAX_PROFILES_PER_CLUSTER:
            # The code is the API reference's (CreateFargateProfile errors); the wording is the sandbox's own.
            raise EksProfileError(
                AwsError(
                    "ResourceLimitExceededException",
                    f"Fargate profile limit exceeded: cluster {cluster} already has {len(existing)} Fargate profiles "
                    f"(at most {MAX_PROFILES_PER_CLUSTER} per cluster)",
                    400,
                )
            )

    def _check_subnets(self, subnets: list[str]) -> None:
        ec2 = self._moto.client("ec2")
        for subnet in subnets:
            found = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["Subnets"]
            if not found:
                raise _invalid(f"The subnet ID '{subnet}' does not exist")
            if _routes_to_internet_gateway(ec2, subnet, found[0]["VpcId"]):
                raise _invalid(f"Subnet {subnet} provided in Fargate Profile is not a private subnet")

    def _check_one_in_progress(
        self, cluster: str, name: str, verb: str, now: float, include_self: bool = False
    ) -> None:
        for (other_cluster, other), timeline in sorted(self._timelines.items()):
            if other_cluster != cluster or (other == name and not include_self):
                continue
            status = timeline.status(now)
            if status in IN_PROGRESS:
                raise EksProfileError(
                    AwsError(
                        "ResourceInUseException",
                        f"Cannot {verb} Fargate Profile {name} because cluster {cluster} currently has Fargate "
                        f"profile {other} in status {status}",
                        409,
                    )
                )

    # --- helpers ----------------------------------------------------------------------------------------------------
    def _finish_deletions(self, now: float) -> None:
        eks = self._moto.client("eks")
        for (cluster, name), timeline in list(self._timelines.items()):
            if timeline.gone_at is not None and timeline.status(now) is None:
                # The cluster may have gone first: then so has the profile.
                with contextlib.suppress(eks.exceptions.ResourceNotFoundException):
                    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName=name)
                del self._timelines[(cluster, name)]

    def _overlay(self, body: bytes, now: float) -> bytes:
        answer = json.loads(body)
        profile = answer.get("fargateProfile") or {}
        timeline = self._timelines.get((profile.get("clusterName", ""), profile.get("fargateProfileName", "")))
        if timeline is not None:
            profile["status"] = timeline.status(now)
        return json.dumps(answer).encode()

    def _exists(self, cluster: str, name: str) -> bool:
        names = self._moto.client("eks").list_fargate_profiles(clusterName=cluster).get("fargateProfileNames", [])
        return name in names

    def _describe_as_response(self, cluster: str, name: str, wrap_status: int, now: float) -> Response:
        profile = self._moto.client("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=name)
        body = json.dumps({"fargateProfile": profile["fargateProfile"]}, default=_json_default).encode()
        return wrap_status, {"Content-Type": "application/json"}, self._overlay(body, now)


def _json_default(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()  # EKS's restJson timestamps are epoch seconds
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _routes_to_internet_gateway(ec2: Any, subnet: str, vpc_id: str) -> bool:
    """The VPC user guide's definition of a public subnet: its route table (explicit, else main) has an igw route."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    explicit = [t for t in tables if any(a.get("SubnetId") == subnet for a in t.get("Associations", []))]
    main = [t for t in tables if any(a.get("Main") for a in t.get("Associations", []))]
    table = (explicit or main or [None])[0]
    return table is not None and any(str(r.get("GatewayId", "")).startswith("igw-") for r in table.get("Routes", []))
