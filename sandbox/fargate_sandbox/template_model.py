"""What the sandbox needs from ``template.yaml``: functions, state machines and EventBridge rules, intrinsics resolved.

The template is read as SAM and the AWS CLI read it (``read_template``: the short forms ``!Sub``, ``!Ref``,
``!GetAtt``… become their long forms) and resolved the way CloudFormation would in the sandbox's account and region:
parameters take their defaults, pseudo parameters their sandbox values, and references to resources their physical
name or ARN. The sandbox has no CloudFormation, so physical names are chosen here: a resource's explicit name property
(``FunctionName``, ``Name``) when it has one, otherwise its logical id (so history and errors name
``ValidateRequestFunction``, not a random id).

Each function runs in execution environments of its own (``lambda_dispatch``), with its own environment variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from samtranslator.yaml_helper import intrinsics_multi_constructor

SAM_DEFAULT_TIMEOUT_SECONDS = 3  # AWS::Serverless::Function Timeout when neither the function nor Globals set it
SAM_DEFAULT_MEMORY_MB = 128
_NO_VALUE = object()  # AWS::NoValue: the property is removed
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_SUB_LITERAL = re.compile(r"\$\{!([^}]*)\}")
_ARN_NAMING = {  # resource type → (service, resource part of the ARN given the physical name)
    "AWS::Serverless::Function": ("lambda", "function:{name}"),
    "AWS::Lambda::Function": ("lambda", "function:{name}"),
    "AWS::Serverless::StateMachine": ("states", "stateMachine:{name}"),
    "AWS::StepFunctions::StateMachine": ("states", "stateMachine:{name}"),
    "AWS::SSM::Parameter": ("ssm", "parameter/{name}"),
    "AWS::Serverless::LayerVersion": ("lambda", "layer:{name}:1"),
    "AWS::Lambda::LayerVersion": ("lambda", "layer:{name}:1"),
    "AWS::Logs::LogGroup": ("logs", "log-group:{name}:*"),  # Fn::GetAtt's Arn ends in ":*" (CloudFormation docs)
    "AWS::CloudWatch::Alarm": ("cloudwatch", "alarm:{name}"),
    "AWS::DynamoDB::Table": ("dynamodb", "table/{name}"),
}
_GLOBAL_ARN_SERVICES = {"iam"}  # ARNs without region and with the account (arn:aws:iam::123:role/x)
# CloudFormation's Ref answer per type: the ARN for these, the physical name for everything else.
_REF_IS_ARN = {
    "AWS::Serverless::StateMachine",
    "AWS::StepFunctions::StateMachine",
    "AWS::Serverless::LayerVersion",
    "AWS::Lambda::LayerVersion",
}


class TemplateError(ValueError):
    """The template cannot be resolved for the sandbox."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str  # "<module>.<function>" as in the template, e.g. "app.lambda_handler"
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    arn: str
    role_arn: str
    definition_path: Path | None
    inline_definition: Mapping[str, Any] | None
    substitutions: Mapping[str, str]
    # CreateStateMachine's loggingConfiguration, from SAM's Logging property (None: no logging).
    logging: Mapping[str, Any] | None = None

    def definition(self) -> str:
        """The ASL with ``DefinitionSubstitutions`` applied, as CloudFormation would deploy it.

        Raises:
            TemplateError: a ``${…}`` of the definition has no substitution.
        """
        raw = (
            self.definition_path.read_text(encoding="utf-8")
            if self.definition_path is not None
            else json.dumps(self.inline_definition)
        )

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in self.substitutions:
                raise TemplateError(f"{self.logical_id}: ${{{key}}} has no DefinitionSubstitutions entry")
            return self.substitutions[key]

        return re.sub(r"\$\{([^}]+)\}", substitute, raw)


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule whose target is a state machine of the template (a SAM ``EventBridgeRule`` event: the
    template declares no ``AWS::Events::Rule``). ``input``/``input_path`` are the target's ``Input``/``InputPath``."""

    name: str
    pattern: Mapping[str, Any]
    state_machine: str  # logical id
    input: str | None = None
    input_path: str | None = None
    role_arn: str | None = None  # the role EventBridge starts the execution with


@dataclass(frozen=True)
class ParameterSpec:
    """An ``AWS::SSM::Parameter`` of the template (the watch list), created in the sandbox as CloudFormation would."""

    name: str
    type: str
    value: str


