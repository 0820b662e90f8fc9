"""A static data-flow check of JSONPath state machines: is every path a state reads there on every route into it?

AWS fails an execution with ``States.Runtime`` (which no Retry or Catch handles) when a state reads a path its input
does not have: InputPath, a ``"x.$"`` of Parameters/ResultSelector/ItemSelector, ItemsPath, a Choice rule's Variable,
a Wait's SecondsPath/TimestampPath, a Fail's ErrorPath/CausePath, OutputPath. So this walks every route of a state
machine, computing the *guaranteed* shape of each state's input: the execution's input (a pydantic model, or nothing
known), Pass ``Result``/``Parameters``, each Task's result (its handler's pydantic result model), ``ResultPath``
merges, Catch error objects (``{"Error", "Cause"}``), Map results and Choice ``IsPresent`` tests. Where routes meet,
only what every route provides is guaranteed. A read that some route does not provide is a problem, reported with
the states where that route lost (or never had) the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# --- shapes -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What is guaranteed about a JSON value: its kind and, for objects, the fields that are always present."""

    kind: str  # "object" | "array" | "scalar" | "any"
    fields: tuple[tuple[str, Shape], ...] = ()
    item: Shape | None = None
    nullable: bool = False

    def field(self, name: str) -> Shape | None:
        if self.kind != "object" or self.nullable:
            return None
        return dict(self.fields).get(name)

    def with_field(self, name: str, value: Shape) -> Shape:
        fields = dict(self.fields)
        fields[name] = value
        return replace(self, kind="object", fields=tuple(sorted(fields.items())), nullable=False, item=None)


ANY = Shape("any")
SCALAR = Shape("scalar")


def obj(**fields: Shape) -> Shape:
    return Shape("object", tuple(sorted(fields.items())))


def meet(a: Shape, b: Shape) -> Shape:
    """What both shapes guarantee (where two routes join)."""
    nullable = a.nullable or b.nullable
    if a.kind != b.kind or a.kind == "any":
        return Shape("any", nullable=nullable)
    if a.kind == "object":
        theirs = dict(b.fields)
        fields = tuple((name, meet(shape, theirs[name])) for name, shape in a.fields if name in theirs)
        return Shape("object", fields, nullable=nullable)
    if a.kind == "array":
        item = meet(a.item or ANY, b.item or ANY)
        return Shape("array", item=item, nullable=nullable)
    return Shape(a.kind, nullable=nullable)


def from_literal(value: Any) -> Shape:
    if isinstance(value, dict):
        return obj(**{key: from_literal(item) for key, item in value.items()})
    if isinstance(value, list):
        items = [from_literal(item) for item in value]
        item = items[0] if items else ANY
        for other in items[1:]:
            item = meet(item, other)
        return Shape("array", item=item)
    return Shape("scalar", nullable=value is None)


def from_schema(schema: Mapping[str, Any], *, all_present: bool) -> Shape:
    """A pydantic JSON schema as a shape. ``all_present``: every property is in the JSON (a result dumped with
    every field); otherwise only ``required`` ones are (an input a caller writes)."""
    definitions = schema.get("$defs", {})

    def convert(node: Mapping[str, Any]) -> Shape:
        if "$ref" in node:
            return convert(definitions[node["$ref"].rsplit("/", 1)[-1]])
        if "anyOf" in node:
            options = [option for option in node["anyOf"] if option.get("type") != "null"]
            nullable = len(options) != len(node["anyOf"])
            if len(options) != 1:
                return Shape("any", nullable=nullable)
            return replace(convert(options[0]), nullable=nullable)
        kind = node.get("type")
        if kind == "object" and "properties" in node:
            required = set(node["properties"]) if all_present else set(node.get("required", []))
            return obj(**{name: convert(sub) for name, sub in node["properties"].items() if name in required})
        if kind == "object":
            return Shape("object")  # a map: present, keys unknown
        if kind == "array":
            return Shape("array", item=convert(node.get("items", {})))
        if kind in ("string", "integer", "number", "boolean"):
            return SCALAR
        if kind == "null":
            return Shape("scalar", nullable=True)
        return ANY

    return convert(schema)


