"""Loss and prompt-dropout rules of Training/tuss/train.py."""

import random
import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1]
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")


def test_pit_within_repeated_prompts_only():
    from tuss.train import pit_snr_loss, snr_with_zero_refs

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(1, 3, 800, generator=g)
    mix = ref.sum(1)
    noisy = ref + 0.1 * torch.randn(1, 3, 800, generator=g)
    base, _, _ = snr_with_zero_refs(noisy, ref, mix)
    # outputs 0 and 1 swapped: same loss when both prompts are "speech" ...
    swapped = noisy[:, [1, 0, 2]]
    loss, perms = pit_snr_loss(swapped, ref, mix, [["speech", "speech", "sfxbg"]])
    assert torch.allclose(loss, pit_snr_loss(noisy, ref, mix, [["speech", "speech", "sfxbg"]])[0], atol=1e-4)
    assert perms == [[1, 0, 2]]
    # ... but not when the prompts differ (the prompt order fixes the assignment)
    loss2, perms2 = pit_snr_loss(swapped, ref, mix, [["speech", "sfx", "sfxbg"]])
    assert perms2 == [[0, 1, 2]] and float(loss2) > float(loss) + 5
    # all distinct prompts, one category each: category mean == source mean
    loss3, _ = pit_snr_loss(noisy, ref, mix, [["speech", "sfx", "sfxbg"]])
    assert torch.allclose(loss3, base, atol=1e-4)


def test_zero_reference_uses_mixture_power():
    from tuss.train import snr_with_zero_refs

    ref = torch.zeros(1, 1, 100)
    mix = torch.ones(1, 100)
    est = torch.full((1, 1, 100), 0.1)
    loss, per, active = snr_with_zero_refs(est, ref, mix)
    assert not bool(active[0, 0])
    expected = 10 * torch.log10(torch.tensor(1.0 + 1e-3 * 100 + 1e-7)) - 10 * torch.log10(torch.tensor(100 + 1e-7))
    assert torch.allclose(per[0, 0], expected, atol=1e-4)
    assert torch.allclose(loss, 0.1 * expected, atol=1e-4)


def test_prompt_dropout_keeps_repeated_categories():
    from tuss.train import prompt_dropout

    rng = random.Random(0)
    src = torch.arange(4.0)[:, None]
    for _ in range(200):
        p, s = prompt_dropout(["speech", "speech", "drums", "bass"], src, rng)
        assert p.count("speech") == 2 and 1 <= len(p) <= 3
        assert s.shape[0] == len(p)
    assert prompt_dropout(["sfx", "sfx"], src[:2], rng)[0] == ["sfx", "sfx"]
    assert prompt_dropout(["speech"], src[:1], rng)[0] == ["speech"]


def test_growing_a_model_keeps_its_function_then_trains_the_new_blocks():
    from tuss.configs import CANDIDATES, make_config
    from tuss.model import SeparationModel, grow_from

    torch.manual_seed(0)
    donor = SeparationModel(make_config(**CANDIDATES["A-d32-c1t1-512/256-20b"])).eval()
    grown = SeparationModel(make_config(**CANDIDATES["G-d32-c2t2-512/256-20b"])).eval()
    fresh = grow_from(grown, donor)
    assert fresh and all(n.startswith(("separator.cross_prompt_module.1.", "separator.cond_tse_module.1."))
                         for n in fresh)
    mix = torch.randn(1, 8000)
    with torch.no_grad():
        a = donor(mix, [["speech", "sfxbg"]])
        b = grown(mix, [["speech", "sfxbg"]])
    assert float((a - b).norm() / a.norm()) < 1e-5
    # the identity blocks are trainable: one gradient step moves the output
    grown.train()
    opt = torch.optim.SGD(grown.parameters(), lr=1e-2)
    grown(mix, [["speech", "sfxbg"]]).pow(2).mean().backward()
    zeroed = dict(grown.named_parameters())["separator.cond_tse_module.1.frame_path.attn.aggregate_heads.0.weight"]
    assert zeroed.grad is not None and float(zeroed.grad.abs().sum()) > 0
    opt.step()
    with torch.no_grad():
        assert float((grown.eval()(mix, [["speech", "sfxbg"]]) - a).norm()) > 0
    # a donor with more blocks, or a different width, is refused
    with pytest.raises(ValueError):
        grow_from(donor, grown)
    with pytest.raises(ValueError):
        grow_from(grown, SeparationModel(make_config(**CANDIDATES["U-d24-c2t1-small-ffn-512/256-20b"])))


def test_init_from_grows_the_donor_in_a_new_run(tmp_path):
    """train.py --init-from with a deeper --config: the step-0 export holds the donor's tensors unchanged and zero
    output projections in the new blocks; a donor deeper than --config is refused with one line."""
    import json
    import shutil
    import subprocess

    from tuss.configs import CANDIDATES, make_config
    from tuss.export import export_model
    from tuss.model import SeparationModel, load_exported

    torch.manual_seed(0)
    donor = SeparationModel(make_config(**CANDIDATES["A-d32-c1t1-512/256-20b"]))
    export_model(donor, tmp_path / "donor.safetensors", {"source": "pytest"})
    (tmp_path / "grown.json").write_text(json.dumps(make_config(**CANDIDATES["G-d32-c2t2-512/256-20b"])))
    (tmp_path / "small.json").write_text(json.dumps(make_config(**CANDIDATES["A-d32-c1t1-512/256-20b"])))
    run = "pytest-init-from"
    common = [sys.executable, str(TRAINING / "tuss" / "train.py"), "--run", run, "--synthetic", "--max-steps", "0",
              "--val-items", "2", "--val-every-sec", "0", "--seconds", "1", "--log", str(tmp_path / "log.csv"),
              "--export", str(tmp_path / "m.safetensors"), "--fixture-dir", ""]
    try:
        r = subprocess.run(common + ["--config", str(tmp_path / "grown.json"), "--init-from",
                                     str(tmp_path / "donor.safetensors")], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "new tensors start as identity blocks" in r.stdout
        got = load_exported(tmp_path / "m.safetensors").state_dict()
        for name, value in donor.state_dict().items():
            assert torch.equal(got[name], value), name
        assert float(got["separator.cond_tse_module.1.freq_path.attn.aggregate_heads.0.weight"].abs().sum()) == 0
        shutil.rmtree(TRAINING / "tuss" / "runs" / run, ignore_errors=True)
        r = subprocess.run(common + ["--config", str(tmp_path / "small.json"), "--init-from", str(tmp_path / "m.safetensors")],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "does not fit --config" in r.stderr, r.stdout + r.stderr
    finally:
        shutil.rmtree(TRAINING / "tuss" / "runs" / run, ignore_errors=True)
