"""Real kubectl against the emulator: the commands people type every day work as they do against EKS.

The client is the real binary (``$KUBECTL``, resolved by ``tools/kubectl.py``: the machine's kubectl when its version
fits, else the pinned 1.33 from PyPI), never an imitation. ``test_everyday_commands`` runs a user's session command by
command and records each row (command → works) before it asserts; with ``KUBECTL_CONFORMANCE_DOC`` set (``make
test``) the table is written into that file between its markers. The other tests pin down what the rows only sample:
Table columns, watch events, patch semantics, dry runs, subresources and the "not emulated" answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest
import yaml
from deployments import deployment

from kube_emulator import AllowAll, FargateLikeScheduler, KubeEmulator, PodTiming, static_profiles

START, END = "<!-- kubectl-conformance:start -->", "<!-- kubectl-conformance:end -->"
DEPLOYMENT = deployment("web", "nginx:1.27", container="web")
DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]


def kubectl_binary() -> str:
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert binary, "make test resolves a real kubectl (tools/kubectl.py); run it or set KUBECTL"
    return binary


class Cluster(NamedTuple):
    emulator: KubeEmulator
    env: dict[str, str]
    folder: Path

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_binary(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def manifest(self, name: str, obj: dict[str, Any]) -> str:
        path = self.folder / name
        path.write_text(yaml.safe_dump(obj))
        return str(path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An emulator where every namespace is on Fargate (profile selector ``*``) and pods start in 0.3 s."""
    scheduler = FargateLikeScheduler(
        "us-west-2", static_profiles([{"namespace": "*"}]), timing=PodTiming(node_seconds=0.1, start_seconds=0.3)
    )
    with KubeEmulator(scheduler=scheduler, authenticator=AllowAll()) as emulator:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "blog",
                    "cluster": {"server": emulator.endpoint, "certificate-authority-data": emulator.ca_data},
                }
            ],
            "users": [{"name": "admin", "user": {"token": "conformance"}}],
            "contexts": [{"name": "blog", "context": {"cluster": "blog", "user": "admin"}}],
            "current-context": "blog",
        }
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps(config))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}
        yield Cluster(emulator, env, tmp_path)


