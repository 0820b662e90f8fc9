"""Figure 8: the sandbox for real clients.

(a) ``fargate-app sandbox serve --port 0 --state-dir DIR``: wall time from starting the process to its line
``sandbox ready: source DIR/env`` (every part answers, the env file and kubeconfig are written).
(b) ``kubectl rollout status`` of a new Deployment: how long after its pod became Running the real kubectl returns.
The emulator runs the Fargate scheduler with a 2 s pod start; a poller reads the pods every 20 ms (each read
reconciles, so the pod turns Running on time) and notes when one is Running; kubectl was started before, so it
returns on the watch event that makes the rollout complete, not on a poll of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.report import Figure, Row, median
from benchmarks.sandbox_runs import ROOT

READY_GOAL_SECONDS = 5.0
ROLLOUT_GOAL_SECONDS = 1.0
_READY = re.compile(r"sandbox ready: source (.+)")


def _fargate_app() -> str:
    return shutil.which("fargate-app") or str(ROOT / ".venv" / "bin" / "fargate-app")


def _serve_ready_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stdout"
        started = time.monotonic()
        with out.open("w") as sink:
            process = subprocess.Popen(  # noqa: S603 - the project's own CLI
                [_fargate_app(), "sandbox", "serve", "--port", "0", "--state-dir", f"{folder}/state"],
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
            try:
                while not _READY.search(out.read_text()):
                    if process.poll() is not None or time.monotonic() - started > 120:
                        raise RuntimeError("sandbox serve did not become ready")
                    time.sleep(0.02)
                return time.monotonic() - started
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(60)


def _rollout_lag_seconds(kubectl: str) -> float:
    from kube_emulator import AllowAll, FargateLikeScheduler, KubeEmulator, PodTiming, static_profiles

    scheduler = FargateLikeScheduler(
        "us-west-2", static_profiles([{"namespace": "*"}]), timing=PodTiming(node_seconds=1.0, start_seconds=2.0)
    )
    with KubeEmulator(scheduler=scheduler, authenticator=AllowAll()) as emulator, tempfile.TemporaryDirectory() as d:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": emulator.endpoint, "certificate-authority-data": emulator.ca_data}}],
            "users": [{"name": "u", "user": {"token": "bench"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }  # fmt: skip
        (Path(d) / "kubeconfig").write_text(json.dumps(config))
        env = {**os.environ, "KUBECONFIG": f"{d}/kubeconfig"}
        emulator.api.handle("POST", "/api/v1/namespaces", {}, "application/json", b'{"metadata":{"name":"b"}}')
        labels = {"app": "web"}
        deployment = {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}},
            },
        }
        path = "/apis/apps/v1/namespaces/b/deployments"
        emulator.api.handle("POST", path, {}, "application/json", json.dumps(deployment).encode())
        rollout = subprocess.Popen(  # noqa: S603 - the real kubectl
            [kubectl, "rollout", "status", "deploy/web", "-n", "b", "--timeout=60s"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running_at: list[float] = []

        def poll() -> None:
            while not running_at and rollout.poll() is None:
                if any(p["status"].get("phase") == "Running" for p in emulator.objects("Pod", "b")):
                    running_at.append(time.monotonic())
                time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        rollout.wait(90)
        returned_at = time.monotonic()
        poller.join()
        if rollout.returncode != 0 or not running_at:
            raise RuntimeError(f"kubectl rollout status exited {rollout.returncode}")
        return returned_at - running_at[0]


def run(runs: int) -> Figure:
    started = time.monotonic()
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("no kubectl: run `python tools/kubectl.py --dest .venv/bin` and set KUBECTL")
    ready = [_serve_ready_seconds() for _ in range(runs)]
    lags = [_rollout_lag_seconds(kubectl) for _ in range(runs)]
    figure = Figure(8, "The sandbox for real clients", __doc__ or "")
    figure.rows = [
        Row("sandbox serve → sandbox ready", median(ready), "s", f"<= {READY_GOAL_SECONDS:g} s",
            median(ready) <= READY_GOAL_SECONDS, runs=runs),
        Row("kubectl rollout status after the pod is Running", median(lags), "s", f"<= {ROLLOUT_GOAL_SECONDS:g} s",
            max(lags) <= ROLLOUT_GOAL_SECONDS, runs=runs, note="verdict on the worst run"),
    ]  # fmt: skip
    figure.details = [
        "- serve → ready, every run: " + ", ".join(f"{v:.2f} s" for v in ready),
        "- rollout status lag, every run: " + ", ".join(f"{v:.2f} s" for v in lags),
    ]
    figure.seconds = time.monotonic() - started
    return figure
