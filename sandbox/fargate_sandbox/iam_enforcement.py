"""IAM in front of moto: every AWS request is authorized against its caller's identity policies, as IAM would.

The caller is the access key of the request's SigV4 signature: the sandbox's own key is the account's administrator;
a key ``sts:AssumeRole`` issued is a session of its role, whose inline and attached policies (read from moto's IAM,
so a change through the IAM API counts at once) are evaluated for each check ``iam_requests`` derives; any other key
is unknown to AWS. Refusals carry the service's own code and IAM's message; what the services check on the caller's
behalf (EKS's and ECR's service-linked roles) is emulated here too. Both, with their sources: docs/sandbox.md
("Authorization"). Every decision is counted (principal, action, resource, allowed, deciding statements) for
docs/iam.md.
"""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fargate_sandbox import iam_policy
from fargate_sandbox.aws_protocol import AwsError, AwsRequest, render_error, service_model
from fargate_sandbox.iam_requests import Check, Lookups, RequestResources, UnboundRequest
from kube_emulator.rbac import origin

Response = tuple[int, dict[str, str], bytes]
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
EKS_FARGATE_SERVICE = "eks-fargate.amazonaws.com"
ECR_CACHE_SERVICE = "pullthroughcache.ecr.amazonaws.com"
# IAM's operations that change nothing (Service Authorization Reference: the "Read" and "List" access levels of IAM
# are the Get*, List* and Simulate* actions): the policies read for authorization stay valid after them.
IAM_READS = ("Get", "List", "Simulate")
# Calls every principal may make whatever its policies say (STS API reference, GetCallerIdentity: "No permissions are
# required to perform this operation").
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
# What a state machine's role needs to log to CloudWatch Logs (Step Functions developer guide, "IAM policies for
# logging to CloudWatch Logs"); these actions take no resource.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)


@dataclass(frozen=True)
class Session:
    """An assumed-role session: what a key of ``sts:AssumeRole`` stands for."""

    role_name: str
    role_arn: str
    session_arn: str
    secret_key: str


@dataclass(frozen=True)
class DecisionRecord:
    principal: str  # the role's name
    action: str
    resource: str
    allowed: bool
    statements: tuple[str, ...]
    why: str
    origin: str = ""  # the test that made the call, when under pytest


