"""Draw each state machine from its ASL with graphviz: ``python tools/asl_diagram.py statemachine/*.asl.json --out DIR``.

Tasks are boxes, Choices diamonds, Waits ellipses, Fail/Succeed double circles; dashed edges are Catch routes.
The failure recorders of the provision workflow (``<Step>Failed`` Pass states) are folded into one edge per step so
the walkthrough's path stays readable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

SHAPES = {
    "Task": "box",
    "Choice": "diamond",
    "Wait": "ellipse",
    "Pass": "note",
    "Map": "box3d",
    "Fail": "doublecircle",
    "Succeed": "doublecircle",
}


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _condition(choice: dict[str, Any]) -> str:
    field = str(choice.get("Variable", "")).split(".")[-1]
    value = next((v for k, v in choice.items() if k.endswith("Equals")), "")
    return f"{field} = {json.dumps(value)}"


def to_dot(name: str, definition: dict[str, Any]) -> str:
    states: dict[str, Any] = definition["States"]
    recorders = {n: s["Next"] for n, s in states.items() if s["Type"] == "Pass" and "Result" in s and s.get("Next")}
    lines = [
        f"digraph {_quote(name)} {{",
        '  rankdir=TB; node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        "  start [shape=point];",
        f"  start -> {_quote(definition['StartAt'])};",
    ]
    for state_name, state in states.items():
        if state_name in recorders:
            continue
        colour = ', style=filled, fillcolor="#f8d7da"' if state["Type"] == "Fail" else ""
        lines.append(f"  {_quote(state_name)} [shape={SHAPES.get(state['Type'], 'box')}{colour}];")
        targets = [(state.get("Next"), ""), (state.get("Default"), "otherwise")]
        targets += [(c["Next"], _condition(c)) for c in state.get("Choices", [])]
        for target, label in targets:
            if target:
                lines.append(f"  {_quote(state_name)} -> {_quote(target)} [label={_quote(label)}];")
        for catch in state.get("Catch", []):
            target = recorders.get(catch["Next"], catch["Next"])
            lines.append(f"  {_quote(state_name)} -> {_quote(target)} [style=dashed, color=grey50];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("definitions", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    for path in arguments.definitions:
        name = path.name.removesuffix(".asl.json")
        dot = to_dot(name, json.loads(path.read_text()))
        target = arguments.out / f"{name}.svg"
        subprocess.run(["dot", "-Tsvg", "-o", str(target)], input=dot, text=True, check=True)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
