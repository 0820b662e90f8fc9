"""The pruned kubernetes layer still serves the handlers (layers/kubernetes/Makefile, target ``prune``).

The layer's own build downloads arm64 wheels, which cannot be imported on this machine; so the test assembles the
same distributions (kubernetes, kubernetes-validate and their dependencies, found through their metadata, as pip
--target would install them) from the development virtualenv, runs the Makefile's real ``prune`` on them, and
imports the four handlers in a fresh interpreter whose path holds only: the pruned layer, the core layer (and its
pinned pydantic), and what Lambda provides (the runtime's boto3, the Powertools layer).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fargate_sandbox.lambda_layers import (
    CORE_LAYER_DISTRIBUTIONS,
    KUBERNETES_LAYER_ROOTS,
    LAMBDA_PROVIDED,
    copy_distribution,
    distribution_closure,
    link_distribution,
    tree_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
MAX_LAYER_BYTES = 40 * 1024 * 1024


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
    for name in distribution_closure(KUBERNETES_LAYER_ROOTS):
        copy_distribution(name, layer)
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
    assert tree_bytes(layer) <= MAX_LAYER_BYTES, f"{tree_bytes(layer) / 2**20:.1f} MiB"

    # And a clean interpreter with only the layers' and Lambda's packages runs the handlers' imports and validation
    provided = tmp_path / "provided"
    provided.mkdir()
    for name in CORE_LAYER_DISTRIBUTIONS + LAMBDA_PROVIDED:
        link_distribution(name, provided)
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
