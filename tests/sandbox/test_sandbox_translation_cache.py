"""SAM's transform is kept on disk between sandbox starts, keyed by everything its result depends on."""

from __future__ import annotations

from pathlib import Path

import pytest

from fargate_sandbox import stack_roles
from fargate_sandbox.stack_roles import translate, translation_cache

ROOT = Path(__file__).resolve().parents[2]
VALUES = {"ClusterName": "blog"}


def translated(template: Path) -> dict:
    return translate(template, account_id="111122223333", region="us-west-2", partition="aws", parameter_values=VALUES)


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's template, and an empty cache of its own."""
    monkeypatch.setenv("FARGATE_APP_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "template.yaml"
    copy.write_text((ROOT / "template.yaml").read_text())
    return copy


def test_a_second_translation_of_the_same_template_is_read_from_the_cache(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty cache and the project's template
    first = translated(template)
    # When it is translated again with SAM's translator unavailable
    monkeypatch.setattr(stack_roles, "_translate", lambda *args: pytest.fail("translated again"))
    # Then the result is the cached one, identical
    assert translated(template) == first
    assert len(list(translation_cache().glob("*.json"))) == 1


def test_a_changed_template_or_a_damaged_entry_is_translated_again(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translated(template)
    calls = []
    real = stack_roles._translate
    monkeypatch.setattr(stack_roles, "_translate", lambda *args: calls.append(1) or real(*args))
    # When the template changes (a comment is enough: the key is its bytes)
    template.write_text(template.read_text() + "\n# changed\n")
    translated(template)
    # and when a cache entry is damaged
    for entry in translation_cache().glob("*.json"):
        entry.write_text("{not json")
    again = translated(template)
    # Then each is translated anew, and the damaged entry is replaced by a whole one
    assert len(calls) == 2
    assert again["Resources"]
