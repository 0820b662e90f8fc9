"""Both layers' bytecode targets are one file (layers/core/lambda-bytecode.mk), which the kubernetes layer holds as
a symbolic link: checked here with sam build's own pieces, the copy it makes of a layer's folder
(aws_lambda_builders' CopySourceAction) and the checksum its cache compares (samcli's dir_checksum)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from aws_lambda_builders.actions import CopySourceAction
from samcli.lib.utils.hash import dir_checksum

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "kubernetes")
FRAGMENT = "lambda-bytecode.mk"


def test_the_kubernetes_layer_links_to_the_core_layers_fragment() -> None:
    linked = ROOT / "layers" / "kubernetes" / FRAGMENT
    assert linked.is_symlink()
    assert linked.resolve() == (ROOT / "layers" / "core" / FRAGMENT).resolve()


def test_sam_builds_copy_of_the_layer_holds_the_fragment_as_a_file(tmp_path: Path) -> None:
    # When sam build copies the kubernetes layer's folder to build it there
    CopySourceAction(str(ROOT / "layers" / "kubernetes"), str(tmp_path / "copy")).execute()

    # Then the copy holds the fragment's content as a regular file (a relative link would point nowhere there)
    copied = tmp_path / "copy" / FRAGMENT
    assert not copied.is_symlink()
    assert copied.read_text() == (ROOT / "layers" / "core" / FRAGMENT).read_text()


def test_a_change_to_the_fragment_invalidates_both_layers_cached_builds(tmp_path: Path) -> None:
    # Given a copy of the layers, links kept as links
    layers = tmp_path / "layers"
    shutil.copytree(ROOT / "layers", layers, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    before = {name: dir_checksum(str(layers / name)) for name in LAYERS}

    # When the shared fragment changes
    with (layers / "core" / FRAGMENT).open("a") as fragment:
        fragment.write("# changed\n")

    # Then the checksum sam build's cache compares changes for both layers
    after = {name: dir_checksum(str(layers / name)) for name in LAYERS}
    assert all(after[name] != before[name] for name in LAYERS), (before, after)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_refuses_bytecode_of_another_python_than_lambdas(layer: str) -> None:
    # When a layer is built with an interpreter that is not Python 3.12 (this one is 3.11)
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "check-lambda-python", "LAMBDA_PYTHON=python3.11"],
        cwd=ROOT / "layers" / layer,
        capture_output=True,
        text=True,
        check=False,
    )

    # Then the build stops before compiling, naming the version it needs
    assert result.returncode != 0
    assert "python3.11 is missing or not Python 3.12, the Lambda runtime's version" in result.stderr


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layers_build_goal_stays_the_default(layer: str) -> None:
    # The fragment's targets are included last, so `make` alone still means the layer's build
    planned = subprocess.run(
        ["make", "-n", "-p", "ARTIFACTS_DIR=/nowhere"],
        cwd=ROOT / "layers" / layer,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    logical_id = {"core": "CoreLayer", "kubernetes": "KubernetesLayer"}[layer]
    assert f".DEFAULT_GOAL := build-{logical_id}" in planned
