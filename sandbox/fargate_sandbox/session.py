"""One sandbox and its workflow harness, with the API function behind an emulated API Gateway.

The API is reached as in AWS: API Gateway's proxy integration calls Lambda ``Invoke`` on the API function, and here
that ``Invoke`` goes to the sandbox's Lambda endpoint, where the harness runs the real ``functions/api/app.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from botocore.config import Config

from fargate_sandbox.api_authorization import ApiAuthorizer, Refusal
from fargate_sandbox.api_gateway import API_ID, STAGE, RestProxyGateway, Signer
from fargate_sandbox.lifecycle import StartStop
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.seeds import CLUSTER_NAME, REGION
from fargate_sandbox.workflows import Workflows
from kube_emulator import PodTiming

# The SAM template the sandbox runs (its ASL and functions are found beside it): this variable, else ./template.yaml.
TEMPLATE_VARIABLE = "FARGATE_APP_TEMPLATE"
API_FUNCTION = "ApiFunction"
# AWS's times at a twentieth: a 10 s poll pause takes 0.5 s, Fargate's minute to start a pod 3 s and a profile's
# 40 s to become ACTIVE (PROFILE_SECONDS, real seconds) 2 s, so a run takes seconds while the state machine still
# waits and polls as in AWS.
TIME_SCALE = 0.05
PROFILE_SECONDS = 2.0
# The API's host name as a deployed stack's (https://<api-id>.execute-api.<region>.amazonaws.com), signed by ``call``.
API_HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
# API Gateway's integration timeout; the API function's own Timeout (25 s) ends it first.
INTEGRATION_TIMEOUT_SECONDS = 29


class SandboxStartError(RuntimeError):
    """The sandbox or its harness could not start (a missing docker-registry binary, say)."""


def find_template(template: Path | None = None) -> Path:
    """``template``, else $FARGATE_APP_TEMPLATE, else ./template.yaml. Raises: SandboxStartError when it is missing."""
    chosen = template or Path(os.environ.get(TEMPLATE_VARIABLE) or "template.yaml")
    if not chosen.is_file():
        raise SandboxStartError(
            f"no SAM template at {chosen.resolve()}: run from the project's folder, pass --template, or set "
            f"{TEMPLATE_VARIABLE}"
        )
    return chosen.resolve()


class SandboxSession(StartStop):
    """``with SandboxSession() as session: session.api.call("POST", "/apps", request)``."""

    def __init__(
        self,
        *,
        time_scale: float = TIME_SCALE,
        profile_seconds: float = PROFILE_SECONDS,
        environment: Mapping[str, str] | None = None,
        template: Path | None = None,
        pod_timing: PodTiming | None = None,
    ) -> None:
        """``environment``: variables that override the template's for the functions (e.g. a stack parameter);
        ``template``: see ``find_template``; ``pod_timing``: Fargate's pod start and stop (default: its times scaled
        like the workflow's waits)."""
        self.template = template
        self.pod_timing = pod_timing or PodTiming.fargate(time_scale)
        self.time_scale = time_scale
        self.profile_seconds = profile_seconds
        self.environment = dict(environment or {})
        self._stack: ExitStack | None = None
        self._sandbox: Sandbox | None = None
        self._workflows: Workflows | None = None
        self._lambda: Any = None
        # API Gateway's AWS_IAM authorization: every request is SigV4-checked and its caller's identity policies
        # must allow execute-api:Invoke on the method; ``api.call`` signs as the account's administrator.
        self.api = RestProxyGateway(
            self._invoke_api_function,
            authorize=self._authorize_api_call,
            signer=Signer(lambda: self.sandbox.credentials, REGION, API_HOST),
        )
        self._api_authorizer: ApiAuthorizer | None = None

    def start(self) -> SandboxSession:
        """Raises: SandboxStartError naming what failed; whatever started is stopped again."""
        template = find_template(self.template)
        with ExitStack() as stack:
            try:
                self._sandbox = stack.enter_context(
                    Sandbox(
                        profile_create_seconds=self.profile_seconds,
                        profile_delete_seconds=self.profile_seconds,
                        pod_timing=self.pod_timing,
                    )
                )
                self._workflows = stack.enter_context(
                    Workflows(self._sandbox, template, time_scale=self.time_scale, environment=self.environment)
                )
            except (OSError, RuntimeError) as exc:
                raise SandboxStartError(f"the sandbox did not start: {exc}") from exc
            self._check_api_environment()
            self._lambda = self._sandbox.boto3_client(
                "lambda", config=Config(read_timeout=INTEGRATION_TIMEOUT_SECONDS, retries={"total_max_attempts": 1})
            )
            self._stack = stack.pop_all()
        return self

    @property
    def sandbox(self) -> Sandbox:
        assert self._sandbox is not None, "start the session first"
        return self._sandbox

    @property
    def workflows(self) -> Workflows:
        assert self._workflows is not None, "start the session first"
        return self._workflows

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.workflows.history(execution_arn)
        return events

    def wait_for_profiles_settled(self, timeout_s: float) -> None:
        """Until no Fargate profile of the cluster is CREATING or DELETING (bounded): what is left then stays."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            profiles = self.sandbox.fargate_profiles(CLUSTER_NAME)
            if all(p["status"] not in ("CREATING", "DELETING") for p in profiles):
                return
            time.sleep(0.1)

    # --- wiring -----------------------------------------------------------------------------------------------------
    def _check_api_environment(self) -> None:
        """The API function finds the state machines through PROVISION/TEARDOWN_STATE_MACHINE_ARN, which the
        template resolves (``!Ref``) to the ARNs the harness created; a divergence would make every call fail."""
        expected = {
            "PROVISION_STATE_MACHINE_ARN": self.workflows.state_machine_arns["ProvisionStateMachine"],
            "TEARDOWN_STATE_MACHINE_ARN": self.workflows.state_machine_arns["TeardownStateMachine"],
        }
        given = self.workflows.template.functions[API_FUNCTION].environment
        wrong = sorted(name for name, arn in expected.items() if given.get(name) != arn)
        if wrong:
            raise SandboxStartError(f"the API function's {', '.join(wrong)} do not name the sandbox's state machines")

    def _authorize_api_call(
        self, method: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, Any] | Refusal:
        if self._api_authorizer is None:
            self._api_authorizer = ApiAuthorizer(self.sandbox.iam, API_ID, STAGE)
        return self._api_authorizer.authorize(method, target, body, headers)

    def _invoke_api_function(self, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        function = self.workflows.template.functions[API_FUNCTION]
        answer = self._lambda.invoke(FunctionName=function.name, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            return None, str(payload.get("errorType") if isinstance(payload, dict) else answer["FunctionError"])
        return (payload if isinstance(payload, dict) else None), None
