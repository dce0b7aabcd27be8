"""Parity fixture of a codec exported by train_codec.py, for the Swift engine's tests.

    python3 Training/codec/make_fixture.py --model Codecs/dac-small-16k/codec.safetensors --out Tests/Fixtures/dac-small-16k
    python3 Training/codec/make_fixture.py --check Tests/Fixtures/dac-small-16k --model Codecs/dac-small-16k/codec.safetensors

case.safetensors (float32 unless noted): `audio` (L,) 0.61 s at the codec rate, L not a multiple of the hop; `z` (C, T)
encoder output; `codes` (nq, T) int64 at every codebook; `z_q` (C, T); `decoded` (L',) decoder(z_q), untrimmed;
`margin` (nq, T) the gap between the best and the second-best cosine similarity of each lookup (a float32 port may
pick the other entry where this is ~1e-6). Metadata: `model_sha256`, `sample_rate`, `length`, `frames`, `codebooks`.
Regenerate whenever the codec file changes (its sha256 must match `model_sha256`).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from codec.train_codec import load_exported  # noqa: E402


def fixture_audio(rate: int) -> np.ndarray:
    """A deterministic test signal: a gliding tone, a chord and a noise burst (0.61 s)."""
    n = int(0.61 * rate) + 7
    t = np.arange(n) / rate
    rng = np.random.default_rng(7)
    x = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)
    x[n // 3: n // 2] += 0.2 * rng.standard_normal(n // 2 - n // 3)
    return x.astype(np.float32)


@torch.no_grad()
def compute(model, audio: np.ndarray) -> dict:
    model.eval()
    x = torch.from_numpy(audio)[None, None]
    z = model.encoder(model.preprocess(x))
    z_q, codes, _, _, _ = model.quantizer(z, model.quantizer.n_codebooks)
    margins = []
    residual = z
    for i, q in enumerate(model.quantizer.quantizers):
        e = F.normalize(q.in_proj(residual)[0].t(), dim=1)
        cb = F.normalize(q.codebook.weight, dim=1)
        sims = e @ cb.t()
        top = sims.topk(2, dim=1).values
        margins.append(top[:, 0] - top[:, 1])
        residual = residual - q.out_proj(q.decode_code(codes[:, i]))
    decoded = model.decode(z_q)
    return {"audio": torch.from_numpy(audio), "z": z[0], "codes": codes[0].to(torch.int64), "z_q": z_q[0],
            "decoded": decoded[0, 0], "margin": torch.stack(margins)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--check", type=Path, help="recompute and compare with this fixture folder")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, step, _ = load_exported(args.model)
    rate = model.sample_rate
    tensors = compute(model, fixture_audio(rate))
    if args.check:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = args.check / "case.safetensors"
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        if meta.get("model_sha256") != sha256(args.model):
            raise SystemExit(f"{path} was made from another codec file: regenerate it")
        ref = load_file(str(path))
        worst = 0.0
        for name in ("z", "z_q", "decoded"):
            err = float((tensors[name] - ref[name]).norm() / ref[name].norm().clamp_min(1e-20))
            print(f"{name}: rel L2 {err:.2e}")
            worst = max(worst, err)
        mism = int((tensors["codes"] != ref["codes"]).sum())
        print(f"codes: {mism} mismatches")
        if worst > 1e-4 or mism:
            raise SystemExit("fixture out of step with the recipe")
        return
    if not args.out:
        raise SystemExit("give --out DIR or --check DIR")
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"model_sha256": sha256(args.model), "sample_rate": str(rate), "length": str(len(tensors["audio"])),
            "frames": str(tensors["z"].shape[1]), "codebooks": str(tensors["codes"].shape[0]), "step": str(step)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.out / "case.safetensors"), metadata=meta)
    (args.out / "case.safetensors").chmod(0o644)
    close = int((tensors["margin"] < 1e-5).sum())
    (args.out / "README.md").write_text(
        f"# {args.model.parent.name}: codec parity fixture\n\n"
        f"Made by `Training/codec/make_fixture.py` from `{args.model.as_posix()}` (training step {step}, sha256 "
        f"`{meta['model_sha256']}`).\n\n"
        f"- case.safetensors: `audio` ({meta['length']} samples at {rate} Hz), `z`, `codes` ({meta['codebooks']} x "
        f"{meta['frames']}), `z_q`, `decoded` (untrimmed), `margin` (best minus second-best cosine similarity per "
        f"lookup; {close} lookups closer than 1e-5)\n"
        f"- tolerance for a port: relative L2 error <= 1e-4 on z, z_q and decoded; codes identical except where "
        f"`margin` < 1e-5\n\nRegenerate whenever the codec file changes (the sha256 above must match).\n")
    print(f"wrote {args.out}/case.safetensors ({close} near-ties)")


if __name__ == "__main__":
    main()