# --- paths --------------------------------------------------------------------------------------------------------
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']+)'\]")
_EMBEDDED_PATH = re.compile(r"\$\$?(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*")
# The context object (Step Functions developer guide, "Accessing execution data from the Context object").
CONTEXT = obj(
    Execution=obj(Id=SCALAR, Name=SCALAR, StartTime=SCALAR, RoleArn=SCALAR, Input=ANY),
    State=obj(EnteredTime=SCALAR, Name=SCALAR, RetryCount=SCALAR),
    StateMachine=obj(Id=SCALAR, Name=SCALAR),
)
MAP_CONTEXT_ITEM = "Map"
ERROR_OUTPUT = obj(Error=SCALAR, Cause=SCALAR)


def segments(path: str) -> list[str | int]:
    """``$.a.b[0]`` → ``["a", "b", 0]``. Raises ValueError for what a reference path may not hold."""
    rest = path[2:] if path.startswith("$$") else path[1:]
    found: list[str | int] = []
    position = 0
    for match in _SEGMENT.finditer(rest):
        if match.start() != position:
            raise ValueError(f"unsupported JSONPath {path!r}")
        name, index, quoted = match.groups()
        found.append(int(index) if index is not None else (name or quoted))
        position = match.end()
    if position != len(rest):
        raise ValueError(f"unsupported JSONPath {path!r}")
    return found


def resolve(shape: Shape, path: Iterable[str | int]) -> Shape | None:
    """The shape at ``path``, or None when the path is not guaranteed to exist."""
    current: Shape | None = shape
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            return None  # an index: the array may be shorter
        current = current.field(part)
    return current


