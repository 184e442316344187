"""The committed repository is reproducible: what CI exports equals what is committed.

The session's `exported` fixture has just exported every registered one-shot model from
scratch (every target built, gated and timed). Where it chose the target the committed config
records, its export is compared with the committed one as `maas export --check` would compare
a re-export; where this machine's timings chose another target, the model is re-exported with
the recorded one, exactly as `maas export --check` does. Decoders are left out: re-training
tinygpt takes minutes (its training is shown deterministic in tests/unit/test_tinygpt.py;
`maas export --check tinygpt` checks it whole).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.base.triton.repository import ModelRepository
from maas.export import manifest
from maas.export.reproduce import check_reproducible, compare_export
from tests.conftest import Exported, one_shot_models

COMMITTED = ModelRepository(Path(__file__).resolve().parents[2] / "model_repository")


@pytest.mark.parametrize("name", one_shot_models())
def test_a_fresh_export_equals_the_committed_model(exported: Exported, name: str) -> None:
    records = manifest.load(COMMITTED.manifest_path)["models"][name]["versions"]
    result = exported.results[name]
    if set(records) == {"1"} and result.target.name == records["1"]["target"]:
        checks = [compare_export(COMMITTED, exported.repository, result, records["1"], 1)]
    else:  # another version, or this machine's timings chose another target: re-export
        checks = check_reproducible(COMMITTED, [name])
    assert [(c.version, c.verdict) for c in checks if not c.ok] == [], [c.notes for c in checks]
    assert checks, f"the manifest records no version of {name}"
