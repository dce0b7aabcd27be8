"""The codec recipe's --decoder-only mode: the decoder learns, the encoder and the codebooks stay as they were."""

import shutil
import sys
import uuid
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.dac import DAC  # noqa: E402
from codec.train_codec import HERE, export_codec, load_exported, main  # noqa: E402

TINY = {"encoder_dim": 4, "encoder_rates": [2, 4, 5, 8], "latent_dim": 8, "decoder_dim": 16,
        "decoder_rates": [8, 5, 4, 2], "n_codebooks": 3, "codebook_size": 16, "codebook_dim": 4,
        "quantizer_dropout": 0.5, "sample_rate": 16000}


@pytest.fixture
def run_name():
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(HERE / "runs" / name, ignore_errors=True)


def _train(tmp_path, run_name, *flags):
    torch.manual_seed(1)
    start = DAC(**TINY)
    init = tmp_path / "init.safetensors"
    export_codec(start, init, {"step": 0})
    main(["--run", run_name, "--init-from", str(init), "--synthetic", "--max-steps", "3", "--seconds", "0.5",
          "--batch", "2", "--val-items", "1", "--log-every", "1", "--warmup", "1", "--lr", "1e-2",
          "--log", str(tmp_path / "log.csv"), *flags])
    trained, step, _ = load_exported(HERE / "runs" / run_name / "model.safetensors")
    assert step == 3
    before, after = start.state_dict(), trained.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return changed, set(before)


def test_decoder_only_changes_the_decoder_alone(tmp_path, run_name):
    changed, names = _train(tmp_path, run_name, "--decoder-only")
    decoder = {k for k in names if k.startswith("decoder.")}
    assert changed and changed <= decoder
    assert not any(k.startswith(("encoder.", "quantizer.")) for k in changed)


def test_without_it_the_encoder_and_codebooks_learn_too(tmp_path, run_name):
    changed, _ = _train(tmp_path, run_name)
    assert any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("quantizer.") for k in changed)


def test_additivity_error_is_the_stated_ratio():
    from codec.train_codec import additivity_error

    torch.manual_seed(2)
    model = DAC(**TINY).eval()
    x = torch.randn(3, 1, 1600) * 0.1
    with torch.no_grad():
        err = additivity_error(model, x)
        enc = lambda a: model.encoder(model.preprocess(a))  # noqa: E731
        z0 = enc(torch.zeros(1, 1, 1600))[0]
        for j in range(3):
            a, b = x[j : j + 1], x[(j - 1) % 3 : (j - 1) % 3 + 1]
            zab = enc(a + b)[0]
            expected = (zab - enc(a)[0] - enc(b)[0] + z0).pow(2).sum() / (zab - z0).pow(2).sum()
            assert abs(float(err[j]) - float(expected)) <= 1e-3 * float(expected)  # float32 rounding, batched against one at a time


def test_additivity_weight_trains_the_encoder_toward_additive(tmp_path, run_name):
    import csv

    from codec.train_codec import additivity_error

    changed, _ = _train(tmp_path, run_name, "--additivity-weight", "1000")
    assert any(k.startswith("encoder.") for k in changed)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len([r for r in rows if r["additivity"]]) == 3, rows
    assert all(r["val_additivity_db"] for r in rows if r["val_sisdr_12"]), "every validation row reports additivity"
    # The same start, data and steps without the term: the term alone makes the difference, and the encoder trained
    # with it is the more additive one on a batch neither run saw.
    plain = run_name + "-plain"
    try:
        _train(tmp_path / "plain", plain)
        with_term = load_exported(HERE / "runs" / run_name / "model.safetensors")[0].eval()
        without = load_exported(HERE / "runs" / plain / "model.safetensors")[0].eval()
    finally:
        shutil.rmtree(HERE / "runs" / plain, ignore_errors=True)
    torch.manual_seed(7)
    x = torch.randn(4, 1, 8000) * 0.1
    with torch.no_grad():
        assert float(additivity_error(with_term, x).mean()) < float(additivity_error(without, x).mean())


def test_additivity_weight_refuses_a_frozen_encoder(tmp_path, run_name):
    with pytest.raises(SystemExit, match="--additivity-weight trains the encoder"):
        _train(tmp_path, run_name, "--additivity-weight", "1", "--decoder-only")