@dataclass(frozen=True)
class TableSpec:
    """An ``AWS::DynamoDB::Table`` of the template (the app inventory, the holders): CreateTable's arguments, as
    CloudFormation passes its properties (they share their names), with the name CloudFormation would give it."""

    name: str
    create: Mapping[str, Any]
    logical_id: str = ""


# The AWS::DynamoDB::Table properties that CreateTable takes under the same name and shape. The others (point-in-time
# recovery, encryption: SSESpecification's SSEEnabled is the API's Enabled) change nothing the sandbox reads back.
_CREATE_TABLE_ARGUMENTS = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")


@dataclass(frozen=True)
class SandboxTemplate:
    path: Path
    functions: Mapping[str, FunctionSpec]  # by logical id
    state_machines: Mapping[str, StateMachineSpec]  # by logical id
    event_rules: list[EventRuleSpec] = field(default_factory=list)
    parameters: list[ParameterSpec] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)

    def table(self, logical_id: str) -> TableSpec:
        """The table of that logical id (KeyError names it when the template has none)."""
        for table in self.tables:
            if table.logical_id == logical_id:
                return table
        raise KeyError(f"the template has no table {logical_id}")

    def function_named(self, name_or_arn: str) -> FunctionSpec | None:
        """The function a Lambda ``FunctionName`` designates: name, full or partial ARN, with or without qualifier."""
        name = name_or_arn
        if name.startswith("arn:"):
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else ""
        elif ":function:" in name or name.count(":") >= 2:  # partial ARN "123456789012:function:name[:qualifier]"
            parts = name.split(":")
            name = parts[2] if len(parts) > 2 else ""
        else:
            name = name.split(":")[0]  # "name:qualifier"
        return next((function for function in self.functions.values() if function.name == name), None)


@dataclass(frozen=True)
class Deployment:
    """Where the template is deployed: what its pseudo parameters (``AWS::AccountId``, ``AWS::StackName``…) and its
    parameters resolve to."""

    account_id: str
    region: str
    partition: str = "aws"
    stack_name: str = "fargate-app-sandbox"
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)


class _TemplateLoader(yaml.CSafeLoader):
    """YAML with CloudFormation's short-form tags, through the SAM translator's own constructor (the one ``sam`` and
    ``aws cloudformation package`` use); a loader of its own, so no other YAML this process reads accepts the tags.
    Not cfn-lint's loader: importing cfn-lint takes 0.7 s (it loads sympy), on every sandbox start."""


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def read_template(path: str | Path) -> dict[str, Any]:
    """The template as a JSON-like document, intrinsic functions in their long form (``{"Ref": …}``).

    Raises:
        TemplateError: the file's YAML is not a mapping.
    """
    with Path(path).open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_TemplateLoader)  # noqa: S506 - a safe loader plus the intrinsic tags
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a template: its YAML is not a mapping")
    return document


def load_template(path: str | Path, deployment: Deployment) -> SandboxTemplate:
    """Read ``template.yaml`` and resolve what the sandbox runs.

    Raises:
        TemplateError: a parameter has no default nor override, an intrinsic cannot be resolved, or a function's code
            or a definition file is missing.
    """
    template_path = Path(path).resolve()
    document = read_template(template_path)
    resolver = _Resolver(document, deployment)
    base = template_path.parent
    globals_function = dict((document.get("Globals") or {}).get("Function") or {})
    functions: dict[str, FunctionSpec] = {}
    state_machines: dict[str, StateMachineSpec] = {}
    rules: list[EventRuleSpec] = []
    parameters: list[ParameterSpec] = []
    tables: list[TableSpec] = []
    for logical_id, resource in (document.get("Resources") or {}).items():
        kind = resource.get("Type")
        properties = dict(resource.get("Properties") or {})
        if kind == "AWS::Serverless::Function":
            functions[logical_id] = _function(logical_id, properties, globals_function, resolver, base)
        elif kind == "AWS::Serverless::StateMachine":
            state_machines[logical_id] = _state_machine(logical_id, properties, resolver, base)
            rules.extend(_sam_event_rules(logical_id, properties, resolver))
        elif kind == "AWS::SSM::Parameter":
            name = str(resolver.resolve(properties.get("Name", logical_id)))
            parameters.append(
                ParameterSpec(name, str(properties.get("Type", "String")), str(resolver.resolve(properties["Value"])))
            )
        elif kind == "AWS::DynamoDB::Table":
            create = {key: resolver.resolve(properties[key]) for key in _CREATE_TABLE_ARGUMENTS if key in properties}
            tables.append(TableSpec(resolver.name_of(logical_id), create, logical_id))
    return SandboxTemplate(template_path, functions, state_machines, rules, parameters, tables)


