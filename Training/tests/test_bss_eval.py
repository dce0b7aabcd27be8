"""The recipes' BSS Eval (Training/eval/bss_eval.py) against mir_eval's numbers in the engine's fixture."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")
pytest.importorskip("scipy")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Training"))

from eval.bss_eval import BSSEval  # noqa: E402

FIXTURE = REPO / "Tests" / "Fixtures" / "bss-eval"


def test_matches_mir_eval_on_the_fixture():
    refs = sf.read(FIXTURE / "references.wav", dtype="float32")[0].T
    estimates = sf.read(FIXTURE / "estimates.wav", dtype="float32")[0].T
    expected = json.loads((FIXTURE / "expected.json").read_text())
    scorer = BSSEval(refs)
    for e, target in enumerate(expected["targets"]):
        got = scorer.criteria(estimates[e])[target]
        for name, value, want in zip(("sdr", "sir", "sar"), got, (expected[k][e] for k in ("sdr", "sir", "sar"))):
            if want > 60:      # mir_eval's rounding noise where nothing is an artifact
                assert value > 60, (e, name)
            else:
                assert value == pytest.approx(want, abs=1e-3), (e, name)


def test_scale_silence_and_one_reference():
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((3, 16000))
    est = refs[2] + 0.2 * refs[0] + 0.05 * rng.standard_normal(16000)
    base = BSSEval(refs).criteria(est)
    quiet = refs.copy()
    quiet[1] *= 1e-5
    assert np.allclose(np.array(BSSEval(quiet).criteria(est), dtype=float), np.array(base, dtype=float), atol=1e-3)
    assert base[2][1] == pytest.approx(10 * np.log10((refs[2] ** 2).sum() / (0.04 * (refs[0] ** 2).sum())), abs=0.5)
    silent_ref = refs.copy()
    silent_ref[1] = 0
    assert BSSEval(silent_ref).criteria(est)[1] is None
    assert BSSEval(refs).criteria(np.zeros(16000))[0] == (-100.0, None, None)
    assert BSSEval(refs).criteria(np.full(16000, np.nan))[0] == (-100.0, None, None)    # a diverged model's output
    assert BSSEval(refs[2:]).criteria(est)[0][1] is None
