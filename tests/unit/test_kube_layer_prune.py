"""The pruned, compiled kubernetes layer still serves the handlers (layers/kubernetes/Makefile, ``prune`` then
``compile``).

The layer's own build downloads arm64 wheels, which cannot be imported on this machine; so the test assembles the
same distributions (kubernetes, kubernetes-validate and their dependencies, found through their metadata, as pip
--target would install them) from the development virtualenv, runs the Makefile's real ``prune`` and ``compile`` on
them (compile with this interpreter: a .pyc serves only the Python version that wrote it), does the same with the
core layer's ``compile``, and imports the four handlers in a fresh interpreter whose path holds only: the pruned
layer, the core layer (and its pinned pydantic), and what Lambda provides (the runtime's boto3, the Powertools
layer). Every module it imports from the layers must come with the unchecked-hash bytecode the build ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fargate_sandbox.lambda_layers import (
    CORE_LAYER_DISTRIBUTIONS,
    KUBERNETES_LAYER_ROOTS,
    LAMBDA_PROVIDED,
    copy_distribution,
    distribution_closure,
    ignore_bytecode,
    layer_make,
    link_distribution,
    tree_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
MAX_LAYER_BYTES = 40 * 1024 * 1024


PROBE = r"""
import importlib.util, json, pathlib, sys
layer, core = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[3])
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
    ClusterEndpoint("blog", "https://127.0.0.1:1", "", "1.31"), EksToken("t")), 0.0)
assert type(api.apps).__name__ == "AppsV1Api" and type(api.networking).__name__ == "NetworkingV1Api"
assert type(api.core).__name__ == "CoreV1Api"
try:
    import kubernetes.aio
except ImportError:
    pass
else:
    raise AssertionError("kubernetes.aio should have been pruned")
assert "pydantic" not in {p.name for p in layer.iterdir()}
from_layers = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None)
               and pathlib.Path(m.__file__).suffix == ".py"
               and (pathlib.Path(m.__file__).is_relative_to(layer) or pathlib.Path(m.__file__).is_relative_to(core))]
assert any(m.__name__ == "kubernetes.client.api.core_v1_api" for m in from_layers)
assert any(m.__name__ == "fargate_app.kube.steps" for m in from_layers)
for module in from_layers:  # flags 1: hash-based, source unchecked (PEP 552)
    cached = pathlib.Path(module.__cached__)
    assert cached.is_file(), f"{module.__name__}: no bytecode at {cached}"
    assert int.from_bytes(cached.read_bytes()[4:8], "little") == 1, f"{cached}: not unchecked-hash"
print("ok", len(from_layers))
"""


def test_the_pruned_layer_imports_everything_the_handlers_use(tmp_path):
    # Given the layer's distributions, as pip --target installs them, pruned and compiled by the Makefile
    layer = tmp_path / "layer" / "python"
    for name in distribution_closure(KUBERNETES_LAYER_ROOTS):
        copy_distribution(name, layer)
    assert (layer / "kubernetes" / "aio").is_dir() and (layer / "aiohttp").is_dir()
    layer_make(ROOT / "layers" / "kubernetes", "prune", layer)
    layer_make(ROOT / "layers" / "kubernetes", "compile", layer)
    # and the core layer's package, compiled by its own Makefile
    core = tmp_path / "core" / "python"
    shutil.copytree(ROOT / "layers" / "core" / "fargate_app", core / "fargate_app", ignore=ignore_bytecode)
    layer_make(ROOT / "layers" / "core", "compile", core)

    # Then what we never import is gone, and the layer is small, bytecode included
    assert not (layer / "kubernetes" / "aio").exists()
    assert not (layer / "aiohttp").exists()
    apis = sorted(p.name for p in (layer / "kubernetes" / "client" / "api").glob("*.py"))
    assert apis == ["__init__.py", "apps_v1_api.py", "core_v1_api.py", "networking_v1_api.py"]
    schemas = sorted(p.name for p in (layer / "kubernetes_validate" / "kubernetes-json-schema").iterdir())
    assert schemas[0] == "v1.29.0-local-strict" and all(s.endswith("-local-strict") for s in schemas)
    assert next(layer.glob("kubernetes/client/api/__pycache__/core_v1_api.*.pyc"))
    assert tree_bytes(layer) <= MAX_LAYER_BYTES, f"{tree_bytes(layer) / 2**20:.1f} MiB"

    # And a clean interpreter with only the layers' and Lambda's packages runs the handlers' imports and validation
    # from the layers' bytecode (-B: it writes none, as on Lambda's read-only file system)
    provided = tmp_path / "provided"
    provided.mkdir()
    for name in CORE_LAYER_DISTRIBUTIONS + LAMBDA_PROVIDED:
        link_distribution(name, provided)
    path = os.pathsep.join([str(layer), str(core), str(provided)])
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": path,
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    probe = subprocess.run(
        [sys.executable, "-S", "-B", "-c", PROBE, str(layer), str(ROOT), str(core)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip().startswith("ok")
