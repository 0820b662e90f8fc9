"""The template's state machines run by moto's Step Functions interpreter, Lambda tasks dispatched to the real handlers.

    with Sandbox() as sandbox, Workflows(sandbox, "template.yaml", time_scale=0.01) as workflows:
        arn = workflows.start("ProvisionStateMachine", request)
        outcome = workflows.wait(arn, timeout_s=60)        # DescribeExecution's answer once it is no longer RUNNING
        workflows.state_order(arn)                          # ["ValidateRequest", "EnsurePodExecutionRole", …]

``open()`` deploys what the stack would (the functions' roles, their EKS access entries, SSM parameters, every state
machine with its substitutions), sends the interpreter's AWS calls to the sandbox's front — where ``lambda:Invoke``
of a template function runs its handler in an execution environment of its own (``lambda_dispatch``) — makes the
interpreter fail as AWS does (``sfn_semantics``), scales Wait states and Retry pauses by ``time_scale``, and
registers the template's EventBridge rules. Leaving the ``with`` stops the executions still running and undoes the patches,
which are process-wide: one ``Workflows`` is open per process at a time. What is scaled and what runs in real time:
docs/sandbox.md.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config

from fargate_sandbox import sfn_semantics
from fargate_sandbox.cluster_setup import apply_as_creator, documented_manifests
from fargate_sandbox.lambda_dispatch import Invocation, LambdaDispatcher
from fargate_sandbox.lifecycle import HoldsStack
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.seeds import CLUSTER_NAME
from fargate_sandbox.stack_roles import deploy as deploy_roles
from fargate_sandbox.stack_roles import stack_roles
from fargate_sandbox.template_model import Deployment, EventRuleSpec, FunctionSpec, SandboxTemplate, load_template

# wait() asks DescribeExecution again when an execution of the interpreter ends, and at least this often (an end
# it is not told of: none known, the interval is a safety net). Polling every 20 ms instead cost a third of a
# worker's CPU while tests waited, every poll a signed call through the front, IAM and moto.
POLL_SECONDS = 0.25
_INTERPRETER_PACKAGE = "moto.stepfunctions.parser"
_BOTO_CLIENT_MODULE = f"{_INTERPRETER_PACKAGE}.asl.utils.boto_client"
_WAIT_MODULE = f"{_INTERPRETER_PACKAGE}.asl.component.state.wait.wait_function.wait_function"
_RETRIER_MODULE = f"{_INTERPRETER_PACKAGE}.asl.component.common.retry.retrier_decl"
_ENVIRONMENT_MODULE = f"{_INTERPRETER_PACKAGE}.asl.eval.environment"
_EXECUTION_MODULE = f"{_INTERPRETER_PACKAGE}.backend.execution"
# Interpreter modules that call boto_client_for (imported up front so their `from … import` binding is patched).
_AWS_CALLING_MODULES = [
    f"{_INTERPRETER_PACKAGE}.asl.component.state.exec.state_task.lambda_eval_utils",
    f"{_INTERPRETER_PACKAGE}.asl.component.state.exec.state_task.service.state_task_service_factory",
    f"{_INTERPRETER_PACKAGE}.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    f"{_INTERPRETER_PACKAGE}.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
]
_open_lock = threading.Lock()
_open_workflows: list[Workflows] = []


class ExecutionTimeout(TimeoutError):
    """An execution was still RUNNING when ``Workflows.wait`` gave up."""


class Workflows(HoldsStack):
    def __init__(
        self,
        sandbox: Sandbox,
        template_path: str | Path,
        *,
        time_scale: float = 1.0,
        environment: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        cluster_setup: str | Path | None = None,
    ) -> None:
        """
        Args:
            sandbox: a started sandbox.
            template_path: the SAM template whose functions and state machines run.
            time_scale: factor applied to Wait states and Retry pauses (0.01 → a 30 s Wait lasts 0.3 s; 0 → none).
            environment: variables that override the template's for this run (e.g. shorter polling).
            parameter_overrides: template parameter values instead of their defaults.
            cluster_setup: the document whose ``yaml`` blocks an operator applies to the cluster before the stack's
                Kubernetes steps work; default: ``docs/eks-access.md`` beside the template, when there is one.

        Raises:
            TemplateError: the template breaks the one-environment rule or cannot be resolved.
        """
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.sandbox = sandbox
        self.time_scale = time_scale
        # Deployed as the README says: with the cluster's name, so the stack makes its EKS access entries.
        overrides = {"ClusterName": CLUSTER_NAME, **(parameter_overrides or {})}
        deployment = Deployment(sandbox.account_id, sandbox.region, parameter_overrides=overrides)
        self.template: SandboxTemplate = load_template(template_path, deployment)
        self.stack = stack_roles(Path(template_path), deployment)
        beside_template = Path(template_path).parent / "docs" / "eks-access.md"
        self.cluster_setup = (
            Path(cluster_setup) if cluster_setup else beside_template if beside_template.exists() else None
        )
        self._credentials: dict[str, dict[str, str]] = {}
        self.dispatcher = LambdaDispatcher(self.template, self._function_environment)
        self._environment_overrides = dict(environment or {})
        self._stack: ExitStack | None = None
        self._sfn: Any = None
        self._patches: _InterpreterPatches | None = None
        self._started: list[str] = []
        self._started_lock = threading.Lock()
        self.state_machine_arns: dict[str, str] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------------
    def open(self) -> Workflows:
        """Environment, state machines, interpreter patches and event rules, in that order; undone if a step fails.

        Raises:
            RuntimeError: another ``Workflows`` is open in this process (the patches are process-wide).
        """
        with _open_lock:
            if _open_workflows:
                raise RuntimeError("another Workflows is open in this process; leave it first")
            _open_workflows.append(self)
        with ExitStack() as stack:
            stack.callback(_open_workflows.remove, self)
            self._sfn = self.sandbox.boto3_client("stepfunctions")
            deploy_roles(self.sandbox.boto3_client("iam"), self.stack.roles)
            self._credentials = self._assume_function_roles()
            self._install_access_entries()
            if self.cluster_setup is not None and self.sandbox.kubernetes is not None:
                apply_as_creator(self.sandbox.kubernetes, documented_manifests(self.cluster_setup))
            ssm = self.sandbox.boto3_client("ssm")
            for parameter in self.template.parameters:
                ssm.put_parameter(Name=parameter.name, Type=parameter.type, Value=parameter.value, Overwrite=True)
            self._create_tables()
            self.deploy_state_machines()
            self._patches = stack.enter_context(_InterpreterPatches(self.sandbox, self.time_scale))
            stack.callback(self.sandbox.intercept_aws(self.dispatcher.intercept))
            stack.callback(self.dispatcher.stop)
            # Closing runs these in reverse: executions stop first, while their Lambda calls still reach the handlers.
            stack.callback(self._stop_running_executions)
            for rule in self.template.event_rules:
                self.sandbox.events.add_rule(rule.name, dict(rule.pattern), self._event_target(rule))
            self._stack = stack.pop_all()
        return self

    def _create_tables(self) -> None:
        """The template's tables, once per sandbox: a stack opened again finds its data, as an updated stack would."""
        dynamodb = self.sandbox.boto3_client("dynamodb")
        for table in self.template.tables:
            try:
                dynamodb.create_table(TableName=table.name, **table.create)
            except dynamodb.exceptions.ResourceInUseException:
                continue

    def __enter__(self) -> Workflows:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        """Stop running executions, undo the patches, restore ``os.environ``; idempotent."""
        self._close_stack()

    # --- executions -------------------------------------------------------------------------------------------------
    def start(self, state_machine: str, input: Any, name: str | None = None, role_arn: str | None = None) -> str:
        """StartExecution of the template's state machine ``state_machine`` (logical id); its execution ARN.

        Args:
            role_arn: start it as a session of this role (EventBridge's target role), not as the administrator.

        Raises:
            KeyError: the template has no such state machine.
            RuntimeError: the harness is not open.
            ClientError: AccessDeniedException when ``role_arn`` may not start it.
        """
        if self._stack is None:
            raise RuntimeError("Workflows is not open")
        sfn = self._sfn
        if role_arn is not None and self._patches is not None:
            sfn = self._patches.client_for(self.sandbox.region, "stepfunctions", role_arn)
        answer = sfn.start_execution(
            stateMachineArn=self.state_machine_arns[state_machine],
            name=name or str(uuid.uuid4()),  # as StartExecution without a name; moto would name it "None"
            input=json.dumps(input),
        )
        arn: str = answer["executionArn"]
        with self._started_lock:
            self._started.append(arn)
        return arn

    def describe(self, execution_arn: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._sfn.describe_execution(executionArn=execution_arn)
        answer.pop("ResponseMetadata", None)
        return answer

    def wait(self, execution_arn: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """DescribeExecution's answer once the execution is no longer RUNNING.

        Raises:
            ExecutionTimeout: still RUNNING after ``timeout_s`` (the message lists the states entered so far).
        """
        assert self._patches is not None, "wait() needs an open Workflows"
        deadline = time.monotonic() + timeout_s
        while True:
            ends_seen = self._patches.ends
            answer = self.describe(execution_arn)
            if answer["status"] != "RUNNING":
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExecutionTimeout(
                    f"{execution_arn} still RUNNING after {timeout_s} s; states: {self.state_order(execution_arn)}"
                )
            self._patches.wait_for_an_end(ends_seen, min(POLL_SECONDS, remaining))

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """GetExecutionHistory, every page, oldest first."""
        events: list[dict[str, Any]] = []
        for page in self._sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return events

    def state_order(self, execution_arn: str) -> list[str]:
        """The names of the states entered, in order (a state retried in place is entered once)."""
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.history(execution_arn)
            if event["type"].endswith("StateEntered")
        ]

    def executions(self) -> list[str]:
        """ARNs of every execution started through this harness (directly or by an event), oldest first."""
        with self._started_lock:
            return list(self._started)

    def invocations(self, function: str | None = None) -> list[Invocation]:
        """Lambda invocations so far, of one function (logical id) or all."""
        if function is None:
            return list(self.dispatcher.invocations)
        return self.dispatcher.invocations_of(function)

    # --- wiring -----------------------------------------------------------------------------------------------------
    def _function_environment(self, function: FunctionSpec) -> dict[str, str]:
        """What Lambda gives the function's execution environment (its reserved variables, developer guide "Defined
        runtime environment variables"), its own variables, and the sandbox's endpoint; overrides win."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": self.sandbox.region,
            "AWS_DEFAULT_REGION": self.sandbox.region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            **self._credentials[function.logical_id],
            **function.environment,
            "AWS_ENDPOINT_URL": self.sandbox.endpoint_url,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            **self._environment_overrides,
        }

    def _assume_function_roles(self) -> dict[str, dict[str, str]]:
        """Each function's credentials, as Lambda gets them: a session of its own role (AssumeRole, session named
        after the function)."""
        sts = self.sandbox.boto3_client("sts")
        found = {}
        for logical_id, function in self.template.functions.items():
            role = self.stack.roles[self.stack.function_roles[logical_id]]
            arn = f"arn:aws:iam::{self.sandbox.account_id}:role/{role.name}"
            issued = sts.assume_role(RoleArn=arn, RoleSessionName=function.name)["Credentials"]
            found[logical_id] = {
                "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
                "AWS_SESSION_TOKEN": issued["SessionToken"],
            }
        return found

    def _install_access_entries(self) -> None:
        """The template's EKS access entries, as CloudFormation creates them (CreateAccessEntry, then
        AssociateAccessPolicy for each policy), in the cluster they name."""
        from kube_emulator import rbac

        kubernetes = self.sandbox.kubernetes
        if kubernetes is None or kubernetes.api.authorizer is None:
            return
        for entry in self.stack.access_entries:
            if entry.get("ClusterName") != kubernetes.cluster:
                continue
            policies = tuple(
                rbac.AccessPolicyAssociation(
                    str(policy["PolicyArn"]).rsplit("/", 1)[-1],
                    tuple((policy.get("AccessScope") or {}).get("Namespaces") or ()),
                )
                for policy in entry.get("AccessPolicies") or []
            )
            kubernetes.api.authorizer.add_entry(
                rbac.AccessEntry(
                    principal_arn=str(entry["PrincipalArn"]),
                    username=entry.get("Username"),
                    groups=tuple(entry.get("KubernetesGroups") or ()),
                    policies=policies,
                )
            )

    def deploy_state_machines(self) -> None:
        """Create the template's state machines, or update them as a stack update would.

        Raises:
            ClientError: AccessDeniedException when a state machine's role may not deliver its logs.
        """
        for logical_id, machine in self.template.state_machines.items():
            self.state_machine_arns[logical_id] = self._create_state_machine(
                machine.name, machine.definition(), machine.role_arn, machine.logging
            )

    def _create_state_machine(
        self, name: str, definition: str, role_arn: str, logging: Mapping[str, Any] | None = None
    ) -> str:
        """Create, or update when an earlier harness of this process created it (moto's state is per process).

        Raises:
            ClientError: AccessDeniedException when the role may not deliver the state machine's logs.
        """
        options: dict[str, Any] = {"definition": definition, "roleArn": role_arn}
        if logging is not None:
            options["loggingConfiguration"] = dict(logging)
        for page in self._sfn.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == name:
                    self._sfn.update_state_machine(stateMachineArn=machine["stateMachineArn"], **options)
                    return str(machine["stateMachineArn"])
        answer = self._sfn.create_state_machine(name=name, **options)
        return str(answer["stateMachineArn"])

    def _event_target(self, rule: EventRuleSpec) -> Callable[[dict[str, Any]], None]:
        def start_from_event(event: dict[str, Any]) -> None:
            if self._stack is None:  # the sandbox's router outlives this harness; its rules must not act after it
                raise RuntimeError(f"rule {rule.name}: the Workflows harness is closed")
            if rule.input is not None:
                payload: Any = json.loads(rule.input)
            elif rule.input_path:
                payload = _select(event, rule.input_path)
            else:
                payload = event
            self.start(rule.state_machine, payload, role_arn=rule.role_arn)

        return start_from_event

    def _stop_running_executions(self) -> None:
        for arn in self.executions():
            if self.describe(arn)["status"] == "RUNNING":
                self._sfn.stop_execution(executionArn=arn, error="Sandbox.Closed", cause="Workflows harness closed")


def _select(event: dict[str, Any], path: str) -> Any:
    """EventBridge ``InputPath`` for the plain ``$.a.b`` paths templates use."""
    value: Any = event
    for key in [part for part in path.removeprefix("$").split(".") if part]:
        value = value[key]
    return value


class _InterpreterPatches:
    """moto interpreter → sandbox front, and scaled Wait/Retry sleeps; everything restored on exit."""

    def __init__(self, sandbox: Sandbox, time_scale: float) -> None:
        self.sandbox = sandbox
        self.time_scale = time_scale
        self._undo: list[Callable[[], None]] = []
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._clients_lock = threading.Lock()
        # One session makes every client (each with its own credentials): its loader reads each service's model once
        self._boto3_session = boto3.session.Session()
        self._ended = threading.Condition()
        self.ends = 0  # executions the interpreter ended so far

    def wait_for_an_end(self, ends_seen: int, timeout_s: float) -> None:
        """Return once an execution ended after ``ends`` was ``ends_seen``, or after ``timeout_s``."""
        with self._ended:
            self._ended.wait_for(lambda: self.ends != ends_seen, timeout=timeout_s)

    def __enter__(self) -> _InterpreterPatches:
        boto_client_module = importlib.import_module(_BOTO_CLIENT_MODULE)
        for name in _AWS_CALLING_MODULES:
            importlib.import_module(name)
        original = boto_client_module.boto_client_for
        for module in [module for name, module in sys.modules.items() if name.startswith(_INTERPRETER_PACKAGE)]:
            if getattr(module, "boto_client_for", None) is original:
                self._replace(module, "boto_client_for", self._client_for)
        wait_function = importlib.import_module(_WAIT_MODULE).WaitFunction
        self._replace(wait_function, "_wait_interval", _scaled_wait_interval(self.time_scale))
        self._replace(importlib.import_module(_RETRIER_MODULE), "time", _ScaledSleep(self.time_scale))
        environment = importlib.import_module(_ENVIRONMENT_MODULE)
        self._replace(
            environment.Environment,
            "set_error",
            _stopped_stays_stopped(environment.Environment.set_error, environment.ProgramStopped),
        )
        sfn_semantics.install(self._replace)
        communication = importlib.import_module(_EXECUTION_MODULE).BaseExecutionWorkerCommunication
        self._replace(
            communication, "_reflect_execution_status", self._counting_ends(communication._reflect_execution_status)
        )
        return self

    def _counting_ends(self, reflect: Callable[[Any], None]) -> Callable[[Any], None]:
        """The interpreter's publication of an ended execution's status, then a wake-up for ``wait``."""

        def reflect_then_notify(communication: Any) -> None:
            reflect(communication)
            with self._ended:
                self.ends += 1
                self._ended.notify_all()

        return reflect_then_notify

    def __exit__(self, *exc_info: object) -> None:
        while self._undo:
            self._undo.pop()()

    def _replace(self, owner: ModuleType | type, attribute: str, value: Any) -> None:
        original = getattr(owner, attribute)
        setattr(owner, attribute, value)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def _client_for(self, region: str, service: str, state_credentials: Any = None) -> Any:
        """moto's ``boto_client_for``: a client with the credentials of the state machine's role, as Step Functions
        calls a Lambda function with them, so IAM authorizes each ``lambda:InvokeFunction`` against its policies."""
        return self.client_for(region, service, getattr(state_credentials, "role_arn", None) or "")

    def client_for(self, region: str, service: str, role_arn: str = "") -> Any:
        """Same settings as moto's client (one attempt, no parameter validation), endpoint = the sandbox front, as a
        session of ``role_arn`` (the administrator when empty)."""
        key = (region, service, role_arn)
        with self._clients_lock:  # botocore clients are thread-safe, their creation through a session is not
            if key not in self._clients:
                access_key, secret_key = self.sandbox.credentials
                session_token = None
                if role_arn:
                    issued = self.sandbox.boto3_client("sts").assume_role(
                        RoleArn=role_arn, RoleSessionName="StepFunctions"
                    )["Credentials"]
                    access_key, secret_key = issued["AccessKeyId"], issued["SecretAccessKey"]
                    session_token = issued["SessionToken"]
                self._clients[key] = self._boto3_session.client(  # type: ignore[call-overload]
                    service,
                    region_name=region,
                    endpoint_url=self.sandbox.endpoint_url,
                    aws_access_key_id=access_key,
                    aws_secret_access_key=secret_key,
                    aws_session_token=session_token,
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=60,
                        read_timeout=900,  # Lambda's longest timeout: the dispatcher answers by then
                    ),
                )
            return self._clients[key]


def _stopped_stays_stopped(set_error: Callable[[Any, Any], None], stopped: type) -> Callable[[Any, Any], None]:
    """StopExecution ends an execution ABORTED, whatever the Task it was in does next (Step Functions API reference,
    StopExecution: "Stops an execution"; its status becomes ABORTED). moto's interpreter lets an error that a running
    Task raises after the stop (a Lambda answering "not yet" to a poll the state retries) overwrite the stopped state,
    so the execution would end FAILED."""

    def set_error_unless_stopped(environment: Any, error: Any) -> None:
        with environment._state_mutex:  # an RLock, which set_error takes too: no stop can land in between
            if isinstance(environment._program_state, stopped):
                return
            set_error(environment, error)

    return set_error_unless_stopped


def _scaled_wait_interval(time_scale: float) -> Callable[[Any, Any, int], None]:
    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # As moto's: wait on the execution's state event (set when it is stopped), resuming after unrelated wake-ups.
        deadline = time.monotonic() + max(0, wait_seconds) * time_scale
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            env.program_state_event.wait(remaining)

    return wait_interval


class _ScaledSleep:
    """Stands in for the ``time`` module inside ``retrier_decl``: ``sleep`` scaled, everything else unchanged."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) * self.time_scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
