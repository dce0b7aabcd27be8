"""Parity of Training/codec/dac.py with the official DAC reference bundles in <repo>/../shared/reference."""

import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1]
SHARED = (TRAINING.parent / ".." / "shared").resolve()
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")


@pytest.mark.parametrize("bundle", ["dac-tiny-16k", "dac-tiny-44k"])
def test_dac_reference_bundle(bundle):
    from codec.check_reference import check_bundle

    bdir = SHARED / "reference" / bundle
    if not (bdir / "weights.pth").is_file():
        pytest.skip(f"reference bundle {bundle} not found at {bdir} (needs the shared/ folder beside the repo)")
    torch.set_num_threads(1)
    results = check_bundle(bdir, 1e-4)
    assert results
    for case, res in results.items():
        assert res["code_mismatches"] == 0, f"{bundle}/{case}: codes differ"
        for name, err in res["errors"].items():
            assert err <= 1e-4, f"{bundle}/{case}: {name} rel L2 {err:.3e}"


def test_weight_norm_transpose_is_per_input_channel():
    from codec.dac import WNConvTranspose1d

    conv = WNConvTranspose1d(3, 5, 4, stride=2, padding=1)
    w = conv.weight()
    assert w.shape == (3, 5, 4)
    norms = w.detach().pow(2).sum(dim=(1, 2)).sqrt()
    assert torch.allclose(norms, conv.weight_g.detach().view(-1), rtol=1e-5)
