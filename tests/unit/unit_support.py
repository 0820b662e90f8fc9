"""Shared pieces of the unit tests' AWS fixtures (the fixtures themselves are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

ROLE = "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog"


@dataclass
class Network:
    vpc: str
    private: list[str]
    public: str
