"""Figure 1: cold import of each Lambda handler against a cold ``import boto3`` + one client.

Every sample is a fresh interpreter (``-S -B``: only the Lambda layout is importable and no bytecode is written, as
on Lambda's read-only file system) that times, with ``time.perf_counter`` around the statement alone (interpreter
start-up excluded on both sides), either the baseline ``import boto3; boto3.client("sts", region_name=…)`` or
``import app`` from the function's task root. The layers are laid out as `sam build` ships them: pruned and compiled
by their own Makefiles (``prune``, ``compile``), so their bytecode is used; the baseline's boto3 has its bytecode too,
as the Lambda runtime ships it. Samples are interleaved (baseline, then every handler, N times) so a slower moment of
the machine affects all alike. The Kubernetes handlers import the kubernetes client lazily, at their first call: that
cost is reported too (informational), as is the whole figure with the layers' bytecode removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.lambda_layout import ROOT, LambdaLayout
from benchmarks.report import Figure, Row, median, ratio
from fargate_sandbox.template_model import read_template

AWS_ONLY_GOAL, KUBERNETES_GOAL = 1.3, 1.6
BASELINE = 'import boto3\nboto3.client("sts", region_name="us-west-2")'
# What a Kubernetes step imports lazily at its first call (kubernetes.client loads each class on first use).
FIRST_CALL_IMPORTS = (
    "from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api, NetworkingV1Api\n"
    "import kubernetes_validate"
)
PROBE = """
import time
started = time.perf_counter()
{statement}
imported = time.perf_counter()
{first_call}
done = time.perf_counter()
print("TIMES", imported - started, done - imported)
"""


def template_functions(template: Path = ROOT / "template.yaml") -> dict[str, tuple[Path, bool]]:
    """Logical id → (CodeUri folder, whether it has the kubernetes layer), for every function of the template."""
    document = read_template(template)
    functions = {}
    for logical_id, resource in document["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        layers = properties.get("Layers") or []
        has_kubernetes = any(isinstance(layer, dict) and layer.get("Ref") == "KubernetesLayer" for layer in layers)
        functions[logical_id] = (ROOT / properties["CodeUri"], has_kubernetes)
    return dict(sorted(functions.items()))


def lambda_environment(function: str) -> dict[str, str]:
    """What Lambda sets, plus the template's variables: Powertools reads them at import."""
    from fargate_sandbox.template_model import Deployment, load_template

    template = load_template(ROOT / "template.yaml", Deployment("111122223333", "us-west-2"))
    spec = template.functions.get(function)  # the baseline is no function: it imports boto3 only
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **(dict(spec.environment) if spec is not None else {}),
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_ACCESS_KEY_ID": "AKIABENCHMARK0000000",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
    }


def _sample(layout: LambdaLayout, function: str | None, kubernetes: bool, first_call: bool) -> tuple[float, float]:
    statement = "import app" if function else BASELINE
    code = PROBE.format(statement=statement, first_call=FIRST_CALL_IMPORTS if first_call else "")
    environment = {
        **lambda_environment(function or "baseline"),
        "PYTHONPATH": os.pathsep.join(layout.python_path(function, kubernetes)),
    }
    answer = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-S", "-B", "-c", code], env=environment, capture_output=True, text=True, check=False
    )
    if answer.returncode != 0:
        raise RuntimeError(f"{function or 'baseline'}: import failed:\n{answer.stderr[-3000:]}")
    line = next(line for line in answer.stdout.splitlines() if line.startswith("TIMES "))
    imported, lazy = (float(value) for value in line.split()[1:])
    return imported, lazy


def _measure(layout: LambdaLayout, functions: dict[str, tuple[Path, bool]], runs: int) -> dict[str, Any]:
    baseline: list[float] = []
    handlers: dict[str, list[float]] = {name: [] for name in functions}
    first_calls: dict[str, list[float]] = {name: [] for name, (_, kube) in functions.items() if kube}
    for _ in range(runs):
        baseline.append(_sample(layout, None, False, False)[0])
        for name, (_, kube) in functions.items():
            imported, lazy = _sample(layout, name, kube, kube)
            handlers[name].append(imported)
            if kube:
                first_calls[name].append(imported + lazy)
    return {"baseline": baseline, "handlers": handlers, "first_calls": first_calls}


def run(runs: int) -> Figure:
    figure = Figure(
        1,
        "Cold import of each handler vs import boto3 + one client",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip() if __doc__ else "",
    )
    functions = template_functions()
    variants: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lambda-") as workdir:
        layout = LambdaLayout(Path(workdir)).build({name: code_dir for name, (code_dir, _) in functions.items()})
        variants["as shipped"] = _measure(layout, functions, runs)
        layout.drop_layer_bytecode()
        variants["without layer bytecode"] = _measure(layout, functions, runs)

    shipped = variants["as shipped"]
    base = median(shipped["baseline"])
    figure.rows.append(Row("baseline: import boto3 + sts client", base * 1000, "ms", "", None, runs=runs))
    for name, (_, kube) in functions.items():
        value = median(shipped["handlers"][name])
        goal = KUBERNETES_GOAL if kube else AWS_ONLY_GOAL
        quotient = ratio(value, base)
        figure.rows.append(
            Row(
                f"{name.removesuffix('Function')}{' (k8s)' if kube else ''}",
                value * 1000,
                "ms",
                f"<= {goal}x",
                quotient <= goal,
                baseline=base * 1000,
                ratio=quotient,
                runs=runs,
            )
        )
    figure.details = _variant_table(functions, variants)
    return figure


def _variant_table(functions: dict[str, tuple[Path, bool]], variants: dict[str, dict[str, Any]]) -> list[str]:
    """Ratios of every variant against its own baseline; "+ first call" adds the Kubernetes handlers' lazy imports."""
    headers = [f"{variant}{suffix}" for variant in variants for suffix in ("", ", + first call")]
    lines = [
        "Ratios to the baseline of the same variant's runs. *as shipped* is the figure above: both layers carry the"
        " bytecode their Makefiles compile (`compileall --invalidation-mode unchecked-hash`; the task roots hold one"
        " small `app.py` each and ship none); *without layer bytecode* removes it, as the layers were before."
        " *+ first call* adds what a Kubernetes handler imports lazily on its first call (`ApiClient`,"
        " `Configuration` and the three API classes of `kubernetes.client`, `kubernetes_validate`).",
        "",
        "| handler | " + " | ".join(headers) + " |",
        "| --- | " + " | ".join("---" for _ in headers) + " |",
    ]
    for name, (_, kube) in functions.items():
        cells = []
        for measured in variants.values():
            base = median(measured["baseline"])
            cells.append(f"{ratio(median(measured['handlers'][name]), base):.2f}")
            cells.append(f"{ratio(median(measured['first_calls'][name]), base):.2f}" if kube else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    bases = ", ".join(f"{variant} {median(m['baseline']) * 1000:.0f} ms" for variant, m in variants.items())
    return [*lines, "", f"Baselines (import boto3 + client): {bases}."]
