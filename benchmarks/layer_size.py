"""Figure 2: the layers' size after `sam build`, unzipped (the sum of their files' bytes, what Lambda's 250 MB limit
counts), read from ``.aws-sam/build/<LogicalId>/`` (``make bench`` runs ``make build`` first). The zipped size is
given for information. That the pruned kubernetes layer still runs the handlers is proved by
``tests/unit/test_kube_layer_prune.py`` (it prunes the same distributions with the same Makefile target, imports
every Kubernetes handler and validates the app's manifests strictly on a clean interpreter), which this benchmark
runs; figure 1 imports every handler and the kubernetes client from a pruned layer too.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

from benchmarks.lambda_layout import ROOT
from benchmarks.report import Figure, Row
from fargate_sandbox.lambda_layers import tree_bytes

MB = 1_000_000  # the goals are in MB
GOALS_MB = {"CoreLayer": 15, "KubernetesLayer": 40}
PROOF = "tests/unit/test_kube_layer_prune.py"


def zipped_bytes(tree: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(tree.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(tree))
    return buffer.tell()


def run(build_dir: Path = ROOT / ".aws-sam" / "build") -> Figure:
    figure = Figure(2, "Layer sizes after sam build (unzipped)", __doc__.replace("\n", " ").strip() if __doc__ else "")
    missing = [layer for layer in GOALS_MB if not (build_dir / layer).is_dir()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {build_dir}: run `make build` first")
    proof = subprocess.run(  # noqa: S603 - our own interpreter and test
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", PROOF],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = proof.stdout.strip().splitlines()[-1] if proof.stdout.strip() else proof.stderr[-500:]
    for layer, goal in GOALS_MB.items():
        size = tree_bytes(build_dir / layer) / MB
        note = f"zipped {zipped_bytes(build_dir / layer) / MB:.1f} MB"
        met = size <= goal
        if layer == "KubernetesLayer":
            note += f"; `pytest {PROOF}`: {summary}"
            met = met and proof.returncode == 0
        figure.rows.append(Row(layer, size, "MB", f"<= {goal} MB", met, note=note))
    return figure
