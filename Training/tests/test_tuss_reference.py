"""Parity of Training/tuss/model.py with the official TUSS reference bundles in <repo>/../shared/reference."""

import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1]
REPO = TRAINING.parent
SHARED = (REPO / ".." / "shared").resolve()
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("yaml")

TOL = 1e-4


def _bundle(name):
    d = SHARED / "reference" / name
    if not (d / "checkpoints" / "model.pth").is_file():
        pytest.skip(f"reference bundle {name} not found at {d} (needs the shared/ folder beside the repo)")
    return d


@pytest.mark.parametrize("bundle", ["tuss-tiny", "tuss-medium"])
def test_reference_bundle(bundle):
    from tuss.check_reference import check_bundle

    torch.set_num_threads(1)
    results = check_bundle(_bundle(bundle), TOL, verbose=True)
    assert results, "no cases found"
    for case, res in results.items():
        if case == "speech_sfxbg_musicbg":
            assert {"bandsplit", "cross_out", "tse_out", "mask_re", "mask_im"} <= set(res["errors"])
        for name, err in res["errors"].items():
            assert err <= TOL, f"{bundle}/{case}: {name} rel L2 {err:.3e} > {TOL}"


def test_official_band_rule():
    from tuss.model import official_band_edges

    edges = official_band_edges(48000, 2048)
    assert len(edges) - 1 == 61
    assert edges[:3] == [0, 2, 4] and edges[22:24] == [44, 48] and edges[-5:] == [760, 826, 892, 958, 1025]


def test_stft_roundtrip_any_hop():
    from tuss.model import STFTFrontEnd

    g = torch.Generator().manual_seed(0)
    for n_fft, hop in [(512, 256), (512, 128), (2048, 512)]:
        fe = STFTFrontEnd(n_fft, hop)
        for length in [1000, 4096, 12345]:
            x = torch.randn(2, length, generator=g, dtype=torch.float64)
            spec = fe.stft(x)
            assert spec.shape[1] == fe.num_frames(length)
            y = fe.istft(spec)
            assert y.shape[-1] == hop * (fe.num_frames(length) - 1)
            assert torch.allclose(y[..., :length], x, atol=1e-9)
