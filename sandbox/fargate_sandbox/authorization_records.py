"""Every authorization decision a sandbox made, written when it stops: what `make iam` reads to show, for each
function, the calls it made beside the grants that allowed them (docs/iam.md).

Written only when ``IAM_RESULTS_DIR`` names a directory; one JSON file per sandbox (the CLI's sandboxes included).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_DIR_VARIABLE = "IAM_RESULTS_DIR"


def write(aws: Mapping[Any, int], kubernetes: Mapping[Any, int], directory: str | None = None) -> Path | None:
    """``aws``/``kubernetes``: decision records (dataclasses) → how many times each was made."""
    directory = directory or os.environ.get(RESULTS_DIR_VARIABLE)
    if not directory:
        return None
    path = Path(directory) / f"decisions-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "aws": [{**dataclasses.asdict(record), "count": count} for record, count in aws.items()],
        "kubernetes": [{**dataclasses.asdict(record), "count": count} for record, count in kubernetes.items()],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def read(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every AWS and Kubernetes decision record of the directory's files."""
    aws: list[dict[str, Any]] = []
    kubernetes: list[dict[str, Any]] = []
    for path in sorted(directory.glob("decisions-*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        aws.extend(document["aws"])
        kubernetes.extend(document["kubernetes"])
    return aws, kubernetes
