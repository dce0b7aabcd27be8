"""The latent masker recipe: causality and lookahead, relative positions, export round trip, fixture in step, smoke
training."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Training"))

from masker.model import PROMPTS, LatentMasker, default_config, export, load_exported  # noqa: E402


def small_model(seed=0, window=5, **extra):
    torch.manual_seed(seed)
    model = LatentMasker(default_config(12, "test", "0" * 64, d_model=16, heads=2, ffn=24, window=window, **extra)).eval()
    with torch.no_grad():   # leave the identity initialisation so every part of the model matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def test_future_frames_do_not_change_past_outputs():
    torch.set_num_threads(1)
    model = small_model()
    z = torch.randn(1, 12, 30)
    z2 = z.clone()
    z2[..., 20:] = 5.0
    with torch.no_grad():
        a, b = model(z, [["speech", "sfx-mix"]]), model(z2, [["speech", "sfx-mix"]])
    assert torch.allclose(a[..., :20], b[..., :20], atol=1e-6)
    assert not torch.allclose(a[..., 20:], b[..., 20:])


def test_lookahead_sees_exactly_that_many_future_frames_and_grows_from_a_causal_masker():
    model = small_model(lookahead=3)
    z = torch.randn(1, 12, 30)
    z2 = z.clone()
    z2[..., 20:] = 5.0
    with torch.no_grad():
        a, b = model(z, [["speech", "sfx-mix"]]), model(z2, [["speech", "sfx-mix"]])
    assert torch.allclose(a[..., :17], b[..., :17], atol=1e-6)
    assert not torch.allclose(a[..., 17], b[..., 17])
    # Grown from a causal donor, input_ahead starts at zero: the same function until training moves it.
    from masker.model import grow_from

    donor = small_model()
    grown = LatentMasker(dict(donor.config, lookahead=3)).eval()
    assert grow_from(grown, donor) == ["input_ahead.weight"]
    with torch.no_grad():
        assert torch.equal(grown(z, [["bass"]]), donor(z, [["bass"]]))
    # Inputs shorter than the lookahead: every future frame past the end is zero, as in the engine's finish().
    for frames in (1, 2, 3):
        with torch.no_grad():
            short = model(z[..., :frames], [["speech"]])
            assert short.shape[-1] == frames
            assert torch.allclose(short, model(torch.cat((z[..., :frames], torch.zeros(1, 12, 3)), -1),
                                               [["speech"]])[..., :frames], atol=1e-6)
    with pytest.raises(ValueError, match="looks 3 frames ahead"):
        grow_from(LatentMasker(dict(donor.config, lookahead=2)), model)


def test_only_relative_positions_matter():
    model = small_model()
    z = torch.randn(1, 12, 25)
    with torch.no_grad():
        a = model(z, [["drums", "bass"]], start=0)
        b = model(z, [["drums", "bass"]], start=900_000)
    assert float((a - b).norm() / a.norm()) < 1e-5


def test_window_limits_the_context():
    model = small_model(window=4)
    z = torch.randn(1, 12, 20)
    z2 = z.clone()
    z2[..., :5] = -3.0      # frames 0..4 are outside every window from frame 4 + 2 * 3 + 1 on (4 layers deep)
    with torch.no_grad():
        a, b = model(z, [["speech"]]), model(z2, [["speech"]])
    depth = len(model.joint) + len(model.film_stage)
    first_free = 5 + depth * (4 - 1)
    assert torch.allclose(a[..., first_free:], b[..., first_free:], atol=1e-6)


def test_repeated_prompts_differ_and_every_prompt_runs():
    model = small_model()
    z = torch.randn(2, 12, 10)
    with torch.no_grad():
        rep = model(z, [["speech", "speech"], ["sfx", "sfx"]])
        every = model(z[:1], [list(PROMPTS)])
    assert not torch.allclose(rep[:, 0], rep[:, 1])
    assert every.shape == (1, 8, 12, 10)
    with pytest.raises(ValueError):
        model(z[:1], [list(PROMPTS) + ["speech"]])


def test_export_round_trip(tmp_path):
    model = small_model()
    export(model, tmp_path / "m.safetensors")
    again = load_exported(tmp_path / "m.safetensors")
    z = torch.randn(1, 12, 9)
    with torch.no_grad():
        assert torch.equal(model(z, [["vocals"]]), again(z, [["vocals"]]))


@pytest.mark.parametrize("name", ["masker-random", "masker-random-additive", "masker-random-lookahead"])
def test_committed_fixture_is_in_step(name):
    fixture = REPO / "Tests" / "Fixtures" / name
    r = subprocess.run([sys.executable, str(REPO / "Training/masker/make_fixture.py"), "--check", str(fixture)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shipped_fixture_is_in_step():
    """The shipped masker's fixture recomputes from Models/codec-masker on the shipped codec."""
    model, codec = REPO / "Models/codec-masker/model.safetensors", REPO / "Codecs/dac-small-16k/codec.safetensors"
    fixture = REPO / "Tests" / "Fixtures" / "codec-masker"
    if not (model.is_file() and (fixture / "case.safetensors").is_file()):
        pytest.skip("no shipped masker or no fixture for it")
    r = subprocess.run([sys.executable, str(REPO / "Training/masker/make_fixture.py"), "--model", str(model),
                        "--codec", str(codec), "--check", str(fixture)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("extra", [[], ["--continuous-target", "--decoded-weight", "1", "--decoded-seconds", "0.5"],
                                   ["--lookahead", "2", "--decoded-weight", "1", "--decoded-kind", "si-sdr",
                                    "--latent-weight", "0"],
                                   ["--decoded-weight", "0.5", "--decoded-kind", "sdr", "--decoded-seconds", "0.5",
                                    "--select-by", "bss-sdri"]],
                         ids=["latent-loss", "continuous-target-and-decoded-loss", "lookahead-and-si-sdr-loss-alone",
                              "spectral-sdr-loss-selected-by-bss-sdri"])
def test_synthetic_smoke_training(tmp_path, extra):
    run = "pytest-smoke"
    try:
        r = subprocess.run([sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
                            "--random-codec", "--max-steps", "2", "--val-items", "2", "--val-every-sec", "0",
                            "--d-model", "32", "--heads", "2", "--ffn", "64", "--seconds", "1",
                            "--log", str(tmp_path / "log.csv"), "--export", str(tmp_path / "m.safetensors")] + extra,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        model = load_exported(tmp_path / "m.safetensors")
        assert model.config["codec"]["name"] == "dac-16k-random-codec"
        assert len(model.config["codec"]["sha256"]) == 64
        assert model.config.get("lookahead", 0) == (2 if "--lookahead" in extra else 0)
        assert (tmp_path / "log.csv").read_text().startswith("step,wall_s,audio_hours,train_loss")
        import csv

        rows = list(csv.DictReader(open(tmp_path / "log.csv")))
        # every validation scores the decoded outputs' BSS Eval SIR gain too (the synthetic validation item 0 has
        # two sources; an item with one audible source has no SIR and adds nothing)
        assert all(row["val_siri_mean"] not in ("", None) for row in rows), rows
        assert all(row["val_bss_sdri_mean"] not in ("", None) for row in rows), rows
        float(rows[-1]["val_siri_mean"])
    finally:
        import shutil
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)


def test_replay_steps_reuse_encoded_batches(tmp_path):
    """--replay 2: each freshly encoded batch is followed by two steps from the buffer, so 5 steps encode 2 batches."""
    import torch

    run = "pytest-replay"
    try:
        r = subprocess.run([sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
                            "--random-codec", "--max-steps", "5", "--replay", "2", "--buffer-items", "4",
                            "--val-items", "2", "--val-every-sec", "1e9", "--no-decode-val",
                            "--d-model", "32", "--heads", "2", "--ffn", "64", "--seconds", "1",
                            "--log", str(tmp_path / "log.csv"), "--export", str(tmp_path / "m.safetensors")],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        state = torch.load(REPO / "Training/masker/runs" / run / "latest.pt", weights_only=False)["state"]
        assert state["step"] == 5 and state["batches"] == 2, state
    finally:
        import shutil
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)


def test_init_from_copies_weights_and_takes_the_new_codec(tmp_path):
    """--init-from: the new run starts from the donor's weights (step 0 exports them unchanged) under the run's codec;
    a donor of another shape is refused with one line."""
    import shutil

    import torch

    from masker.codec_tools import TINY_DAC

    donor = LatentMasker(default_config(TINY_DAC["latent_dim"], "some-older-codec", "0" * 64, d_model=32, heads=2, ffn=64))
    export(donor, tmp_path / "donor.safetensors")
    run = "pytest-init-from"
    common = [sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
              "--random-codec", "--max-steps", "0", "--val-items", "2", "--val-every-sec", "0", "--no-decode-val",
              "--heads", "2", "--ffn", "64", "--seconds", "1", "--log", str(tmp_path / "log.csv"),
              "--export", str(tmp_path / "m.safetensors"), "--init-from", str(tmp_path / "donor.safetensors")]
    try:
        r = subprocess.run(common + ["--d-model", "32"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        got = load_exported(tmp_path / "m.safetensors")
        assert got.config["codec"]["name"] == "dac-16k-random-codec"
        for name, value in donor.state_dict().items():
            assert torch.equal(got.state_dict()[name], value), name
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)
        r = subprocess.run(common + ["--d-model", "64"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "has another shape" in r.stderr, r.stdout + r.stderr
        # --widen: the donor twice as wide computes the same masks (its export at step 0), and a width that is not
        # one whole multiple of the donor's in D, heads and FFN is refused with one line
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)
        at = common.index("--heads")
        wide = common[:at] + common[at + 4:]                      # without "--heads 2 --ffn 64"
        r = subprocess.run(wide + ["--widen", "--d-model", "64", "--heads", "4", "--ffn", "128"], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        got = load_exported(tmp_path / "m.safetensors")
        assert (got.config["d_model"], got.config["heads"], got.config["ffn"]) == (64, 4, 128)
        z = torch.randn(1, TINY_DAC["latent_dim"], 12)
        with torch.no_grad():
            assert torch.allclose(got(z, [["speech", "sfx"]]), donor(z, [["speech", "sfx"]]), rtol=0, atol=1e-5)
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)
        r = subprocess.run(wide + ["--widen", "--d-model", "64", "--heads", "2", "--ffn", "128"], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode != 0 and "whole multiple" in r.stderr, r.stdout + r.stderr
    finally:
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)


def test_growing_a_masker_keeps_its_function_then_trains_the_new_layers():
    """grow_from: a 2 + 2 layer donor loaded into a 3 + 4 layer model gives the same masks (the new layers are
    identities), the new layers still get gradients, and a donor that is wider or deeper is refused."""
    import pytest
    import torch

    from masker.model import grow_from

    torch.manual_seed(3)
    small = default_config(8, "c", "0" * 64, d_model=32, heads=2, ffn=64)
    donor = LatentMasker(small)
    for p in donor.parameters():                      # not the identity-ish initial FiLM: every weight matters
        torch.nn.init.normal_(p, std=0.1)
    big = LatentMasker(dict(small, joint_layers=3, film_layers=4))
    fresh = grow_from(big, donor)
    assert any(n.startswith("joint.2.") for n in fresh) and any(n.startswith("film_stage.3.") for n in fresh)
    z = torch.randn(2, 8, 20)
    prompts = [["speech", "speech", "sfx"], ["drums", "bass", "other"]]
    with torch.no_grad():
        want, got = donor(z, prompts), big(z, prompts)
    assert torch.allclose(got, want, rtol=0, atol=1e-6), float((got - want).abs().max())
    big(z, prompts).pow(2).mean().backward()
    assert float(big.joint[2].attn.out.weight.grad.abs().sum()) > 0
    assert float(big.film_stage[3].ffn["out"].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="more than this model"):
        grow_from(LatentMasker(small), big)
    with pytest.raises(ValueError, match="d_model"):
        grow_from(LatentMasker(dict(small, d_model=64)), donor)


@pytest.mark.parametrize("kind", ["snr", "si-sdr", "sir", "sdr"])
def test_decoded_loss_prefers_the_target_and_reaches_the_masker(kind):
    """The decoded-audio loss scores the target latent best, absent sources do not blow it up, and its gradient
    reaches the masker through the frozen decoder (straight-through requantisation). Uses the shipped codec: a
    random one decodes every latent to nearly the same waveform."""
    import math
    import random

    import torch

    from masker.codec_tools import load_codec, quantize
    from masker.train_masker import DEFAULT_CODEC, decoded_loss

    codec, identity = load_codec(DEFAULT_CODEC)
    torch.manual_seed(0)
    books = codec.quantizer.n_codebooks
    t = torch.arange(16000) / 16000
    audio = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t) * (1 + torch.sin(2 * math.pi * 3 * t)),
                         0.1 * torch.randn(16000), torch.zeros(16000)])   # a tone, noise, an absent source
    with torch.no_grad():
        z = quantize(codec, codec.encoder(codec.preprocess(audio[:, None])), books)[1]
    z_mix = quantize(codec, codec.encoder(codec.preprocess(audio[:2].sum(0)[None, None])), books)[1]
    target = z[None, :2]                                                  # (1, 2, C, T)
    frames = z.shape[-1]
    rng = random.Random(0)
    # The target itself scores far better than the mixture (not perfectly: it is requantised, and greedy matching
    # does not always find a latent's own codes).
    at_target = decoded_loss(codec, target.clone(), target, z_mix, [[0, 1]], books, frames, rng, kind=kind)
    at_mixture = decoded_loss(codec, z_mix[:, None].expand(1, 2, -1, -1).clone(), target, z_mix, [[0, 1]], books,
                              frames, rng, kind=kind)
    assert float(at_target) < float(at_mixture) - 10, (float(at_target), float(at_mixture))
    silent = z[None, 1:3]                                                 # noise and the absent source
    assert torch.isfinite(decoded_loss(codec, silent.clone(), silent, z_mix, [[0, 1]], books, frames // 2, rng,
                                       kind=kind))

    masker = LatentMasker(default_config(z.shape[1], identity["name"], identity["sha256"], d_model=32, heads=2, ffn=64))
    est = masker(z_mix, [["speech", "sfx"]])
    decoded_loss(codec, est, target, z_mix, [[0, 1]], books, frames // 2, rng, kind=kind).backward()
    grads = [p.grad for p in masker.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in codec.parameters())
    # An absent source's output is trained too (towards quiet), not only the active ones.
    est = (z_mix[:, None].expand(1, 2, -1, -1) * 0.5).clone().requires_grad_(True)
    absent = torch.stack((z[0], z[2]))[None]                            # the tone, and the absent source
    decoded_loss(codec, est, absent, z_mix, [[0, 1]], books, frames, random.Random(0), kind=kind).backward()
    assert float(est.grad[0, 1].abs().sum()) > 0 and float(est.grad[0, 0].abs().sum()) > 0


def test_lr_schedule_warms_up_then_decays_to_lr_final():
    from types import SimpleNamespace

    from masker.train_masker import masker_lr

    flat = SimpleNamespace(lr=3e-4, warmup=100, lr_final=None, decay_steps=1000)
    assert masker_lr(49, flat) == pytest.approx(1.5e-4)
    assert masker_lr(5000, flat) == pytest.approx(3e-4)
    decay = SimpleNamespace(lr=3e-4, warmup=100, lr_final=3e-5, decay_steps=1000)
    assert masker_lr(0, decay) == pytest.approx(3e-6)           # warm-up still applies
    assert masker_lr(500, decay) == pytest.approx(3e-4 * 0.1 ** 0.5)
    assert masker_lr(1000, decay) == pytest.approx(3e-5)
    assert masker_lr(9000, decay) == pytest.approx(3e-5)        # flat after the decay
    lrs = [masker_lr(s, decay) for s in range(100, 1001, 50)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_additive_head_grows_from_a_mask_only_donor_then_trains():
    """A mask-only donor grown into an additive masker computes the donor's output (add_head starts at zero); the
    head then gets gradients, and once non-zero it moves the output by exactly its own term."""
    from masker.model import grow_from

    donor = small_model()
    config = dict(donor.config, additive=True)
    grown = LatentMasker(config)
    fresh = grow_from(grown, donor)
    assert fresh == ["add_head.bias", "add_head.weight"]
    z = torch.randn(2, 12, 11)
    prompts = [["speech", "sfx-mix"], ["vocals", "other"]]
    with torch.no_grad():
        assert torch.equal(grown(z, prompts), donor(z, prompts))
    grown(z, prompts).square().mean().backward()
    assert grown.add_head.weight.grad.abs().sum() > 0 and grown.add_head.bias.grad.abs().sum() > 0
    with torch.no_grad():
        grown.add_head.bias.fill_(0.25)
        assert torch.allclose(grown(z, prompts), donor(z, prompts) + 0.25, atol=1e-6)
    with pytest.raises(ValueError):
        grow_from(small_model(), grown)          # an additive donor does not fit a mask-only model


@pytest.mark.parametrize("additive", [False, True], ids=["mask-only", "additive"])
def test_centred_masker_exports_as_an_additive_masker_with_the_same_outputs(tmp_path, additive):
    """Training with a centre c computes c + m * (z - c) (+ a); the exported file is an ordinary additive masker (the
    engine's format) whose outputs are the same within float rounding."""
    torch.manual_seed(1)
    model = LatentMasker(default_config(12, "test", "0" * 64, d_model=16, heads=2, ffn=24, window=5,
                                        **({"additive": True} if additive else {}))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    centre = 3 * torch.randn(12)
    model.set_centre(centre)
    z = torch.randn(2, 12, 13)
    prompts = [["speech", "speech"], ["bass", "music-mix"]]
    export(model, tmp_path / "m.safetensors")
    exported = load_exported(tmp_path / "m.safetensors")
    assert exported.config["additive"] is True and exported.centre is None
    with torch.no_grad():
        ours, theirs = model(z, prompts), exported(z, prompts)
        assert float((ours - theirs).norm() / ours.norm()) < 1e-5
        # The point of the centre: a zero mask gives the centre (silence), a unit mask the input.
        if not additive:
            model.mask_head.weight.zero_()
            model.mask_head.bias.zero_()
            assert torch.allclose(model(z, prompts), centre[None, None, :, None].expand(2, 2, 12, 13))
            model.mask_head.bias.fill_(1.0)
            assert torch.allclose(model(z, prompts), z[:, None].expand(2, 2, 12, 13), atol=1e-6)


def test_a_centred_export_unfolds_back_to_the_centred_masker(tmp_path):
    """`unfold_centre` inverts `export`'s fold: the mask-only masker it returns, centred again, computes what the
    export computes. A head that is not the fold for this centre (another centre, or a trained additive head) is
    refused without `keep_additive`; with it, any additive masker keeps its function."""
    from masker.model import unfold_centre

    torch.manual_seed(2)
    model = LatentMasker(default_config(12, "test", "0" * 64, d_model=16, heads=2, ffn=24, window=5,
                                        lookahead=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    centre = 3 * torch.randn(12)
    model.set_centre(centre)
    export(model, tmp_path / "m.safetensors")
    exported = load_exported(tmp_path / "m.safetensors")
    unfolded = unfold_centre(exported, centre).eval()
    assert not unfolded.config.get("additive") and unfolded.config["lookahead"] == 2
    assert torch.equal(unfolded.centre, centre)
    z = torch.randn(2, 12, 9)
    prompts = [["speech", "sfx"], ["drums", "drums"]]
    with torch.no_grad():
        ours, theirs = unfolded(z, prompts), exported(z, prompts)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5
        assert float((ours - model(z, prompts)).norm() / theirs.norm()) < 1e-5
    with pytest.raises(ValueError, match="not the centre folded"):
        unfold_centre(exported, centre + 0.1)
    with pytest.raises(ValueError, match="no additive head"):
        unfold_centre(unfolded, centre)
    with torch.no_grad():
        exported.add_head.bias.add_(0.5)
        kept = unfold_centre(exported, centre, keep_additive=True).eval()
        assert kept.config["additive"] is True
        ours, theirs = kept(z, prompts), exported(z, prompts)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5
    with pytest.raises(ValueError, match="not the centre folded"):
        unfold_centre(exported, centre)


def test_centred_training_run_exports_an_additive_masker_and_resumes_only_centred(tmp_path):
    run = "pytest-centred"
    base = [sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
            "--random-codec", "--val-items", "2", "--val-every-sec", "0", "--d-model", "32", "--heads", "2",
            "--ffn", "64", "--seconds", "1", "--log", str(tmp_path / "log.csv"),
            "--export", str(tmp_path / "m.safetensors")]
    try:
        r = subprocess.run(base + ["--centred", "--max-steps", "2"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "centred: masks around the latent of silence" in r.stdout
        assert load_exported(tmp_path / "m.safetensors").config["additive"] is True
        r = subprocess.run(base + ["--resume", "--max-steps", "3"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "trained with --centred" in r.stdout + r.stderr
        r = subprocess.run(base + ["--resume", "--centred", "--max-steps", "3"], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        # Its export holds the centre in the additive head: a new --centred run takes it back out and continues the
        # centred form; continuing it as additive works too.
        donor = tmp_path / "donor.safetensors"
        (tmp_path / "m.safetensors").replace(donor)
        grown = base[:3] + [run + "-2"] + base[4:] + ["--init-from", str(donor), "--max-steps", "1"]
        r = subprocess.run(grown + ["--centred"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "the centre is taken out of" in r.stdout
        grown[3] = run + "-3"
        r = subprocess.run(grown + ["--additive"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        # An additive head holding more than the fold is refused by --centred alone, and kept with --additive too.
        model = load_exported(donor)
        with torch.no_grad():
            model.add_head.bias.add_(1.0)
        export(model, donor)
        grown[3] = run + "-4"
        r = subprocess.run(grown + ["--centred"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "pass --additive too" in r.stdout + r.stderr
        grown[3] = run + "-5"
        r = subprocess.run(grown + ["--centred", "--additive"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        # A norm term with the latent loss off would do nothing: refused.
        grown[3] = run + "-6"
        r = subprocess.run(grown + ["--additive", "--norm-weight", "1", "--latent-weight", "0", "--decoded-weight", "1"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "--norm-weight is part of the latent loss" in r.stdout + r.stderr
    finally:
        import shutil
        for name in (run, run + "-2", run + "-3", run + "-4", run + "-5", run + "-6"):
            shutil.rmtree(REPO / "Training" / "masker" / "runs" / name, ignore_errors=True)


def test_oracle_target_is_the_best_mask_in_the_unit_interval():
    from masker.train_masker import oracle_masked

    centre = torch.tensor([1.0, -2.0])
    z_mix = torch.tensor([[[3.0, -1.0], [-4.0, -2.0]]])                      # (B 1, C 2, T 2); offsets 2, -2 / -2, 0
    inside = centre[None, None, :, None] + 0.3 * (z_mix[:, None] - centre[None, None, :, None])
    assert torch.allclose(oracle_masked(inside, z_mix, centre), inside)      # a mask can reach it: unchanged
    beyond = torch.tensor([[[[5.0, 9.0], [-9.0, -2.0]]]])                    # ratios 2, -4 / 3.5, (offset 0)
    out = oracle_masked(beyond, z_mix, centre)
    assert torch.allclose(out, torch.tensor([[[[3.0, 1.0], [-4.0, -2.0]]]]))  # clipped at the mixture / the centre


def test_oracle_target_trains_a_centred_masker_only(tmp_path):
    run = "pytest-oracle"
    base = [sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
            "--random-codec", "--val-items", "2", "--val-every-sec", "0", "--d-model", "32", "--heads", "2",
            "--ffn", "64", "--seconds", "1", "--max-steps", "2", "--log", str(tmp_path / "log.csv"),
            "--export", str(tmp_path / "m.safetensors"), "--oracle-target"]
    try:
        r = subprocess.run(base, capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "--oracle-target needs --centred" in r.stdout + r.stderr
        r = subprocess.run(base + ["--centred", "--warmup", "1"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert load_exported(tmp_path / "m.safetensors").config["additive"] is True
        # The same seeded run without the flag trains toward other targets, so it ends with other weights.
        plain = [a for a in base if a != "--oracle-target"]
        plain[plain.index(run)] = run + "-plain"
        plain[plain.index(str(tmp_path / "m.safetensors"))] = str(tmp_path / "plain.safetensors")
        r = subprocess.run(plain + ["--centred", "--warmup", "1"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        # The export is the best validation's model, which may be step 0 in both: compare the last states.
        runs = REPO / "Training" / "masker" / "runs"
        last = torch.load(runs / run / "latest.pt", map_location="cpu", weights_only=False)["model"]
        other = torch.load(runs / (run + "-plain") / "latest.pt", map_location="cpu", weights_only=False)["model"]
        assert any(not torch.equal(v, other[k]) for k, v in last.items())
    finally:
        import shutil
        for name in (run, run + "-plain"):
            shutil.rmtree(REPO / "Training" / "masker" / "runs" / name, ignore_errors=True)


def test_lookahead_and_loss_weights_are_checked_before_training(tmp_path):
    run = "pytest-lookahead"
    base = [sys.executable, str(REPO / "Training/masker/train_masker.py"), "--run", run, "--synthetic",
            "--random-codec", "--val-items", "2", "--val-every-sec", "0", "--d-model", "32", "--heads", "2",
            "--ffn", "64", "--seconds", "1", "--max-steps", "1", "--log", str(tmp_path / "log.csv"),
            "--export", str(tmp_path / "m.safetensors")]
    try:
        r = subprocess.run(base + ["--lookahead", "-1"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "--lookahead -1: pass 0" in r.stdout + r.stderr
        r = subprocess.run(base + ["--latent-weight", "0"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "--latent-weight 0 needs --decoded-weight" in r.stdout + r.stderr
        # A run with lookahead resumes only with the same lookahead.
        r = subprocess.run(base + ["--lookahead", "2"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(base + ["--resume", "--max-steps", "2"], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "looks 2 frames ahead; pass --lookahead 2" in r.stdout + r.stderr
        r = subprocess.run(base + ["--resume", "--max-steps", "2", "--lookahead", "2"], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        import shutil
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)


def test_norm_term_measures_the_per_frame_norm_ratio_in_db():
    """`--norm-weight`: exact outputs add nothing; outputs at half the target's norm in every frame add 6.02 dB per
    unit of weight, and so do outputs pointing elsewhere with that norm (the term sees norms only); it has a
    gradient."""
    from masker.train_masker import masker_loss

    torch.manual_seed(3)
    target = torch.randn(2, 2, 6, 5)
    mix = target.sum(1)
    prompts = [["speech", "sfx"], ["drums", "bass"]]
    base, _ = masker_loss(target, target, mix, prompts, 1.0)
    with_norm, _ = masker_loss(target, target, mix, prompts, 1.0, norm_weight=2.0)
    assert torch.allclose(base, with_norm)
    shrunk = (0.5 * target).requires_grad_()
    plain, _ = masker_loss(shrunk, target, mix, prompts, 1.0)
    normed, _ = masker_loss(shrunk, target, mix, prompts, 1.0, norm_weight=2.0)
    assert abs(float((normed - plain).detach()) - 2.0 * 20 * math.log10(2)) < 1e-3
    normed.backward()
    assert shrunk.grad is not None and float(shrunk.grad.abs().sum()) > 0
    turned = torch.randn_like(target)
    turned *= 0.5 * target.norm(dim=2, keepdim=True) / turned.norm(dim=2, keepdim=True)
    plain, _ = masker_loss(turned, target, mix, prompts, 1.0)
    normed, _ = masker_loss(turned, target, mix, prompts, 1.0, norm_weight=2.0)
    assert abs(float(normed - plain) - 2.0 * 20 * math.log10(2)) < 1e-3


def test_heads_from_features_equal_heads():
    """`features` + `heads_from` (used by code_head_probe.py to share one trunk pass) is `heads` exactly."""
    model = small_model(additive=True)
    z = torch.randn(2, 12, 9)
    prompts = [["speech", "sfx"], ["drums", "bass"]]
    with torch.no_grad():
        mask, add = model.heads(z, prompts)
        h = model.features(z, prompts)
        mask2, add2 = model.heads_from(h, 2, 2)
    assert h.shape == (4, 9, 16)
    assert torch.equal(mask, mask2) and torch.equal(add, add2)


def test_code_head_probe_matching_with_no_classified_books_is_requantize(tmp_path):
    """The probe's hybrid decode with k = 0 classified codebooks is the engine's continuous path (`requantize`), and
    with k > 0 it keeps the given codes and matches the rest to what they leave."""
    from masker.code_head_probe import match_rest
    from masker.codec_tools import latent_code_tables, load_codec, requantize, write_random_codec

    codec, _ = load_codec(write_random_codec(tmp_path / "codec.safetensors", seed=3))
    books = codec.quantizer.n_codebooks
    tables = latent_code_tables(codec, books)
    torch.manual_seed(5)
    z = torch.randn(1, tables[0].shape[1], 7)
    with torch.no_grad():
        want = requantize(codec, z, books)[0][0]
        got = torch.stack(match_rest(tables, z[0], 0))
        assert torch.equal(got, want)
        rest = torch.stack(match_rest(tables, z[0] - tables[0][want[0]].t(), 1))
        assert torch.equal(rest, want[1:])
        other = (want[0] + 1) % tables[0].shape[0]                       # another first code everywhere
        assert not torch.equal(torch.stack(match_rest(tables, z[0] - tables[0][other].t(), 1)), want[1:])


@pytest.mark.parametrize("factor", [2, 3])
def test_widening_keeps_the_function_and_breaks_the_symmetry_of_the_copies(factor):
    """widen: a masker (lookahead, additive head, centre) widened by 2 or 3 gives the same outputs; the copies of a
    unit get different gradients (so training can tell them apart); a deeper run then grows from the wide donor."""
    from masker.model import grow_from, widen

    torch.manual_seed(5)
    donor = small_model(seed=5, lookahead=2, additive=True)
    donor.set_centre(torch.randn(12))
    wide = widen(donor, factor, seed=1)
    assert (wide.config["d_model"], wide.config["heads"], wide.config["ffn"]) == (16 * factor, 2 * factor, 24 * factor)
    assert torch.equal(wide.centre, donor.centre)
    z = torch.randn(2, 12, 25)
    prompts = [["speech", "speech", "sfx"], ["drums", "bass", "other"]]
    with torch.no_grad():
        want, got = donor(z, prompts), wide(z, prompts)
    assert torch.allclose(got, want, rtol=0, atol=2e-5), float((got - want).abs().max())
    wide.train()
    wide(z, prompts).pow(2).mean().backward()
    grad = wide.joint[0].ffn["in"].weight.grad                       # rows: factor copies of the donor's 24 units
    copies = grad.split(24, dim=0)
    assert all(not torch.allclose(copies[0], c) for c in copies[1:])
    deeper = LatentMasker(dict(wide.config, joint_layers=3))
    deeper.set_centre(donor.centre)
    grow_from(deeper, wide)
    with torch.no_grad():
        assert torch.allclose(deeper(z, prompts), want, rtol=0, atol=2e-5)
    with pytest.raises(ValueError, match="at least 1"):
        widen(donor, 0)


def test_spectral_bss_measures_the_other_sources_and_the_artifacts_left_in_an_output():
    """spectral_bss: an output holding its reference (filtered or not) plus another source at -20 dB scores ~20 dB SIR
    and SDR; a dropped source counts as interference through the residual; noise is not interference but is
    distortion; the gradient flows."""
    from masker.train_masker import spectral_bss

    torch.manual_seed(0)
    length = 8000
    refs = torch.randn(1, 2, length)
    dropped = torch.randn(length)
    mix = refs.sum(1) + dropped
    a, b = refs[0, 0], refs[0, 1]
    delayed = torch.nn.functional.pad(a, (3, 0))[:length] * 0.5 + 0.2 * a    # a short filter of the reference
    def db(x):
        return float(10 * torch.log10(x.pow(2).sum()))
    outs = torch.stack((delayed + 0.1 * b * delayed.norm() / b.norm(),        # the other source 20 dB down
                        b + 0.1 * dropped * b.norm() / dropped.norm()))[None]  # the dropped source 20 dB down
    sdr, sir = spectral_bss(outs, refs, mix)
    assert sir.shape == sdr.shape == (1, 2)
    assert abs(float(sir[0, 0]) - 20) < 1.0 and abs(float(sir[0, 1]) - 20) < 1.0, sir
    # A 3-sample delay is only approximately one gain per bin of a 512-point STFT: ~17 dB down, which SDR counts.
    assert abs(float(sdr[0, 1]) - 20) < 1.0 and 13 < float(sdr[0, 0]) < 20, sdr
    clean_sdr, clean = spectral_bss(refs.clone(), refs, mix)
    assert float(clean.min()) > 50 and float(clean_sdr.min()) > 50, (clean, clean_sdr)
    # Noise 10 dB down is an artifact, not interference: only its chance projection on the references (3 gains per
    # bin fitted on 63 frames, ~5 % of its energy) counts, ~23 dB down, where a leak of that energy would score 10.
    noisy_sdr, noisy = spectral_bss(refs + 0.3 * torch.randn_like(refs), refs, mix)
    assert float(noisy.min()) > 20, noisy
    assert abs(float(noisy_sdr.max()) - 10.5) < 1.0, noisy_sdr                  # noise 10.5 dB down is distortion
    est = outs.clone().requires_grad_(True)
    (-sum(x.sum() for x in spectral_bss(est, refs, mix))).backward()
    assert float(est.grad.abs().sum()) > 0
    silent_ref = torch.stack((a, torch.zeros(length)))[None]                  # an absent source stays solvable
    assert all(torch.isfinite(x).all() for x in spectral_bss(outs, silent_ref, a[None]))


@pytest.mark.parametrize("rule,best_step", [("sisdri", "0"), ("bss-sdri", "1"), ("siri", "2")])
def test_select_by_exports_the_validation_with_the_best_figure_of_its_rule(tmp_path, monkeypatch, rule, best_step):
    """--select-by: with scripted validation figures whose best falls at another step for each rule, the export is the
    step of the rule's best; a resume under another rule starts its record afresh (the next validation exports)."""
    from safetensors import safe_open

    import masker.train_masker as tm

    script = {"val_sisdri_mean": [5.0, 1.0, 0.0, 0.0], "val_bss_sdri_mean": [0.0, 5.0, 1.0, 0.0],
              "val_siri_mean": [0.0, 1.0, 5.0, 0.0]}
    calls = []

    def scripted(model, codec, items, decode):
        i = len(calls)
        calls.append(i)
        return {"val_latent_snr_mean": 1.0, "val_items": len(items)} | {k: v[min(i, 3)] for k, v in script.items()}

    monkeypatch.setattr(tm, "validate", scripted)
    run = f"pytest-select-{rule}"
    common = ["--run", run, "--synthetic", "--random-codec", "--val-items", "1", "--val-every-sec", "0",
              "--d-model", "32", "--heads", "2", "--ffn", "64", "--seconds", "1", "--log", str(tmp_path / "log.csv"),
              "--export", str(tmp_path / "m.safetensors")]

    def exported_step():
        with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
            return f.metadata()["tuss-codec.step"]

    try:
        tm.main(common + ["--max-steps", "2", "--select-by", rule])
        assert len(calls) == 3 and exported_step() == best_step
        # Resumed under another rule: its record starts again, so the next validation (figures 0.0) is exported.
        other = "sisdri" if rule != "sisdri" else "siri"
        tm.main(common + ["--max-steps", "3", "--select-by", other, "--resume"])
        assert exported_step() == "3"
    finally:
        import shutil
        shutil.rmtree(REPO / "Training" / "masker" / "runs" / run, ignore_errors=True)
