"""The same request has the same outcome every time. A digest reference used to succeed or fail depending
on whether another warm of its tag had finished first; now ``name:tag@digest`` is pulled through its tag and pinned,
and a digest without its tag is refused before anything is created."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from reliability_support import REQUEST, cause_of

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_determinism")
# Ten provisions start at once: their cold starts need a slower pod than the suite's for every rollout
# poll to turn at least twice (conftest.py).
POD_TIME_SCALE = 0.25
RUNS = 10


def test_a_pinned_image_reference_has_the_same_outcome_on_every_run(
    sandbox: Sandbox, workflows: Workflows, figures: Any, burst_lock: Any
) -> None:
    digest = sandbox.upstreams.digest("public.ecr.aws", "nginx/nginx", "stable")  # type: ignore[union-attr]
    namespace = f"pinned-{uuid.uuid4().hex[:6]}"
    cases = {
        "name:tag@digest": (f"public.ecr.aws/nginx/nginx:stable@{digest}", "SUCCEEDED"),
        "name@digest": (f"public.ecr.aws/nginx/nginx@{digest}", "InvalidRequest"),
    }
    with burst_lock():  # ten executions at once: alone on the two cores (tests/conftest.py)
        for label, (image, expected) in cases.items():
            # When the same request is started ten times, all at once (apps of one namespace share its profile)
            started = [
                workflows.start(
                    "ProvisionStateMachine", {**REQUEST, "namespace": namespace, "app": f"app-{i}", "image": image}
                )
                for i in range(RUNS)
            ]
            outcomes = [workflows.wait(arn, timeout_s=300) for arn in started]
            # Then every run ends the same way
            seen = []
            for outcome in outcomes:
                if outcome["status"] == "SUCCEEDED":
                    result = json.loads(outcome["output"])
                    seen.append(("SUCCEEDED", result["image"]["cached"].rsplit("@", 1)[1]))
                else:
                    seen.append((str(cause_of(outcome).get("error")), ""))
            figures.add(
                "determinism",
                request=label,
                runs=RUNS,
                expected=expected,
                same=seen.count((expected, digest if expected == "SUCCEEDED" else "")),
                outcome=", ".join(sorted({outcome for outcome, _ in seen})),
            )
            assert {outcome for outcome, _ in seen} == {expected}, (label, seen)
            if expected == "SUCCEEDED":
                assert {pinned for _, pinned in seen} == {digest}, label
