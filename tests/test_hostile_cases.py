"""The quick hostile cases of issues 22 and 35 (bench/hostile_cases.py), run through the real command line: each gives
its expected exit status and one-line message, in the time it may take, and leaves nothing behind."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "hostile_cases.py"
spec = importlib.util.spec_from_file_location("hostile_cases", BENCH)
hostile = importlib.util.module_from_spec(spec)
sys.modules["hostile_cases"] = hostile  # dataclasses look their module up by name
spec.loader.exec_module(hostile)

QUICK = {case.situation: case for case in [*hostile.ISSUE_22_CASES, *hostile.ISSUE_35_CASES] if case.quick}


@pytest.mark.parametrize("situation", list(QUICK))
def test_a_quick_hostile_case_gives_what_it_expects(situation: str) -> None:
    case = QUICK[situation]
    outcome = hostile.run_case(case, hostile.ROOT / "engine")
    assert case.expect.problem(outcome) is None, case.expect.problem(outcome)
    assert outcome.input_unchanged and outcome.leftovers == []
