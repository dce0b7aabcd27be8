"""Parity fixtures for the Swift TUSS port, same conventions as shared/reference/tuss-tiny/cases.

    # fixture of the shipped model (regenerate whenever Models/tuss-small/model.safetensors changes;
    # train.py does this automatically each time it exports a new best model)
    python3 Training/tuss/make_fixture.py --model Models/tuss-small/model.safetensors --out Tests/Fixtures/tuss-small
    # fixed random-init tuss-small (seed 0, norm parameters randomised) with its own model.safetensors
    python3 Training/tuss/make_fixture.py --random --config Models/tuss-small/config.json --seed 0 \
        --out Tests/Fixtures/tuss-small-random
    # verify that a fixture still matches its model
    python3 Training/tuss/make_fixture.py --check Tests/Fixtures/tuss-small --model Models/tuss-small/model.safetensors

case.safetensors (float32 tensors; N prompts, D = emb_dim, K bands, F = n_fft/2+1, T = ceil(L/hop)+1):
  mixture (L,)                 input waveform at the model rate (deterministic synthetic signal, peak 0.5)
  output (N, L)                model(mixture, prompts) trimmed to L samples (output n belongs to prompt n)
  stft_re, stft_im (T, F)      STFT of the variance-normalised mixture (mixture / (unbiased std + 1e-8))
  bandsplit (D, T, K)          band-split encoder output
  cross_out (D, N+1+T, K)      last cross-prompt block output; positions [prompt_1..prompt_N, SOS, frames]
  tse_out (N, D, T, K)         last conditional-TSE block output
  mask_re, mask_im (N, T, F)   complex mask; output_n = iSTFT(mask_n * STFT)[:L] * (std + 1e-8)
metadata (strings): prompts (comma-separated official names), n_src, sample_rate, length, output_length,
  full_output_length (hop*ceil(L/hop), untrimmed), n_frames, n_bands, n_fft, hop, mixture_std_plus_eps,
  model_sha256 (of the model.safetensors used), fp32_vs_fp64_output_rel_l2, tensors, generator.
Tolerance intended for a port: relative L2 ||a-b||/||b|| <= 1e-4 per whole tensor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from tuss.export import export_model  # noqa: E402
from tuss.model import RMSGroupNorm, SeparationModel, load_exported  # noqa: E402

DEFAULT_PROMPTS = ["speech", "sfxbg", "musicbg"]
TENSORS = ["mixture", "output", "stft_re", "stft_im", "bandsplit", "cross_out", "tse_out", "mask_re", "mask_im"]


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def synth_mixture(sample_rate: int, length: int, seed: int = 7) -> np.ndarray:
    """Harmonic tone with vibrato + formant-ish pulse train + band-limited noise bursts + chirp; peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    f0 = 180 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(h * phase) / h * (1.0 if h < 4 else 0.5) for h in range(1, 12))
    voice *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2
    noise = rng.standard_normal(length)
    kernel = np.sin(2 * np.pi * 2500 * np.arange(64) / sample_rate) * np.hanning(64)
    noise = np.convolve(noise, kernel, mode="same")
    bursts = (np.mod(t, 0.37) < 0.08).astype(float)
    chirp = np.sin(2 * np.pi * (200 * t + 0.5 * 2500 * t ** 2 / max(t[-1], 1e-9)))
    x = 0.5 * voice + 0.8 * noise * bursts + 0.2 * chirp
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def run_model(model: SeparationModel, mixture: torch.Tensor, prompts):
    inter: dict = {}
    with torch.no_grad():
        out = model(mixture[None], [prompts], trim=True, intermediates=inter)[0]
    return out, inter


def make_case(model: SeparationModel, model_path: Path, out_path: Path, prompts, seconds=1.5, seed=7):
    from safetensors.torch import save_file

    model = model.eval().float()
    sr = model.sample_rate
    hop = model.stft_frontend.hop
    length = int(seconds * sr) + 37  # not a multiple of the hop
    if length % hop == 0:
        length += 1
    mix = torch.from_numpy(synth_mixture(sr, length, seed))
    out, inter = run_model(model, mix, prompts)
    tensors = {
        "mixture": mix,
        "output": out,
        "stft_re": inter["stft"][0].real,
        "stft_im": inter["stft"][0].imag,
        "bandsplit": inter["bandsplit"][0],
        "cross_out": inter["cross_out"][0],
        "tse_out": inter["tse_out"],
        "mask_re": inter["mask"][0].real,
        "mask_im": inter["mask"][0].imag,
    }
    tensors = {k: v.detach().float().contiguous().clone() for k, v in tensors.items()}
    m64 = SeparationModel(model.config)
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    out64, _ = run_model(m64, mix.double(), prompts)
    fp64_err = float((out.double() - out64).norm() / out64.norm())
    std = float(mix.double().std() + 1e-8)
    n_frames = tensors["stft_re"].shape[0]
    meta = {
        "bundle": out_path.parent.name,
        "case": out_path.stem,
        "prompts": ",".join(prompts),
        "n_src": str(len(prompts)),
        "sample_rate": str(sr),
        "length": str(length),
        "output_length": str(length),
        "full_output_length": str(hop * (n_frames - 1)),
        "n_frames": str(n_frames),
        "n_bands": str(len(model.band_edges) - 1),
        "n_fft": str(model.stft_frontend.n_fft),
        "hop": str(hop),
        "mixture_std_plus_eps": repr(std),
        "signal_seed": str(seed),
        "model_file": model_path.name,
        "model_sha256": sha256(model_path),
        "fp32_vs_fp64_output_rel_l2": f"{fp64_err:.3e}",
        "intermediates": "yes",
        "tensors": ",".join(TENSORS),
        "generator": f"Training/tuss/make_fixture.py, torch {torch.__version__} CPU fp32",
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)
    tmp.replace(out_path)
    return meta