def assign(shape: Shape, path: list[str | int], value: Shape) -> Shape | None:
    """ResultPath: ``shape`` with ``value`` at ``path`` (missing objects created); None when a step on the way is
    not guaranteed to be an object (AWS fails to apply ResultPath to it)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int) or shape.kind not in ("object",) or shape.nullable:
        return None
    child = shape.field(head) or obj()
    updated = assign(child, rest, value)
    return None if updated is None else shape.with_field(head, updated)


def present(shape: Shape, path: list[str | int]) -> Shape:
    """``shape`` where ``path`` is known to exist (a Choice rule's ``IsPresent: true`` matched): every value on the
    way is an object, none of them null."""
    if not path or isinstance(path[0], int) or shape.kind not in ("object", "any"):
        return shape
    base = replace(shape, kind="object", nullable=False)
    return base.with_field(path[0], present(base.field(path[0]) or ANY, path[1:]))


def paths_in(value: Any) -> list[str]:
    """The paths a ``"x.$"`` value reads: a path, or the path arguments of an intrinsic function."""
    text = str(value)
    if text.startswith("$"):
        return [text]
    return [match.group(0) for match in _EMBEDDED_PATH.finditer(text) if match.group(0) not in ("$", "$$")]


# --- the walk -----------------------------------------------------------------------------------------------------
def problem(state: str, where: str, path: str, routes: tuple[str, ...]) -> str:
    """What is reported: ``<state>.<field> reads <path>``, and on which routes it is not provided."""
    via = f" (not provided on the route from {', '.join(routes)})" if routes else ""
    return f"{state}.{where} reads {path}{via}"


@dataclass
class Machine:
    """One state machine (or a Map's item processor) and what its Tasks return."""

    definition: Mapping[str, Any]
    results: Mapping[str, Shape]  # Task state name -> result shape (a Task not listed returns anything)
    context: Shape = CONTEXT
    name: str = "machine"
    incoming: dict[str, dict[str, Shape]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def states(self) -> Mapping[str, Mapping[str, Any]]:
        return self.definition["States"]  # type: ignore[no-any-return]

    def input_of(self, state: str) -> Shape:
        shapes = list(self.incoming[state].values())
        joined = shapes[0]
        for other in shapes[1:]:
            joined = meet(joined, other)
        return joined

    # --- reads --------------------------------------------------------------------------------------------------
    def read(self, shape: Shape, path: str, state: str, where: str) -> Shape:
        try:
            parts = segments(path)
        except ValueError:
            self.problems.append(problem(state, where, path, ("an unsupported path",)))
            return ANY
        root = self.context if path.startswith("$$") else shape
        found = resolve(root, parts)
        if found is None:
            routes = () if path.startswith("$$") else self.losing_routes(state, parts)
            self.problems.append(problem(state, where, path, routes))
            return ANY
        return found

    def template(self, template: Any, shape: Shape, state: str, where: str) -> Shape:
        """A Parameters/ResultSelector/ItemSelector template's output; every ``.$`` path is a read."""
        if isinstance(template, dict):
            out: dict[str, Shape] = {}
            for key, value in template.items():
                if key.endswith(".$"):
                    found = [self.read(shape, path, state, f"{where}.{key}") for path in paths_in(value)]
                    out[key[:-2]] = found[0] if str(value).startswith("$") and found else SCALAR
                else:
                    out[key] = self.template(value, shape, state, f"{where}.{key}")
            return obj(**out)
        return from_literal(template)

    def losing_routes(self, state: str, parts: list[str | int]) -> tuple[str, ...]:
        """Where the routes lacking the path come from: followed back through states that pass their input on
        (Wait, Choice) and through states none of whose routes had it, to the execution's input or to the state
        that dropped it."""
        lost: list[str] = []
        seen = {state}
        pending = [state]
        while pending:
            current = pending.pop()
            for origin, shape in self.incoming.get(current, {}).items():
                if resolve(shape, parts) is not None:
                    continue
                source = origin.split(" ", 1)[0]
                passes_on = self.states.get(source, {}).get("Type") in ("Wait", "Choice")
                if origin == "<input>" or (source in seen and not passes_on):
                    lost.append(origin.split(" ", 1)[0] if origin != "<input>" else origin)
                elif source in seen:
                    continue
                elif passes_on or all(resolve(s, parts) is None for s in self.incoming.get(source, {}).values()):
                    seen.add(source)
                    pending.append(source)
                else:
                    lost.append(source)
        return tuple(dict.fromkeys(lost))

    # --- transfer -----------------------------------------------------------------------------------------------
    def run(self, input_shape: Shape) -> Shape | None:
        """Walk to a fixed point; the output shape of the machine (None when no route ends)."""
        start = self.definition["StartAt"]
        self.incoming = {start: {"<input>": input_shape}}
        pending = [start]
        rounds = 0
        while pending:
            rounds += 1
            if rounds > 10_000:
                raise RuntimeError(f"{self.name}: no fixed point")
            state = pending.pop(0)
            for target, label, shape in self.edges(state, self.input_of(state), check=False):
                if target == "<end>":
                    continue
                edges = self.incoming.setdefault(target, {})
                if edges.get(label) != shape:
                    edges[label] = shape
                    if target not in pending:
                        pending.append(target)
        outputs: list[Shape] = []
        for state in self.incoming:
            for target, _label, shape in self.edges(state, self.input_of(state), check=True):
                if target == "<end>":
                    outputs.append(shape)
        if not outputs:
            return None
        joined = outputs[0]
        for other in outputs[1:]:
            joined = meet(joined, other)
        return joined

    def edges(self, name: str, shape: Shape, *, check: bool) -> list[tuple[str, str, Shape]]:
        """(next state or "<end>", edge label, shape carried) for every way out of state ``name``."""
        state = self.states[name]
        saved = len(self.problems)
        kind = state["Type"]
        effective = self.apply_input_path(state, shape, name)
        out: list[tuple[str, str, Shape]] = []
        if kind == "Choice":
            out = self.choice_edges(name, state, effective)
        elif kind == "Fail":
            for key in ("ErrorPath", "CausePath"):
                if key in state:
                    self.read(effective, state[key], name, key)
        elif kind == "Wait":
            for key in ("SecondsPath", "TimestampPath"):
                if key in state:
                    self.read(effective, state[key], name, key)
            out = self.next_edges(name, state, self.apply_output_path(state, shape, name))
        elif kind == "Succeed":
            out = [("<end>", name, self.apply_output_path(state, effective, name))]
        else:  # Pass, Task, Map, Parallel
            result = self.result_of(name, state, effective)
            merged = self.apply_result_path(name, state.get("ResultPath", "$"), shape, result)
            if merged is not None:
                out = self.next_edges(name, state, self.apply_output_path(state, merged, name))
            for catcher in state.get("Catch", []):
                caught = self.apply_result_path(name, catcher.get("ResultPath", "$"), shape, ERROR_OUTPUT)
                if caught is not None:
                    out.append((catcher["Next"], f"{name} (Catch)", caught))
        if not check:
            del self.problems[saved:]
        return out

    def next_edges(self, name: str, state: Mapping[str, Any], shape: Shape) -> list[tuple[str, str, Shape]]:
        return [("<end>", name, shape)] if state.get("End") else [(state["Next"], name, shape)]

    def apply_input_path(self, state: Mapping[str, Any], shape: Shape, name: str) -> Shape:
        path = state.get("InputPath", "$")
        return shape if path in ("$", None) else self.read(shape, path, name, "InputPath")

    def apply_output_path(self, state: Mapping[str, Any], shape: Shape, name: str) -> Shape:
        path = state.get("OutputPath", "$")
        return shape if path in ("$", None) else self.read(shape, path, name, "OutputPath")

    def apply_result_path(self, name: str, path: str | None, shape: Shape, result: Shape) -> Shape | None:
        if path is None:
            return shape
        try:
            merged = assign(shape, segments(path), result)
        except ValueError:
            merged = None
        if merged is None:
            self.problems.append(problem(name, "ResultPath", path, ("an input that is not an object there",)))
        return merged

    def result_of(self, name: str, state: Mapping[str, Any], effective: Shape) -> Shape:
        kind = state["Type"]
        if kind == "Pass":
            if "Result" in state:
                return from_literal(state["Result"])
            if "Parameters" in state:
                return self.template(state["Parameters"], effective, name, "Parameters")
            return effective
        if "Parameters" in state:
            self.template(state["Parameters"], effective, name, "Parameters")
        if kind == "Map":
            result = Shape("array", item=self.map_item_output(name, state, effective))
        else:
            result = self.results.get(name, ANY)
        if "ResultSelector" in state:
            result = self.template(state["ResultSelector"], result, name, "ResultSelector")
        return result

    def map_item_output(self, name: str, state: Mapping[str, Any], effective: Shape) -> Shape:
        items = self.read(effective, state["ItemsPath"], name, "ItemsPath") if "ItemsPath" in state else effective
        item = items.item if items.kind == "array" and items.item is not None else ANY
        context = self.context.with_field(MAP_CONTEXT_ITEM, obj(Item=obj(Value=item, Index=SCALAR)))
        selector = state.get("ItemSelector") or state.get("Parameters")
        saved_context, self.context = self.context, context
        try:
            item_input = self.template(selector, effective, name, "ItemSelector") if selector else item
        finally:
            self.context = saved_context
        processor = state.get("ItemProcessor") or state["Iterator"]
        inner = Machine(processor, self.results, context, f"{self.name}.{name}")
        output = inner.run(item_input)
        self.problems += [f"{name}/{found}" for found in inner.problems]  # named as <map state>/<inner state>
        return output or ANY

    def choice_edges(self, name: str, state: Mapping[str, Any], shape: Shape) -> list[tuple[str, str, Shape]]:
        out = []
        for rule in state.get("Choices", []):
            narrowed = shape
            variable = rule.get("Variable")
            # A rule that holds only if paths are present (IsPresent, alone or in an And) guarantees them
            for test in [rule, *rule.get("And", [])]:
                if test.get("IsPresent") is True and resolve(narrowed, segments(test["Variable"])) is None:
                    narrowed = present(narrowed, segments(test["Variable"]))
            if variable is None or "IsPresent" not in rule:
                for condition in _conditions(rule):
                    self.read(shape, condition["Variable"], name, "Choices.Variable")
                    for key, value in condition.items():
                        if key.endswith("Path") and isinstance(value, str):
                            self.read(shape, value, name, f"Choices.{key}")
            out.append((rule["Next"], f"{name} ({variable} matched)", self.apply_output_path(state, narrowed, name)))
        if "Default" in state:
            out.append((state["Default"], f"{name} (Default)", self.apply_output_path(state, shape, name)))
        return out


def _conditions(rule: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The comparisons of a Choice rule, through And/Or/Not (every one is read when evaluated)."""
    for key in ("And", "Or"):
        for sub in rule.get(key, []):
            yield from _conditions(sub)
    if "Not" in rule:
        yield from _conditions(rule["Not"])
    if "Variable" in rule and "IsPresent" not in rule:
        yield rule


def check(definition: Mapping[str, Any] | str, results: Mapping[str, Shape], input_shape: Shape) -> list[str]:
    """Every read of ``definition`` that some route does not provide (empty: every path is guaranteed)."""
    machine = Machine(json.loads(definition) if isinstance(definition, str) else definition, results)
    machine.run(input_shape)
    return sorted(set(machine.problems), key=str)