def _function(
    logical_id: str, properties: dict[str, Any], globals_function: dict[str, Any], resolver: _Resolver, base: Path
) -> FunctionSpec:
    def setting(key: str, default: Any) -> Any:
        return resolver.resolve(properties.get(key, globals_function.get(key, default)))

    environment = {
        **_variables(globals_function.get("Environment"), resolver),
        **_variables(properties.get("Environment"), resolver),
    }
    code_uri = resolver.resolve(properties.get("CodeUri", globals_function.get("CodeUri")))
    if not isinstance(code_uri, str):
        raise TemplateError(f"{logical_id}: only a local CodeUri folder can run in the sandbox, got {code_uri!r}")
    code_dir = (base / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"{logical_id}: CodeUri {code_uri} is not a folder next to the template")
    return FunctionSpec(
        logical_id=logical_id,
        name=resolver.name_of(logical_id),
        arn=resolver.arn_of(logical_id),
        code_dir=code_dir,
        handler=str(setting("Handler", "app.lambda_handler")),
        timeout_seconds=int(setting("Timeout", SAM_DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(setting("MemorySize", SAM_DEFAULT_MEMORY_MB)),
        environment=environment,
    )


def _variables(environment: Any, resolver: _Resolver) -> dict[str, str]:
    variables = resolver.resolve(((environment or {}).get("Variables")) or {})
    # CloudFormation turns scalars into strings for Lambda (which only takes strings).
    return {str(name): _as_string(value) for name, value in variables.items()}


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise TemplateError(f"environment value {value!r} is not a scalar")


def _state_machine(logical_id: str, properties: dict[str, Any], resolver: _Resolver, base: Path) -> StateMachineSpec:
    definition_uri = resolver.resolve(properties.get("DefinitionUri"))
    definition_path: Path | None = None
    inline = None
    if isinstance(definition_uri, str):
        definition_path = (base / definition_uri).resolve()
        if not definition_path.is_file():
            raise TemplateError(f"{logical_id}: DefinitionUri {definition_uri} does not exist")
    elif "Definition" in properties:
        inline = resolver.resolve(properties["Definition"])
    else:
        raise TemplateError(f"{logical_id}: needs a local DefinitionUri file or an inline Definition")
    substitutions = resolver.resolve(properties.get("DefinitionSubstitutions") or {})
    role = resolver.resolve(properties.get("Role")) if "Role" in properties else None
    return StateMachineSpec(
        logical_id=logical_id,
        name=resolver.name_of(logical_id),
        arn=resolver.arn_of(logical_id),
        role_arn=role if isinstance(role, str) else resolver.arn("iam", f"role/{logical_id}Role", global_service=True),
        definition_path=definition_path,
        inline_definition=inline,
        substitutions={str(key): _as_string(value) for key, value in substitutions.items()},
        logging=_logging_configuration(resolver.resolve(properties.get("Logging"))),
    )


def _logging_configuration(logging: Any) -> dict[str, Any] | None:
    """SAM's ``Logging`` (CloudFormation's LoggingConfiguration) in the Step Functions API's shape."""
    if not logging:
        return None
    return {
        "level": logging.get("Level", "OFF"),
        "includeExecutionData": bool(logging.get("IncludeExecutionData", False)),
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": str(destination["CloudWatchLogsLogGroup"]["LogGroupArn"])}}
            for destination in logging.get("Destinations") or []
        ],
    }


def _sam_event_rules(logical_id: str, properties: dict[str, Any], resolver: _Resolver) -> list[EventRuleSpec]:
    rules = []
    for event_id, event in (properties.get("Events") or {}).items():
        if event.get("Type") not in ("EventBridgeRule", "CloudWatchEvent"):
            continue
        event_properties = dict(event.get("Properties") or {})
        if event_properties.get("State", "ENABLED") != "ENABLED":
            continue
        target = dict(event_properties.get("Target") or {})
        rules.append(
            EventRuleSpec(
                name=str(resolver.resolve(event_properties.get("RuleName", f"{logical_id}{event_id}"))),
                pattern=resolver.resolve(event_properties["Pattern"]),
                state_machine=logical_id,
                input=resolver.resolve(event_properties.get("Input", target.get("Input"))),
                input_path=resolver.resolve(event_properties.get("InputPath", target.get("InputPath"))),
                # SAM names the rule's role <state machine><event>Role (samtranslator model/stepfunctions/events.py).
                role_arn=resolver.arn("iam", f"role/{logical_id}{event_id}Role", global_service=True),
            )
        )
    return rules


class _Resolver:
    """CloudFormation intrinsic functions over the sandbox's account, region and parameter values."""

    def __init__(self, document: dict[str, Any], deployment: Deployment) -> None:
        self.resources: dict[str, Any] = dict(document.get("Resources") or {})
        partition, region, account_id = deployment.partition, deployment.region, deployment.account_id
        self.partition, self.region, self.account_id = partition, region, account_id
        stack_name, overrides = deployment.stack_name, deployment.parameter_overrides
        self.values: dict[str, Any] = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/sandbox",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        for name, parameter in (document.get("Parameters") or {}).items():
            if name in overrides:
                self.values[name] = overrides[name]
            elif "Default" in parameter:
                self.values[name] = _as_string(parameter["Default"])
        self.conditions: dict[str, Any] = dict(document.get("Conditions") or {})
        self._condition_values: dict[str, bool] = {}

    # --- names and ARNs of the template's resources ------------------------------------------------------------------
    def arn(self, service: str, resource: str, *, global_service: bool = False) -> str:
        region = "" if global_service else self.region
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    def name_of(self, logical_id: str) -> str:
        properties = dict(self.resources[logical_id].get("Properties") or {})
        for key in (
            "FunctionName",
            "StateMachineName",
            "Name",
            "RoleName",
            "QueueName",
            "TopicName",
            "LayerName",
            "LogGroupName",
            "TableName",
        ):
            if key in properties:
                return str(self.resolve(properties[key]))
        return logical_id

    def arn_of(self, logical_id: str) -> str:
        kind = str(self.resources[logical_id].get("Type", ""))
        name = self.name_of(logical_id)
        if kind == "AWS::IAM::Role":
            return self.arn("iam", f"role/{name}", global_service=True)
        if kind in _ARN_NAMING:
            service, pattern = _ARN_NAMING[kind]
            return self.arn(service, pattern.format(name=name))
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "cloudformation"
        return self.arn(service, name, global_service=service in _GLOBAL_ARN_SERVICES)

    # --- intrinsic functions ----------------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self.ref(str(argument))
                if key == "Fn::GetAtt":
                    return self.get_att(argument)
                if key == "Fn::Sub":
                    return self.sub(argument)
                if key == "Fn::Join":
                    separator, items = argument
                    return str(separator).join(_as_string(self.resolve(item)) for item in self.resolve(items))
                if key == "Fn::Select":
                    index, items = argument
                    return self.resolve(items)[int(self.resolve(index))]
                if key == "Fn::If":
                    condition, when_true, when_false = argument
                    return self.resolve(when_true if self.condition(condition) else when_false)
                if key == "Fn::ToJsonString":
                    return json.dumps(self.resolve(argument))
                if key.startswith("Fn::"):
                    raise TemplateError(f"the sandbox does not resolve {key}: {argument!r}")
            resolved = {str(key): self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not _NO_VALUE]
        return value

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.resources:
            kind = self.resources[name].get("Type")
            return self.arn_of(name) if kind in _REF_IS_ARN else self.name_of(name)
        raise TemplateError(f"Ref {name}: no such parameter (without a default) or resource")

    def get_att(self, argument: Any) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: no such resource")
        if attribute == "Arn":
            return self.arn_of(logical_id)
        if attribute in ("Name", "FunctionName", "RuleName", "QueueName", "TopicName", "StateMachineName"):
            return self.name_of(logical_id)
        return f"{logical_id}.{attribute}"  # an attribute the sandbox does not model: visible, never silently empty

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {key: self.resolve(item) for key, item in dict(variables).items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in local:
                return _as_string(local[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return self.get_att(name)
            return _as_string(self.ref(name))

        return _SUB_LITERAL.sub(lambda match: "${" + match.group(1) + "}", _SUB_VARIABLE.sub(replace, str(text)))

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"Condition {name} is not defined")
            self._condition_values[name] = self.evaluate(self.conditions[name])
        return self._condition_values[name]

    def evaluate(self, expression: Any) -> bool:
        ((key, argument),) = dict(expression).items()
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return bool(_as_string(left) == _as_string(right))
        if key == "Fn::Not":
            return not self.evaluate(argument[0])
        if key == "Fn::And":
            return all(self.evaluate(item) for item in argument)
        if key == "Fn::Or":
            return any(self.evaluate(item) for item in argument)
        if key == "Condition":
            return self.condition(str(argument))
        raise TemplateError(f"unsupported condition function {key}")