# (the command as a user types it, kubectl's arguments, what its output shows when it worked)
def session(web: str) -> list[tuple[str, list[str], str]]:
    ns = ["-n", "shop"]
    return [
        ("kubectl version", ["version"], "Server Version: v1.31"),
        ("kubectl get --raw /readyz", ["get", "--raw", "/readyz"], "ok"),
        ("kubectl api-resources", ["api-resources"], "deploy"),
        ("kubectl create namespace", ["create", "namespace", "shop"], "namespace/shop created"),
        ("kubectl create --dry-run=server", ["create", "namespace", "dry", "--dry-run=server"], "(server dry run)"),
        ("kubectl apply (client-side)", ["apply", "-f", web, *ns], "deployment.apps/web created"),
        ("kubectl apply (client-side, again)", ["apply", "-f", web, *ns], "deployment.apps/web unchanged"),
        ("kubectl apply --server-side", ["apply", "--server-side", "-f", web, *ns], "serverside-applied"),
        ("kubectl rollout status", ["rollout", "status", "deploy/web", *ns, "--timeout=30s"], "successfully rolled out"),
        ("kubectl get pods -o wide", ["get", "pods", "-o", "wide", *ns], "fargate-ip-"),
        ("kubectl get nodes", ["get", "nodes"], "Ready"),
        ("kubectl get all", ["get", "all", *ns], "deployment.apps/web"),
        ("kubectl describe deployment", ["describe", "deploy", "web", *ns], "Replicas:"),
        ("kubectl scale", ["scale", "deploy/web", "--replicas=2", *ns], "deployment.apps/web scaled"),
        ("kubectl wait --for=jsonpath", ["wait", "--for=jsonpath={.status.readyReplicas}=2", "deploy/web", *ns, "--timeout=30s"], "condition met"),
        ("kubectl label", ["label", "deploy/web", "tier=front", *ns], "deployment.apps/web labeled"),
        ("kubectl annotate", ["annotate", "deploy/web", "owner=team", *ns], "deployment.apps/web annotated"),
        ("kubectl patch (strategic)", ["patch", "deploy/web", *ns, "-p", '{"spec":{"replicas":1}}'], "patched"),
        ("kubectl patch --type=merge", ["patch", "deploy/web", *ns, "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}'], "patched"),
        ("kubectl patch --type=json", ["patch", "deploy/web", *ns, "--type=json", "-p", '[{"op":"add","path":"/metadata/labels/j","value":"1"}]'], "patched"),
        ("kubectl set image", ["set", "image", "deploy/web", "web=nginx:1.28", *ns], "image updated"),
        ("kubectl edit", ["edit", "deploy/web", *ns], "edited"),
        ("kubectl rollout restart", ["rollout", "restart", "deploy/web", *ns], "restarted"),
        ("kubectl rollout status (after restart)", ["rollout", "status", "deploy/web", *ns, "--timeout=30s"], "successfully rolled out"),
        ("kubectl wait --for=condition", ["wait", "--for=condition=Available", "deploy/web", *ns, "--timeout=30s"], "condition met"),
        ("kubectl get events", ["get", "events", *ns], "Scheduled"),
        ("kubectl create deployment", ["create", "deployment", "api", "--image=nginx:1.27", *ns], "deployment.apps/api created"),
        ("kubectl expose", ["expose", "deployment", "api", "--port=80", *ns], "service/api exposed"),
        ("kubectl get svc", ["get", "svc", *ns], "ClusterIP"),
        ("kubectl explain", ["explain", "deployment.spec.replicas"], "replicas"),
        ("kubectl delete --dry-run=server", ["delete", "deploy/web", *ns, "--dry-run=server"], "(server dry run)"),
        ("kubectl delete", ["delete", "deploy/web", *ns], 'deployment.apps "web" deleted'),
        ("kubectl delete namespace", ["delete", "namespace", "shop"], 'namespace "shop" deleted'),
    ]  # fmt: skip


def write_table(rows: list[tuple[str, bool, str]], document: Path) -> None:
    version = subprocess.run([kubectl_binary(), "version", "--client"], capture_output=True, text=True, check=False)
    lines = [f"With `{version.stdout.splitlines()[0]}`:", "", "| command | works | kubectl printed |", "|---|---|---|"]
    for command, works, shown in rows:
        lines.append(f"| `{command}` | {'yes' if works else '**no**'} | `{shown.strip().replace('|', '/')[:90]}` |")
    text = document.read_text()
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    document.write_text(f"{before}{START}\n{chr(10).join(lines)}\n{END}{after}")


def test_everyday_commands(cluster: Cluster, tmp_path: Path) -> None:
    # Given a user's session, and an editor that changes the replicas as a person would in `kubectl edit`
    web = cluster.manifest("web.yaml", DEPLOYMENT)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 1$/replicas: 2/' \"$1\"\n")
    editor.chmod(0o755)
    cluster.env["KUBE_EDITOR"] = str(editor)
    rows = []
    # When each command runs
    for command, args, shown in session(web):
        done = cluster.kubectl(*args)
        printed = done.stdout or done.stderr
        line = next((line for line in printed.splitlines() if shown in line), printed.strip().split("\n")[0])
        rows.append((command, done.returncode == 0 and shown in done.stdout, line))
    document = os.environ.get("KUBECTL_CONFORMANCE_DOC")
    if document:
        write_table(rows + extra_rows(), Path(document))
    # Then every one worked
    assert [(c, out) for c, works, out in rows if not works] == []


def extra_rows() -> list[tuple[str, bool, str]]:
    """Rows the focused tests below prove (they run the command in a shape a loop cannot)."""
    return [
        ("kubectl get -w", True, "a row per change (test_get_watch_prints_a_row_per_change)"),
        ("kubectl logs / exec / port-forward", True, "not emulated: the documented error (test_container_commands…)"),
    ]


def test_get_prints_the_columns_of_the_api_servers_printers(cluster: Cluster) -> None:
    # Given a running deployment
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    cluster.ok("rollout", "status", "deploy/web", "-n", "shop", "--timeout=30s")
    # When kubectl gets pods, nodes, deployments and replicasets, wide
    pods = cluster.ok("get", "pods", "-n", "shop", "-o", "wide")
    nodes = cluster.ok("get", "nodes", "-o", "wide", "--show-labels")
    deployments = cluster.ok("get", "deploy", "-n", "shop", "-o", "wide")
    replica_sets = cluster.ok("get", "rs", "-n", "shop")
    # Then the headers and cells are the server's printers'
    assert pods.split()[:9] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE"]
    assert re.search(r"web-\w+-\w+\s+1/1\s+Running\s+0\s+\d+s\s+10\.0\.1\.\d+\s+fargate-ip-10-0-1-\d+\.us-west-2", pods)
    assert nodes.split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert re.search(r"Ready\s+<none>\s+\d+s\s+v1\.31\.0-eks-emulated", nodes)
    for label in ("eks.amazonaws.com/compute-type=fargate", "topology.kubernetes.io/zone=us-west-2a"):
        assert label in nodes
    assert re.search(r"web\s+1/1\s+1\s+1\s+\d+s\s+web\s+nginx:1.27\s+app=web", deployments)
    # and a ReplicaSet reports its pods
    assert re.search(r"web-\w+\s+1\s+1\s+1\s+\d+s", replica_sets)


def test_get_watch_prints_a_row_per_change(cluster: Cluster) -> None:
    # Given a deployment, watched with kubectl get -w
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    watcher = subprocess.Popen(
        [kubectl_binary(), "get", "deploy", "web", "-n", "shop", "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        text=True,
        env=cluster.env,
    )
    output = OutputLines(watcher)
    try:
        lines = output.read(until=lambda seen: any("1/1" in line for line in seen))
        # When the deployment is scaled
        cluster.ok("scale", "deploy/web", "-n", "shop", "--replicas=2")
        lines += output.read(until=lambda seen: any(re.search(r"MODIFIED\s+web\s+\d/2", line) for line in seen))
    finally:
        watcher.kill()
        watcher.wait()
    # Then the first row is the object as it was, and every change after it comes as a MODIFIED row
    assert lines[0].split()[:2] == ["EVENT", "NAME"]
    assert lines[1].split()[:2] == ["ADDED", "web"]
    assert any(re.search(r"MODIFIED\s+web\s+\d/2", line) for line in lines)


class OutputLines:
    """A process's output lines, read by a thread as they come.

    ``select`` on the pipe cannot serve here: ``readline`` takes everything the pipe holds into the file object's
    buffer, so when kubectl writes the header and the first row at once, the row sits in that buffer while ``select``
    sees an empty pipe, and the wait runs out with the row already printed (seen under load)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def read(self, until: Any, seconds: float = 60) -> list[str]:
        """The lines until ``until`` holds; ``seconds`` only bounds a hang."""
        seen: list[str] = []
        deadline = time.monotonic() + seconds
        while not until(seen) and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                seen.append(self._lines.get(timeout=left))
        assert until(seen), f"kubectl printed: {seen}"
        return seen


def test_lines_written_at_once_are_all_read() -> None:
    # Given a process that prints a header and a row in one write, then stays up
    script = "import sys, time; sys.stdout.write('EVENT NAME\\nADDED web 1/1\\n'); sys.stdout.flush(); time.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        # When its lines are read until the row
        lines = OutputLines(process).read(until=lambda seen: any("1/1" in line for line in seen), seconds=10)
    finally:
        process.kill()
        process.wait()
    # Then both lines are there
    assert lines == ["EVENT NAME\n", "ADDED web 1/1\n"]


def test_dry_runs_store_nothing(cluster: Cluster) -> None:
    # Given a namespace with a deployment
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    # When a namespace is created, the deployment scaled and deleted, all with --dry-run=server
    cluster.ok("create", "namespace", "dry", "--dry-run=server")
    cluster.ok("patch", "deploy/web", "-n", "shop", "-p", '{"spec":{"replicas":5}}', "--dry-run=server")
    cluster.ok("delete", "deploy/web", "-n", "shop", "--dry-run=server")
    # Then none of it happened
    assert "NotFound" in cluster.kubectl("get", "namespace", "dry").stderr
    assert cluster.ok("get", "deploy/web", "-n", "shop", "-o", "jsonpath={.spec.replicas}") == "1"


PATCH_WEB = ("patch", "deploy/web", "-n", "shop", "-p")


def container_patch(container: dict[str, Any]) -> str:
    """A strategic merge patch naming one container of the pod template."""
    return json.dumps({"spec": {"template": {"spec": {"containers": [container]}}}})


def test_patches_merge_lists_by_their_merge_key(cluster: Cluster) -> None:
    # Given a deployment with two containers
    two = json.loads(json.dumps(DEPLOYMENT))
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1"})
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", two))
    # When a strategic patch names one container, a merge patch replaces a map entry and a JSON patch removes a label
    cluster.ok(*PATCH_WEB, container_patch({"name": "sidecar", "image": "busybox:2"}))
    cluster.ok("patch", "deploy/web", "-n", "shop", "--type=merge", "-p", '{"metadata":{"labels":{"a":"1","b":"2"}}}')
    cluster.ok(
        "patch", "deploy/web", "-n", "shop", "--type=json", "-p", '[{"op":"remove","path":"/metadata/labels/a"}]'
    )
    # Then the other container is kept, and the labels are exactly what the patches left
    live = json.loads(cluster.ok("get", "deploy/web", "-n", "shop", "-o", "json"))
    images = {c["name"]: c["image"] for c in live["spec"]["template"]["spec"]["containers"]}
    assert images == {"web": "nginx:1.27", "sidecar": "busybox:2"}
    assert live["metadata"]["labels"] == {"b": "2"}
    # and a strategic $patch: delete removes one container
    cluster.ok(*PATCH_WEB, container_patch({"name": "sidecar", "$patch": "delete"}))
    live = json.loads(cluster.ok("get", "deploy/web", "-n", "shop", "-o", "json"))
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_scale_and_status_subresources(cluster: Cluster) -> None:
    # Given a deployment
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    # When its scale subresource is read and written, and a status write tries to change the spec
    scale = json.loads(cluster.ok("get", "--raw", "/apis/apps/v1/namespaces/shop/deployments/web/scale"))
    cluster.ok("scale", "deploy/web", "-n", "shop", "--replicas=3")
    cluster.ok(
        "patch", "deploy/web", "-n", "shop", "--subresource=status", "--type=merge", "-p", '{"spec":{"replicas":9}}'
    )
    # Then the Scale is autoscaling/v1 with the selector as a string, and status writes leave the spec alone
    assert (scale["kind"], scale["apiVersion"], scale["spec"], scale["status"]["selector"]) == (
        "Scale", "autoscaling/v1", {"replicas": 1}, "app=web",
    )  # fmt: skip
    assert cluster.ok("get", "deploy/web", "-n", "shop", "-o", "jsonpath={.spec.replicas}") == "3"
    # and kubectl scale owns spec.replicas now: an apply that sets another value conflicts, as with an HPA on EKS
    conflict = cluster.kubectl(
        "apply", "--server-side", "--field-manager=ci", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT)
    )
    assert conflict.returncode != 0
    assert re.search(r'conflict with "kubectl[-\w]*".*\.spec\.replicas', conflict.stderr, re.S), conflict.stderr


def test_a_stale_resource_version_is_a_conflict(cluster: Cluster) -> None:
    # Given a deployment read at one resourceVersion, then changed by someone else
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    stale = json.loads(cluster.ok("get", "deploy/web", "-n", "shop", "-o", "json"))
    cluster.ok("label", "deploy/web", "-n", "shop", "changed=yes")
    # When the stale copy is replaced (PUT)
    stale["spec"]["replicas"] = 4
    done = cluster.kubectl("replace", "-f", "-", stdin=json.dumps(stale))
    # Then the API server's optimistic-concurrency conflict is the answer
    assert done.returncode != 0
    assert 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified' in done.stderr


def test_container_commands_answer_that_they_are_not_emulated(cluster: Cluster) -> None:
    # Given a running pod
    cluster.ok("create", "namespace", "shop")
    cluster.ok("apply", "-n", "shop", "-f", cluster.manifest("web.yaml", DEPLOYMENT))
    cluster.ok("rollout", "status", "deploy/web", "-n", "shop", "--timeout=30s")
    pod = cluster.ok("get", "pods", "-n", "shop", "-o", "jsonpath={.items[0].metadata.name}")
    # When its logs are asked for, a command is run in it, or a port forwarded to it
    logs = cluster.kubectl("logs", "-n", "shop", pod)
    executed = cluster.kubectl("exec", "-n", "shop", pod, "--", "true")
    forwarded = cluster.kubectl("port-forward", "-n", "shop", f"pod/{pod}", "8080:80", timeout=30)
    # Then each answer says what is not emulated and where it is documented
    for done, subresource in ((logs, "log"), (executed, "exec"), (forwarded, "portforward")):
        assert done.returncode != 0
        assert f"pods/{subresource} is not emulated" in done.stderr and "docs/sandbox.md" in done.stderr, done.stderr


def test_health_version_and_openapi(cluster: Cluster) -> None:
    # When the probes, the version and the OpenAPI index are read
    probes = [cluster.ok("get", "--raw", path) for path in ("/healthz", "/livez", "/readyz")]
    version = json.loads(cluster.ok("get", "--raw", "/version"))
    index = json.loads(cluster.ok("get", "--raw", "/openapi/v3"))
    apps = json.loads(cluster.ok("get", "--raw", index["paths"]["apis/apps/v1"]["serverRelativeURL"]))
    # Then they answer like a 1.31 API server, and the OpenAPI document lets kubectl leave validation to the server
    assert probes == ["ok", "ok", "ok"]
    assert (version["major"], version["minor"]) == ("1", "31")
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}
    ]
    # and OpenAPI v2 is there as JSON for JSON clients (kubectl itself asks for protobuf, is refused 406, uses v3)
    v2 = json.loads(cluster.ok("get", "--raw", "/openapi/v2"))
    assert v2["swagger"] == "2.0"
    assert v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}
    ]
    # and kubectl's own validation rejects an unknown field through it
    bad = json.loads(json.dumps(DEPLOYMENT))
    bad["spec"]["replicaz"] = 1
    cluster.ok("create", "namespace", "shop")
    refused = cluster.kubectl("apply", "-n", "shop", "-f", cluster.manifest("bad.yaml", bad))
    assert refused.returncode != 0 and "replicaz" in refused.stderr
