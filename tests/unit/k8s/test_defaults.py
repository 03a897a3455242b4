"""One source of defaults: the CRD's `default:` values are the spec model's, and what the
model makes of them is what the trigger engine and retention default to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from oomforensics.archive.retention import RetentionPolicy
from oomforensics.capture.client import PROFILE_FILES
from oomforensics.durations import PATTERN
from oomforensics.k8s.spec import PROFILES, SPEC_DEFAULTS, InvestigationSpec, parse_spec
from oomforensics.triggers.model import TriggerSettings

CRD = Path(__file__).resolve().parents[3] / "crds" / "memoryinvestigations.oomforensics.io.yaml"
SELECTOR = {"matchLabels": {"app": "x"}}


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def crd_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The leaf defaults below a schema, nested as the spec is ({} object defaults left out)."""
    found: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        below = crd_defaults(prop)
        if below:
            found[name] = below
        elif "default" in prop and prop["default"] != {}:
            found[name] = prop["default"]
    return found


def durations(schema: dict[str, Any]) -> list[str]:
    """The patterns of every string field with a duration pattern."""
    patterns = [schema["pattern"]] if "(ms|s|m|h)" in str(schema.get("pattern")) else []
    for prop in (schema.get("properties") or {}).values():
        patterns += durations(prop)
    return patterns


def test_the_crds_defaults_are_the_models() -> None:
    assert crd_defaults(spec_schema()) == SPEC_DEFAULTS


def test_a_minimal_spec_is_the_models_defaults_and_the_engines() -> None:
    parsed = parse_spec({"selector": SELECTOR})
    assert parsed == InvestigationSpec(selector=parsed.selector)
    # What the spec defaults to is what the pure layers default to.
    assert parsed.trigger_settings() == TriggerSettings()
    policy = RetentionPolicy()
    assert (parsed.keep_newest, parsed.max_bytes_per_run) == (
        policy.keep_newest,
        policy.max_bytes_per_run,
    )


def test_every_duration_field_of_the_crd_has_the_one_grammar() -> None:
    patterns = durations(spec_schema())
    assert len(patterns) >= 4 and set(patterns) == {PATTERN}
    assert re.fullmatch(PATTERN, "1h30m") and not re.fullmatch(PATTERN, "5")


def test_the_specs_profile_names_are_the_crds_and_captures() -> None:
    schema = spec_schema()["properties"]["snapshots"]["properties"]["profiles"]
    assert tuple(schema["items"]["enum"]) == PROFILES == tuple(PROFILE_FILES)