class Authorizer:
    def __init__(
        self,
        account: str,
        region: str,
        admin_key: str,
        admin_secret: str,
        admin_client: Callable[[str], Any],
    ) -> None:
        """
        Args:
            admin_key / admin_secret: the sandbox's own credential (the account's administrator).
            admin_client: a boto3 client of moto itself, for reading IAM state (never through the front).
        """
        self.account = account
        self.region = region
        self.admin_key = admin_key
        self.admin_secret = admin_secret
        self._moto = admin_client
        self._sessions: dict[str, Session] = {}
        self._policies: dict[str, dict[str, Any]] = {}
        self._policies_generation = 0  # counts the times IAM changed: a read that spans a change is not kept
        self._policies_reading = threading.Lock()
        self._lock = threading.Lock()
        self._slr_lock = threading.Lock()
        self.enabled = True
        self.decisions: Counter[DecisionRecord] = Counter()
        self.resources = RequestResources(
            account,
            region,
            Lookups(role_path=self._role_path, profile_arn=self._profile_arn, secret_arn=self._secret_arn),
        )

    # --- who is calling ---------------------------------------------------------------------------------------------
    @staticmethod
    def access_key(request: AwsRequest) -> str | None:
        match = _ACCESS_KEY.search(request.headers.get("authorization", ""))
        if match:
            return match.group(1)
        credential = (request.query.get("X-Amz-Credential") or [""])[0]
        return credential.split("/", 1)[0] or None

    def secret_for(self, access_key: str) -> str | None:
        """The secret of a key the sandbox issued (the EKS token check recomputes signatures with it)."""
        if access_key == self.admin_key:
            return self.admin_secret
        session = self._sessions.get(access_key)
        return session.secret_key if session else None

    def arn_for(self, access_key: str) -> str | None:
        """Whom ``sts:GetCallerIdentity`` names for a key: an assumed-role session ARN, or the administrator."""
        if access_key == self.admin_key:
            return f"arn:aws:iam::{self.account}:user/sandbox"
        session = self._sessions.get(access_key)
        return session.session_arn if session else None

    # --- the front's hooks ------------------------------------------------------------------------------------------
    def authorize(self, request: AwsRequest) -> Response | None:
        """The error to answer instead of the request, or None when IAM allows it."""
        if not self.enabled or request.service is None or request.operation is None:
            return None
        refused = self._state_machine_role_checks(request)
        if refused is not None:
            return refused
        key = self.access_key(request)
        if key == self.admin_key:
            return None
        session = self._sessions.get(key or "")
        if session is None:
            return self._unknown_key(request.service)
        try:
            checks = self.resources.checks(request)
        except UnboundRequest as exc:
            return render_error(request.service, AwsError("InternalFailure", f"sandbox IAM emulation: {exc}", 500))
        checks += self._service_linked_role_checks(request, session)
        for check in checks:
            if check.action in ALWAYS_ALLOWED:
                continue
            decision = self._decide(session, check)
            if not decision.allowed:
                if check.action == "iam:GetRole" and check.why.startswith("EKS"):
                    message = (
                        f"Failed to validate if SLR: {check.resource.rsplit('/', 1)[-1]} already exists due to "
                        "missing permissions for 'iam:GetRole'"
                    )
                    return render_error("eks", AwsError("InvalidRequestException", message, 400))
                return self.denied(request.service, session, check, decision)
        return None

    def authorize_checks(self, access_key: str, checks: list[Check]) -> str | None:
        """For calls that do not come through the AWS front (the registry's data plane, authenticated by a token
        issued to ``access_key``): the AccessDenied message of the first check IAM refuses, or None."""
        if not self.enabled or access_key == self.admin_key:
            return None
        session = self._sessions.get(access_key)
        if session is None:
            return "The security token included in the request is invalid."
        for check in checks:
            decision = self._decide(session, check)
            if not decision.allowed:
                return self.message(session, check, decision)
        return None

    def observe(self, request: AwsRequest, response: Response) -> None:
        """What a successful answer changes: a new session (AssumeRole), IAM state (the policy cache), and the
        service-linked roles the services create."""
        status, _headers, body = response
        if status >= 300 or request.service is None:
            return
        if request.service == "sts" and request.operation == "AssumeRole":
            self._register_session(body)
        elif request.service == "iam" and not str(request.operation).startswith(IAM_READS):
            self.forget_policies()
        elif (request.service, request.operation) == ("eks", "CreateFargateProfile"):
            self._ensure_service_linked_role(EKS_FARGATE_SERVICE)
        elif (request.service, request.operation) == ("ecr", "CreatePullThroughCacheRule"):
            self._ensure_service_linked_role(ECR_CACHE_SERVICE)

    # --- evaluation -------------------------------------------------------------------------------------------------
    def _decide(self, session: Session, check: Check) -> iam_policy.Decision:
        context: dict[str, Any] = {
            "aws:PrincipalArn": session.role_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:userid": f"sandbox:{session.session_arn.rsplit('/', 1)[-1]}",
            "aws:RequestedRegion": self.region,
            "aws:SecureTransport": "false",
            **self._resource_tags(check.resource),
            **check.context,
        }
        decision = iam_policy.evaluate(self.policies_of(session.role_name), check.action, check.resource, context)
        record = DecisionRecord(
            session.role_name,
            check.action,
            check.resource,
            decision.allowed,
            decision.statements,
            check.why,
            origin(),
        )
        with self._lock:
            self.decisions[record] += 1
        return decision

    def forget_policies(self) -> None:
        """Read every role's policies again at its next call (after IAM was changed behind the front)."""
        with self._lock:
            self._policies.clear()
            self._policies_generation += 1

    def policies_of(self, role_name: str) -> dict[str, Any]:
        """The role's identity policies, by name: its inline policies and the default versions of attached ones.

        One caller reads them while the others wait for its answer (a burst of first calls would each read IAM),
        and what it read is kept only if IAM did not change meanwhile.
        """
        with self._lock:
            cached = self._policies.get(role_name)
        if cached is not None:
            return cached
        with self._policies_reading:
            with self._lock:
                cached = self._policies.get(role_name)
                generation = self._policies_generation
            if cached is not None:
                return cached
            policies = self._read_policies(role_name)
            with self._lock:
                if generation == self._policies_generation:
                    self._policies[role_name] = policies
            return policies

    def _read_policies(self, role_name: str) -> dict[str, Any]:
        iam = self._moto("iam")
        policies: dict[str, Any] = {}
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            policies[name] = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            policies[attached["PolicyName"]] = document
        return policies

    @staticmethod
    def message(session: Session, check: Check, decision: iam_policy.Decision) -> str:
        reason = (
            "with an explicit deny in an identity-based policy"
            if decision.explicit_deny
            else f"because no identity-based policy allows the {check.action} action"
        )
        return f"User: {session.session_arn} is not authorized to perform: {check.action} on resource: {check.resource} {reason}"

    def denied(self, service: str, session: Session, check: Check, decision: iam_policy.Decision) -> Response:
        message = self.message(session, check, decision)
        protocol = service_model(service).metadata["protocol"]
        if service in ("iam", "sts"):
            error = AwsError("AccessDenied", message, 403)
        elif protocol == "ec2":
            error = AwsError(
                "UnauthorizedOperation", f"You are not authorized to perform this operation. {message}", 403
            )
        elif protocol == "rest-json":
            error = AwsError("AccessDeniedException", message, 403)
        else:
            error = AwsError("AccessDeniedException", message, 400)
        return render_error(service, error)

    @staticmethod
    def _unknown_key(service: str) -> Response:
        message = "The security token included in the request is invalid."
        if service in ("iam", "sts"):
            return render_error(service, AwsError("InvalidClientTokenId", message, 403))
        if service == "ec2":
            return render_error(
                service, AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", 401)
            )
        return render_error(service, AwsError("UnrecognizedClientException", message, 403))

    def _state_machine_role_checks(self, request: AwsRequest) -> Response | None:
        """What Step Functions checks on the state machine's own role whoever calls: with a CloudWatch Logs
        destination, the role must allow the log-delivery actions the Step Functions developer guide lists ("IAM
        policies for logging to CloudWatch Logs"); otherwise CreateStateMachine/UpdateStateMachine fail with
        AccessDeniedException "The state machine IAM Role is not authorized to access the Log Destination"."""
        if request.service != "stepfunctions" or request.operation not in ("CreateStateMachine", "UpdateStateMachine"):
            return None
        params = request.json_body()
        if not (params.get("loggingConfiguration") or {}).get("destinations"):
            return None
        role_arn = str(params.get("roleArn") or "")
        if not role_arn:  # an update that keeps the role: the one the state machine has
            described = self._moto("stepfunctions").describe_state_machine(stateMachineArn=params["stateMachineArn"])
            role_arn = str(described["roleArn"])
        role_name = role_arn.rsplit("/", 1)[-1]
        session = Session(role_name, role_arn, f"arn:aws:sts::{self.account}:assumed-role/{role_name}/states", "")
        for action in LOG_DELIVERY_ACTIONS:
            if not self._decide(session, Check(action, "*", {}, "Step Functions checks its log delivery")).allowed:
                message = "The state machine IAM Role is not authorized to access the Log Destination"
                return render_error("stepfunctions", AwsError("AccessDeniedException", message, 400))
        return None

    # --- sessions and service-linked roles --------------------------------------------------------------------------
    def _register_session(self, body: bytes) -> None:
        namespace = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
        root = ElementTree.fromstring(body)  # noqa: S314 - moto's own answer, not outside input
        key = root.findtext(".//sts:Credentials/sts:AccessKeyId", namespaces=namespace)
        secret = root.findtext(".//sts:Credentials/sts:SecretAccessKey", namespaces=namespace)
        session_arn = root.findtext(".//sts:AssumedRoleUser/sts:Arn", namespaces=namespace)
        if not (key and secret and session_arn):
            return
        role_name = session_arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
        role_arn = f"arn:aws:iam::{self.account}:role{self._role_path(role_name) or '/'}{role_name}"
        with self._lock:
            self._sessions[key] = Session(role_name, role_arn, session_arn, secret)

    def _service_linked_role_checks(self, request: AwsRequest, session: Session) -> list[Check]:
        service = {
            ("eks", "CreateFargateProfile"): EKS_FARGATE_SERVICE,
            ("ecr", "CreatePullThroughCacheRule"): ECR_CACHE_SERVICE,
        }.get((request.service or "", request.operation or ""))
        if service is None:
            return []
        arn = self.resources.service_linked_role_arn(service)
        owner = "EKS" if service == EKS_FARGATE_SERVICE else "ECR"
        if self._role_path(arn.rsplit("/", 1)[-1]) is None:
            return [
                Check(
                    "iam:CreateServiceLinkedRole",
                    arn,
                    {"iam:AWSServiceName": service},
                    f"{owner} creates its service-linked role",
                )
            ]
        if service == EKS_FARGATE_SERVICE:
            return [Check("iam:GetRole", arn, {}, "EKS checks that its service-linked role exists")]
        return []

    def _ensure_service_linked_role(self, service: str) -> None:
        """The role the service creates on its first use, with AWS's name (moto's ``CreateServiceLinkedRole`` derives
        another, e.g. ``AWSServiceRoleForeks-fargate``), path and trust policy."""
        name = self.resources.service_linked_role_arn(service).rsplit("/", 1)[-1]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": [service]}, "Action": ["sts:AssumeRole"]}],
        }
        with self._slr_lock:  # concurrent first calls: the service creates its role once
            if self._role_path(name) is None:
                self._moto("iam").create_role(
                    RoleName=name, Path=f"/aws-service-role/{service}/", AssumeRolePolicyDocument=json.dumps(trust)
                )

    # --- lookups in the account -------------------------------------------------------------------------------------
    def _resource_tags(self, arn: str) -> dict[str, str]:
        """``aws:ResourceTag/<key>`` (and the service's own ``<service>:ResourceTag/<key>``) of an existing IAM role
        or EKS Fargate profile: the resource types whose tags the template's conditions read."""
        tags: dict[str, str] = {}
        try:
            if ":role/" in arn and ":iam::" in arn:
                listed = self._moto("iam").list_role_tags(RoleName=arn.rsplit("/", 1)[-1])["Tags"]
                tags = {tag["Key"]: tag["Value"] for tag in listed}
                prefix = "iam"
            elif ":fargateprofile/" in arn:
                _, cluster, profile, _uuid = arn.split(":", 5)[5].split("/")
                described = self._moto("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=profile)
                tags = dict(described["fargateProfile"].get("tags") or {})
                prefix = "eks"
            else:
                return {}
        except Exception:  # the resource does not exist (yet): it has no tags
            return {}
        context = {f"aws:ResourceTag/{key}": value for key, value in tags.items()}
        context.update({f"{prefix}:ResourceTag/{key}": value for key, value in tags.items()})
        return context

    def _role_path(self, name: str) -> str | None:
        iam = self._moto("iam")
        try:
            return str(iam.get_role(RoleName=name)["Role"]["Path"])
        except iam.exceptions.NoSuchEntityException:
            return None

    def _profile_arn(self, cluster: str, profile: str) -> str | None:
        eks = self._moto("eks")
        try:
            return str(
                eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=profile)["fargateProfile"][
                    "fargateProfileArn"
                ]
            )
        except Exception:
            return None

    def _secret_arn(self, secret: str) -> str | None:
        manager = self._moto("secretsmanager")
        try:
            return str(manager.describe_secret(SecretId=secret)["ARN"])
        except Exception:
            return None
