"""The Fargate pod sizes against the EKS user guide's table ("Fargate Pod configuration", "Pod CPU and memory"), as
it words them: a list for the small sizes, "between X GB and Y GB in Z-GB increments" for the others."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fargate_app.fargate_sizes import FARGATE_SIZES, FargateSize, _sizes, fargate_size_for, parse_quantity

USER_GUIDE = {
    "0.25": ["0.5", "1", "2"],
    "0.5": ["1", "2", "3", "4"],
    "1": ["2", "3", "4", "5", "6", "7", "8"],
}
USER_GUIDE_RANGES = {"2": (4, 16, 1), "4": (8, 30, 1), "8": (16, 60, 4), "16": (32, 120, 8)}


def documented() -> list[tuple[Decimal, Decimal]]:
    listed = [(Decimal(vcpu), Decimal(gb)) for vcpu, gbs in USER_GUIDE.items() for gb in gbs]
    ranged = [
        (Decimal(vcpu), Decimal(gb))
        for vcpu, (low, high, step) in USER_GUIDE_RANGES.items()
        for gb in range(low, high + 1, step)
    ]
    return listed + ranged


def test_the_table_is_the_user_guides_smallest_first() -> None:
    # The table is built at import; building it again checks the builder, not a cached copy
    for table in (_sizes(), FARGATE_SIZES):
        assert [(size.vcpu, size.memory_gb) for size in table] == documented()


def test_a_size_reads_as_the_console_shows_it() -> None:
    assert str(FargateSize(Decimal("0.25"), Decimal("0.5"))) == "0.25 vCPU / 0.5 GB"


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("250m", "256Mi", "0.25 vCPU / 0.5 GB"),  # 256 MiB + the 256 MiB Fargate reserves = 0.5 GiB exactly
        ("250m", "257Mi", "0.25 vCPU / 1 GB"),
        ("1", "2Gi", "1 vCPU / 3 GB"),
        ("2", "15Gi", "2 vCPU / 16 GB"),
        ("4", "29Gi", "4 vCPU / 30 GB"),
        ("8", "31Gi", "8 vCPU / 32 GB"),
        ("16", "119Gi", "16 vCPU / 120 GB"),
    ],
)
def test_the_smallest_size_holding_requests_and_the_reserve_is_chosen(cpu: str, memory: str, expected: str) -> None:
    size = fargate_size_for(parse_quantity(cpu, allow_milli=True), parse_quantity(memory, allow_milli=False))
    assert str(size) == expected


def test_requests_no_size_holds_have_none() -> None:
    assert fargate_size_for(Decimal(16), Decimal(120 * 2**30)) is None  # the reserve does not fit beside them
    assert fargate_size_for(Decimal(17), Decimal(2**30)) is None


@pytest.mark.parametrize(
    ("text", "allow_milli", "message"),
    [
        ("lots", True, "'lots' is not a Kubernetes quantity (e.g. 250m, 0.5 or 2)"),
        ("512m", False, "'512m' is not a Kubernetes quantity (e.g. 512Mi, 1Gi or 2G)"),
    ],
    ids=["cpu", "memory-in-millibytes"],
)
def test_a_quantity_error_shows_the_forms_its_field_takes(text: str, allow_milli: bool, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_quantity(text, allow_milli=allow_milli)
    assert str(refused.value) == message
