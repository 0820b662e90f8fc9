"""The pruned kubernetes layer still serves the handlers (layers/kubernetes/Makefile, target ``prune``).

The layer's own build downloads arm64 wheels, which cannot be imported on this machine; so the test assembles the
same distributions (kubernetes, kubernetes-validate and their dependencies, found through their metadata, as pip
--target would install them) from the development virtualenv, runs the Makefile's real ``prune`` on them, and
imports the four handlers in a fresh interpreter whose path holds only: the pruned layer, the core layer (and its
pinned pydantic), and what Lambda provides (the runtime's boto3, the Powertools layer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LAYER_ROOTS = ["kubernetes", "kubernetes-validate"]
CORE_LAYER = ["pydantic", "pydantic-core", "typing-extensions", "annotated-types", "typing-inspection"]
LAMBDA_PROVIDED = ["boto3", "botocore", "jmespath", "s3transfer", "aws-lambda-powertools", "aws-xray-sdk", "wrapt"]
MAX_LAYER_BYTES = 40 * 1024 * 1024


def _requirements(name: str) -> list[str]:
    """Dependencies pip installs for Python 3.12 on Linux (no extras)."""
    found = []
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(
            {"extra": "", "python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux"}
        ):
            found.append(requirement.name)
    return found


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        pending.extend(_requirements(name))
    return seen


def _copy_distribution(name: str, target: Path) -> None:
    dist = metadata.distribution(name)
    for file in dist.files or []:
        if "__pycache__" in file.parts or file.parts[0] == ".." or file.suffix == ".pyc":
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _link_distribution(name: str, target: Path) -> None:
    dist = metadata.distribution(name)
    for top in {file.parts[0] for file in dist.files or [] if file.parts[0] != ".."}:
        source = Path(str(dist.locate_file(top)))
        if source.exists() and not (target / top).exists():
            (target / top).symlink_to(source)


def _size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


PROBE = r"""
import importlib.util, json, pathlib, sys
layer = pathlib.Path(sys.argv[1])
for name in ("apply_app", "check_rollout", "delete_app", "check_pods_gone"):
    spec = importlib.util.spec_from_file_location(f"handler_{name}", f"{sys.argv[2]}/functions/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.lambda_handler)
import kubernetes.client, kubernetes_validate, urllib3
assert pathlib.Path(kubernetes.client.__file__).is_relative_to(layer), kubernetes.client.__file__
assert pathlib.Path(kubernetes_validate.__file__).is_relative_to(layer)
from fargate_app.kube.auth import EksToken
from fargate_app.kube.client import ClusterEndpoint, KubeApi, build_api_client
from fargate_app.kube.manifests import app_manifests, validate_manifest
from fargate_app.models import parse_request
request = parse_request({"cluster": "blog", "app": "demo", "namespace": "fargate", "image": "public.ecr.aws/nginx/nginx:stable",
                         "port": 80, "expose": {"ingress": {}}})
image = "111122223333.dkr.ecr.us-west-2.amazonaws.com/ecr-public/nginx/nginx@sha256:" + "0" * 64
for version in ("1.29", "1.31", "1.37"):
    for manifest in app_manifests(request, image, "arn:aws:states:us-west-2:111122223333:execution:p:e"):
        validate_manifest(manifest, version)
bad = app_manifests(request, image, "arn:aws:states:us-west-2:111122223333:execution:p:e")[1]
bad["spec"]["replicas"] = "one"
try:
    validate_manifest(bad, "1.31")
except Exception as exc:
    assert type(exc).__name__ == "ManifestInvalid", exc
else:
    raise AssertionError("the pruned schemas accepted a wrong type")
api = KubeApi(ClusterEndpoint("blog", "https://127.0.0.1:1", "", "1.31"), build_api_client(
    ClusterEndpoint("blog", "https://127.0.0.1:1", "", "1.31"), EksToken("t", 0.0)), 0.0)
assert type(api.apps).__name__ == "AppsV1Api" and type(api.networking).__name__ == "NetworkingV1Api"
try:
    import kubernetes.aio
except ImportError:
    pass
else:
    raise AssertionError("kubernetes.aio should have been pruned")
assert "pydantic" not in {p.name for p in layer.iterdir()}
print("ok")
"""


def test_the_pruned_layer_imports_everything_the_handlers_use(tmp_path):
    # Given the layer's distributions, as pip --target installs them, pruned by the Makefile
    layer = tmp_path / "layer" / "python"
    for name in sorted(_closure(LAYER_ROOTS)):
        _copy_distribution(name, layer)
    assert (layer / "kubernetes" / "aio").is_dir() and (layer / "aiohttp").is_dir()
    subprocess.run(
        ["make", "--no-print-directory", "-s", "prune", f"PYTHON_DIR={layer}", f"PYTHON={sys.executable}"],
        cwd=ROOT / "layers" / "kubernetes",
        check=True,
        capture_output=True,
    )

    # Then what we never import is gone, and the layer is small
    assert not (layer / "kubernetes" / "aio").exists()
    assert not (layer / "aiohttp").exists()
    schemas = sorted(p.name for p in (layer / "kubernetes_validate" / "kubernetes-json-schema").iterdir())
    assert schemas[0] == "v1.29.0-local-strict" and all(s.endswith("-local-strict") for s in schemas)
    assert _size(layer) <= MAX_LAYER_BYTES, f"{_size(layer) / 2**20:.1f} MiB"

    # And a clean interpreter with only the layers' and Lambda's packages runs the handlers' imports and validation
    provided = tmp_path / "provided"
    provided.mkdir()
    for name in CORE_LAYER + LAMBDA_PROVIDED:
        _link_distribution(name, provided)
    path = os.pathsep.join([str(layer), str(ROOT / "layers" / "core"), str(provided)])
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    probe = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(layer), str(ROOT)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip().endswith("ok")
