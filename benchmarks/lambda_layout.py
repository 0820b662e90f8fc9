"""A Lambda-shaped file layout on this machine: the task root, the layers under /opt/python, the runtime's packages.

`sam build` makes arm64/python3.12 artifacts, which this x86_64 machine cannot import (pydantic_core, rpds are
compiled), so the cold-import benchmark assembles the same trees from the development virtualenv, as
tests/unit/test_kube_layer_prune.py does for its proof, and runs the layer Makefiles' own targets on them:

- ``task/``: the function's folder as `sam build` copies it (``app.py``, no bytecode);
- ``kubernetes/python``: the kubernetes layer's distributions (their metadata's closure, as ``pip --target`` installs
  them) pruned by the real ``make -C layers/kubernetes prune``, then compiled by its real ``compile``;
- ``core/python``: ``fargate_app`` and pydantic with its dependencies, the core layer's content, compiled by the real
  ``make -C layers/core compile``;
- ``runtime/``: what Lambda provides (boto3 and its dependencies in the runtime, Powertools and the X-Ray SDK from
  AWS's public layer), linked from the virtualenv *with* bytecode, as AWS ships them.

Both layers' bytecode is compiled by this interpreter (the build uses python3.12, the runtime's: a .pyc only serves
the version that wrote it). Lambda's /var/task and /opt are read-only, so nothing else can be cached at a cold start;
the child interpreters run with ``-B`` (write none) and ``-S`` (no site-packages: only these trees are importable).
"""

from __future__ import annotations

import compileall
import shutil
from importlib import metadata
from pathlib import Path

from fargate_sandbox.lambda_layers import (  # noqa: F401 - re-exported for the figures
    CORE_LAYER_DISTRIBUTIONS,
    KUBERNETES_LAYER_ROOTS,
    LAMBDA_PROVIDED,
    copy_distribution,
    distribution_closure,
    drop_bytecode,
    ignore_bytecode,
    layer_make,
    link_distribution,
    top_level,
    tree_bytes,
)

ROOT = Path(__file__).resolve().parents[1]


class LambdaLayout:
    """The trees above under ``workdir``; ``python_path(function, kubernetes)`` is the sys.path Lambda would set."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runtime = workdir / "runtime"
        self.core = workdir / "core" / "python"
        self.kubernetes = workdir / "kubernetes" / "python"
        self.tasks = workdir / "task"

    def build(self, functions: dict[str, Path]) -> LambdaLayout:
        """Assemble every tree as shipped; ``functions`` maps a logical id to its CodeUri folder.

        Raises:
            subprocess.CalledProcessError: a layer Makefile's prune or compile failed.
        """
        self.runtime.mkdir(parents=True)
        for name in LAMBDA_PROVIDED:
            link_distribution(name, self.runtime)
            for top in top_level(name):  # AWS ships these compiled: make sure the venv's caches exist
                source = Path(str(metadata.distribution(name).locate_file(top)))
                if source.is_dir():
                    compileall.compile_dir(source, quiet=2, workers=0)
        self.core.mkdir(parents=True)
        shutil.copytree(ROOT / "layers" / "core" / "fargate_app", self.core / "fargate_app", ignore=ignore_bytecode)
        for name in CORE_LAYER_DISTRIBUTIONS:
            copy_distribution(name, self.core)
        layer_make(ROOT / "layers" / "core", "compile", self.core)
        self.kubernetes.mkdir(parents=True)
        for name in distribution_closure(KUBERNETES_LAYER_ROOTS):
            copy_distribution(name, self.kubernetes)
        layer_make(ROOT / "layers" / "kubernetes", "prune", self.kubernetes)
        layer_make(ROOT / "layers" / "kubernetes", "compile", self.kubernetes)
        for logical_id, code_dir in functions.items():
            shutil.copytree(code_dir, self.tasks / logical_id, ignore=ignore_bytecode)
        return self

    def python_path(self, function: str | None, kubernetes: bool) -> list[str]:
        """Lambda's order: the task root, then /opt/python (every layer merged), then the runtime's packages."""
        path = [str(self.tasks / function)] if function else []
        if kubernetes:
            path.append(str(self.kubernetes))
        if function:
            path.append(str(self.core))
        return [*path, str(self.runtime)]

    def drop_layer_bytecode(self) -> None:
        """The informational variant: both layers as they were before they shipped bytecode."""
        drop_bytecode(self.core)
        drop_bytecode(self.kubernetes)
