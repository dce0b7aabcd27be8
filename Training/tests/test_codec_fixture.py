"""The committed Swift parity fixture of the shipped codec must match what the recipe computes from the shipped file."""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Training"))

CODEC = ROOT / "Codecs" / "dac-small-16k" / "codec.safetensors"
FIXTURE = ROOT / "Tests" / "Fixtures" / "dac-small-16k"


@pytest.mark.skipif(not CODEC.exists() or not (FIXTURE / "case.safetensors").exists(), reason="no shipped codec or fixture")
def test_fixture_matches_recipe():
    from codec.make_fixture import main

    main(["--model", str(CODEC), "--check", str(FIXTURE)])


def test_fixture_roundtrip_detects_a_changed_model(tmp_path):
    """A fixture made from one random codec must be rejected for another (so a stale fixture cannot pass)."""
    from codec.dac import DAC
    from codec.make_fixture import main
    from codec.train_codec import SMALL_16K, export_codec

    cfg = dict(SMALL_16K, encoder_dim=4, decoder_dim=16, latent_dim=8, n_codebooks=3)
    torch.manual_seed(0)
    a = tmp_path / "a.safetensors"
    export_codec(DAC(**cfg), a)
    main(["--model", str(a), "--out", str(tmp_path / "fx")])
    main(["--model", str(a), "--check", str(tmp_path / "fx")])
    torch.manual_seed(1)
    b = tmp_path / "b.safetensors"
    export_codec(DAC(**cfg), b)
    with pytest.raises(SystemExit):
        main(["--model", str(b), "--check", str(tmp_path / "fx")])
