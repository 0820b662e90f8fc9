"""A Lambda-shaped file layout on this machine: the task root, the layers under /opt/python, the runtime's packages.

`sam build` makes arm64/python3.12 artifacts, which this x86_64 machine cannot import (pydantic_core, rpds are
compiled), so the cold-import benchmark assembles the same trees from the development virtualenv, as
tests/unit/test_kube_layer_prune.py does for its proof:

- ``task/``: the function's folder as `sam build` copies it (``app.py``, no bytecode);
- ``kubernetes/python``: the kubernetes layer's distributions (their metadata's closure, as ``pip --target`` installs
  them) pruned by the real ``make -C layers/kubernetes prune`` — no bytecode, as the layer build leaves it;
- ``core/python``: ``fargate_app`` and pydantic with its dependencies, the core layer's content (no bytecode: `sam
  build` ships none);
- ``runtime/``: what Lambda provides (boto3 and its dependencies in the runtime, Powertools and the X-Ray SDK from
  AWS's public layer), linked from the virtualenv *with* bytecode, as AWS ships them.

Lambda's /var/task and /opt are read-only, so no cold start can cache bytecode for what ships without it; the child
interpreters run with ``-B`` (write none) and ``-S`` (no site-packages: only these trees are importable).
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from fargate_sandbox.lambda_layers import (  # noqa: F401 - re-exported for the figures
    CORE_LAYER_DISTRIBUTIONS,
    KUBERNETES_LAYER_ROOTS,
    LAMBDA_PROVIDED,
    copy_distribution,
    distribution_closure,
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
        """Assemble every tree; ``functions`` maps a logical id to its CodeUri folder.

        Raises:
            subprocess.CalledProcessError: the layer Makefile's prune failed.
        """
        self.runtime.mkdir(parents=True)
        for name in LAMBDA_PROVIDED:
            link_distribution(name, self.runtime)
            for top in top_level(name):  # AWS ships these compiled: make sure the venv's caches exist
                source = Path(str(metadata.distribution(name).locate_file(top)))
                if source.is_dir():
                    compileall.compile_dir(source, quiet=2, workers=0)
        self.core.mkdir(parents=True)
        shutil.copytree(ROOT / "layers" / "core" / "fargate_app", self.core / "fargate_app", ignore=_no_bytecode)
        for name in CORE_LAYER_DISTRIBUTIONS:
            copy_distribution(name, self.core)
        self.kubernetes.mkdir(parents=True)
        for name in distribution_closure(KUBERNETES_LAYER_ROOTS):
            copy_distribution(name, self.kubernetes)
        subprocess.run(  # noqa: S603 - the repository's own Makefile
            [  # noqa: S607 - make from PATH, as `make bench` itself
                "make",
                "--no-print-directory",
                "-s",
                "prune",
                f"PYTHON_DIR={self.kubernetes}",
                f"PYTHON={sys.executable}",
            ],
            cwd=ROOT / "layers" / "kubernetes",
            check=True,
            capture_output=True,
        )
        for logical_id, code_dir in functions.items():
            shutil.copytree(code_dir, self.tasks / logical_id, ignore=_no_bytecode)
        return self

    def python_path(self, function: str | None, kubernetes: bool) -> list[str]:
        """Lambda's order: the task root, then /opt/python (every layer merged), then the runtime's packages."""
        path = [str(self.tasks / function)] if function else []
        if kubernetes:
            path.append(str(self.kubernetes))
        if function:
            path.append(str(self.core))
        return [*path, str(self.runtime)]

    def drop_xray_tracer(self) -> bool:
        """The proposal's variant: the copies of ``fargate_app.observability`` and the handlers without Powertools'
        Tracer (whose X-Ray SDK builds two botocore clients at import). False if the code no longer has the shape
        this edit expects (then the variant is not measured)."""
        observability = self.core / "fargate_app" / "observability.py"
        handlers = sorted(self.tasks.glob("*/app.py"))
        texts = {path: path.read_text() for path in [observability, *handlers]}
        if "tracer = Tracer()" not in texts[observability]:
            return False
        observability.write_text(
            texts[observability]
            .replace(
                "from aws_lambda_powertools import Logger, Metrics, Tracer",
                "from aws_lambda_powertools import Logger, Metrics",
            )
            .replace("tracer = Tracer()\n", "")
        )
        for handler in handlers:
            handler.write_text(
                texts[handler]
                .replace("@tracer.capture_lambda_handler\n", "")
                .replace(
                    "from fargate_app.observability import logger, tracer",
                    "from fargate_app.observability import logger",
                )
                .replace(
                    "from fargate_app.observability import tracer, logger",
                    "from fargate_app.observability import logger",
                )
            )
        for cache in [*self.tasks.rglob("__pycache__"), *self.core.rglob("__pycache__")]:
            shutil.rmtree(cache, ignore_errors=True)
        return True

    def compile_shipped(self) -> None:
        """The proposal's variant: bytecode compiled into the task root and the layers at build time."""
        for tree in (self.tasks, self.core, self.kubernetes):
            compileall.compile_dir(
                tree, quiet=2, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
            )


def _no_bytecode(_directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]
