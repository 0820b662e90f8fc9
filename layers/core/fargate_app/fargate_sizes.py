"""Kubernetes resource quantities and the Fargate pod sizes they map to.

EKS Fargate picks the smallest vCPU/memory combination of the table below that holds the pod's requests plus
256 MiB that Fargate reserves for the Kubernetes components on the node (EKS user guide, "Fargate Pod
configuration": "Pod CPU and memory"). A request that no combination holds can never be scheduled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# Kubernetes apimachinery resource.Quantity, the decimal and binary suffixes used in practice.
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_MULTIPLIERS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}
FARGATE_RESERVED_MEMORY = 256 * 2**20
_GIB = 2**30


@dataclass(frozen=True)
class FargateSize:
    vcpu: Decimal
    memory_gb: Decimal

    def __str__(self) -> str:
        return f"{self.vcpu} vCPU / {self.memory_gb} GB"


def _sizes() -> list[FargateSize]:
    table: list[tuple[str, list[Decimal]]] = [
        ("0.25", [Decimal("0.5"), Decimal(1), Decimal(2)]),
        ("0.5", [Decimal(g) for g in range(1, 5)]),
        ("1", [Decimal(g) for g in range(2, 9)]),
        ("2", [Decimal(g) for g in range(4, 17)]),
        ("4", [Decimal(g) for g in range(8, 31)]),
        ("8", [Decimal(g) for g in range(16, 61, 4)]),
        ("16", [Decimal(g) for g in range(32, 121, 8)]),
    ]
    return [FargateSize(Decimal(vcpu), gb) for vcpu, gbs in table for gb in gbs]


FARGATE_SIZES = _sizes()


def parse_quantity(text: str, *, allow_milli: bool) -> Decimal:
    """Parse a Kubernetes quantity into base units (cores or bytes).

    Raises:
        ValueError: not a quantity of the accepted form.
    """
    match = _QUANTITY.fullmatch(text)
    if not match or (match["suffix"] == "m" and not allow_milli):
        units = "e.g. 250m, 0.5 or 2" if allow_milli else "e.g. 512Mi, 1Gi or 2G"
        raise ValueError(f"{text!r} is not a Kubernetes quantity ({units})")
    return Decimal(match["number"]) * _MULTIPLIERS[match["suffix"]]


def fargate_size_for(cpu_cores: Decimal, memory_bytes: Decimal) -> FargateSize | None:
    """The Fargate configuration EKS would choose for these requests, or None if none holds them."""
    needed = memory_bytes + FARGATE_RESERVED_MEMORY
    for size in FARGATE_SIZES:
        if size.vcpu >= cpu_cores and size.memory_gb * _GIB >= needed:
            return size
    return None
