"""Lambda's layers assembled from the development virtualenv: which distributions a layer holds, copied as
``pip --target`` lays them out, and what the Lambda runtime (and AWS's Powertools layer) provides.

`sam build` makes arm64/python3.12 artifacts this machine cannot import, so the layer-prune test and the cold-import
benchmark build the same trees from ``.venv`` with these helpers, and run the layer Makefiles' own ``prune`` and
``compile`` targets on them (:func:`layer_make`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

KUBERNETES_LAYER_ROOTS = ("kubernetes", "kubernetes-validate")
CORE_LAYER_DISTRIBUTIONS = ("pydantic", "pydantic-core", "typing-extensions", "annotated-types", "typing-inspection")
# The python3.12 runtime's boto3 and its dependencies, AWS's Powertools layer and the X-Ray SDK it ships for its
# Tracer (which fargate_app does not use: nothing imports it, but Lambda has it on the path).
LAMBDA_PROVIDED = (
    "boto3",
    "botocore",
    "jmespath",
    "s3transfer",
    "urllib3",
    "python-dateutil",
    "six",
    "aws-lambda-powertools",
    "aws-xray-sdk",
    "wrapt",
)


def _requirements(name: str) -> list[str]:
    """The dependencies pip installs for Python 3.12 on Linux (no extras)."""
    found = []
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        environment = {"extra": "", "python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux"}
        if requirement.marker is None or requirement.marker.evaluate(environment):
            found.append(requirement.name)
    return found


def distribution_closure(roots: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key not in seen:
            seen.add(key)
            pending.extend(_requirements(name))
    return sorted(seen)


def top_level(name: str) -> set[str]:
    return {file.parts[0] for file in metadata.distribution(name).files or [] if file.parts[0] != ".."}


def copy_distribution(name: str, target: Path) -> None:
    """The distribution's files as pip --target lays them out, without bytecode."""
    dist = metadata.distribution(name)
    for file in dist.files or []:
        if "__pycache__" in file.parts or file.parts[0] == ".." or file.suffix == ".pyc":
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def link_distribution(name: str, target: Path) -> None:
    dist = metadata.distribution(name)
    for top in top_level(name):
        source = Path(str(dist.locate_file(top)))
        if source.exists() and not (target / top).exists():
            (target / top).symlink_to(source)


def tree_bytes(path: Path) -> int:
    """Unzipped size: the bytes of every regular file (symlinks not followed)."""
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file() and not file.is_symlink())


def layer_make(layer_dir: Path, target: str, python_dir: Path) -> None:
    """Run a layer Makefile's ``prune`` or ``compile`` on ``python_dir`` with this interpreter: the bytecode that
    ``compile`` writes must match the Python that imports it (the build itself compiles with python3.12).

    Raises:
        subprocess.CalledProcessError: the target failed (its output is in the exception).
    """
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            target,
            f"PYTHON_DIR={python_dir}",
            f"PYTHON={sys.executable}",
            f"BYTECODE_PYTHON={sys.executable}",
        ],
        cwd=layer_dir,
        check=True,
        capture_output=True,
    )


def ignore_bytecode(_directory: str, names: list[str]) -> list[str]:
    """``shutil.copytree``'s ``ignore``: a source tree as `sam build` finds it, without the development caches."""
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]


def drop_bytecode(tree: Path) -> None:
    """Remove every ``__pycache__`` under ``tree`` (what a layer without compiled bytecode would ship)."""
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        if cache.is_dir() and not cache.is_symlink():
            shutil.rmtree(cache)