def randomize_norms(model: SeparationModel, seed: int) -> None:
    """So that a port ignoring norm parameters cannot pass: gammas/weights ~ U(0.5, 1.5), GroupNorm bias ~ N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, RMSGroupNorm):
                mod.gamma.copy_(torch.rand(mod.gamma.shape, generator=g) + 0.5)
            elif isinstance(mod, torch.nn.GroupNorm):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)


def write_readme(out_dir: Path, meta: dict, note: str):
    text = f"""# {out_dir.name}: TUSS parity fixture

Made by `Training/tuss/make_fixture.py` ({note}). Same conventions as `shared/reference/tuss-tiny/cases`
(see the docstring of make_fixture.py), except that `output` is trimmed to L samples (our convention).

- model: `{meta['model_file']}` (sha256 `{meta['model_sha256']}`)
- case.safetensors: prompts `{meta['prompts']}`, {meta['sample_rate']} Hz, L = {meta['length']} samples,
  T = {meta['n_frames']} frames, K = {meta['n_bands']} bands, n_fft {meta['n_fft']} / hop {meta['hop']}
- float32 vs float64 output difference of this model: {meta['fp32_vs_fp64_output_rel_l2']} (the precision floor)
- tolerance for a port: relative L2 error <= 1e-4 over each whole tensor

Regenerate whenever the model changes (the sha256 above must match the model file).
"""
    (out_dir / "README.md").write_text(text)


def check(fixture_dir: Path, model_path: Path) -> int:
    from safetensors import safe_open

    case = fixture_dir / "case.safetensors"
    with safe_open(str(case), "pt") as f:
        meta = f.metadata()
        ref = {k: f.get_tensor(k) for k in f.keys()}
    if meta["model_sha256"] != sha256(model_path):
        print(f"STALE: {case} was made from another model (sha256 differs from {model_path})")
        return 1
    model = load_exported(model_path)
    out, inter = run_model(model, ref["mixture"], meta["prompts"].split(","))
    err = float((out.double() - ref["output"].double()).norm() / ref["output"].double().norm())
    print(f"{case}: output rel L2 {err:.2e}")
    return 0 if err <= 1e-5 else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model.safetensors (export.py format)")
    ap.add_argument("--random", action="store_true", help="random-init model from --config (seeded)")
    ap.add_argument("--config", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prompts", default=",".join(DEFAULT_PROMPTS))
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--check", type=Path, help="verify a fixture dir against --model")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.check:
        return check(args.check, args.model)
    if not args.out:
        ap.error("--out is required")
    prompts = args.prompts.split(",")
    if args.random:
        if not args.config:
            ap.error("--random needs --config")
        config = json.loads(args.config.read_text())
        torch.manual_seed(args.seed)
        model = SeparationModel(config)
        randomize_norms(model, args.seed + 8778)
        model_path = args.out / "model.safetensors"
        export_model(model, model_path, {"source": f"random init: torch.manual_seed({args.seed}), norm params "
                                                   f"randomised with seed {args.seed + 8778}"})
        note = f"random init, torch.manual_seed({args.seed}); norm parameters randomised (seed {args.seed + 8778})"
    else:
        if not args.model:
            ap.error("--model or --random is required")
        model_path = args.model
        model = load_exported(model_path)
        note = f"from `{model_path}`"
    meta = make_case(model, model_path, args.out / "case.safetensors", prompts, args.seconds)
    write_readme(args.out, meta, note)
    print(f"wrote {args.out / 'case.safetensors'}: prompts {meta['prompts']}, L={meta['length']}, "
          f"fp32 vs fp64 {meta['fp32_vs_fp64_output_rel_l2']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
