"""Request files: read, parsed as JSON and held to the v1 request model before anything is started."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fargate_app.errors import InvalidRequest
from fargate_app.models import ProvisionRequest, loads_request_document, parse_request


class RequestFileError(Exception):
    """One or more request files are unusable; ``problems`` holds one ``file: field: rule`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RequestFile:
    path: Path
    document: dict[str, Any]  # as written: what is sent to the API
    request: ProvisionRequest  # normalised

    @property
    def app(self) -> str:
        return f"{self.request.cluster}/{self.request.namespace}/{self.request.app}"


def _problems(
    path: Path, data: Any, region: str | None, account: str | None
) -> tuple[ProvisionRequest | None, list[str]]:
    try:
        return parse_request(data, region=region, account=account), []
    except InvalidRequest as exc:
        return None, [f"{path}: {field}: {rule}" for field, rule in exc.problems.items()]


def load_requests(paths: list[Path], *, region: str | None = None, account: str | None = None) -> list[RequestFile]:
    """Every file read and validated (all problems of all files reported at once).

    Raises:
        RequestFileError: a file cannot be read, is not JSON, breaks a rule of the request model (each field is
            named with its rule), or names the same app as another file (the API would refuse it as a conflict).
    """
    loaded: list[RequestFile] = []
    problems: list[str] = []
    for path in paths:
        try:
            data = loads_request_document(path.read_text(encoding="utf-8"), "file")
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        except InvalidRequest as exc:
            problems.append(f"{path}: {exc}")
            continue
        request, found = _problems(path, data, region, account)
        problems += found
        if request is not None:
            loaded.append(RequestFile(path, data, request))
    seen: dict[str, Path] = {}
    for item in loaded:
        if item.app in seen:
            problems.append(f"{item.path}: app: {item.app} is also requested by {seen[item.app]}; one request per app")
        seen.setdefault(item.app, item.path)
    if problems:
        raise RequestFileError(problems)
    return loaded
