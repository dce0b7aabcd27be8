"""Parity fixtures of the latent masker for the Swift engine: Tests/Fixtures/masker-random/ and codec-masker/.

    python3 Training/masker/make_fixture.py --out Tests/Fixtures/masker-random      # write
    python3 Training/masker/make_fixture.py --check Tests/Fixtures/masker-random    # recompute and compare
    python3 Training/masker/make_fixture.py --additive --out Tests/Fixtures/masker-random-additive   # with add_head
    python3 Training/masker/make_fixture.py --additive --lookahead 3 --out Tests/Fixtures/masker-random-lookahead
    # the shipped masker on the shipped codec (all codebooks); only case.safetensors, naming both files by sha256
    python3 Training/masker/make_fixture.py --model Models/codec-masker/model.safetensors \
        --codec Codecs/dac-small-16k/codec.safetensors --out Tests/Fixtures/codec-masker     # or --check DIR

Files: codec.safetensors (a random tiny DAC, TINY_DAC in codec_tools.py), model.safetensors (a random masker for
it, every parameter drawn at random, norms included, so a port that ignores one fails), case.safetensors:
  codes (K, T) int32    input codes (a synthetic signal encoded with the codec, K = 3 of its 4 codebooks)
  latent (C, T)         the latent rebuilt from them (the masker's input)
  masked_<c> (N, C, T)  masked latents for case c, in prompt order
  codes_<c> (N, K, T)   their codes with K codebooks (`requantize`: nearest latent contribution per stage)
  margins_<c> (N, K, T) second-best minus best squared distance of each lookup over the residual's squared norm
                        (near-ties flip under rounding)
Metadata: prompts_<c> (comma-separated), cases, codebooks, frames, fp32_vs_fp64_rel_l2_<c>.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from masker.codec_tools import dequantize, encode_latent, load_codec, quantize, requantize, write_random_codec  # noqa: E402
from masker.model import PROMPTS, LatentMasker, default_config, export  # noqa: E402

CASES = {"a": ["speech", "speech", "sfx-mix"], "b": list(PROMPTS)}
CODEBOOKS = 3


def random_masker(codec_identity: dict, seed: int, additive: bool = False, lookahead: int = 0) -> LatentMasker:
    torch.manual_seed(seed)
    config = default_config(16, codec_identity["name"], codec_identity["sha256"], d_model=32, heads=2, ffn=64, window=8,
                            **({"additive": True} if additive else {}), **({"lookahead": lookahead} if lookahead else {}))
    model = LatentMasker(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * (torch.rand_like(p) * 2 - 1))
            elif name.endswith("bias") or name.endswith("token") or "embed" in name:
                p.copy_(0.1 * (torch.rand_like(p) * 2 - 1) + (0.5 if name == "mask_head.bias" else 0) + (
                    torch.randn_like(p) if ("embed" in name or name.endswith("token")) else 0))
            else:
                fan_in = p.shape[1]
                p.copy_((torch.rand_like(p) * 2 - 1) / math.sqrt(fan_in))
    return model.eval()


def signal(seconds: float = 1.3, rate: int = 16000):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(4)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1500 * t) + 0.05 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))[None]


def compute(codec_path: Path, model: LatentMasker, codebooks: int | None = None):
    """Tensors and metadata of the fixture; `codebooks` defaults to CODEBOOKS (the random codec has 4)."""
    codec, _ = load_codec(codec_path)
    books = codebooks or CODEBOOKS
    with torch.no_grad():
        codes, _ = quantize(codec, encode_latent(codec, signal()), books)
        latent = dequantize(codec, codes)                                    # (1, C, T)
        tensors = {"codes": codes[0].to(torch.int32), "latent": latent[0]}
        meta = {"cases": ",".join(CASES), "codebooks": str(books), "frames": str(latent.shape[-1])}
        for key, prompts in CASES.items():
            masked = model(latent, [prompts])[0]                              # (N, C, T)
            wide = copy.deepcopy(model).double()(latent.double(), [prompts])[0]
            meta[f"fp32_vs_fp64_rel_l2_{key}"] = f"{float((masked.double() - wide).norm() / wide.norm()):.3g}"
            c, _, margins = requantize(codec, masked, books, with_margins=True)
            tensors[f"masked_{key}"] = masked
            tensors[f"codes_{key}"] = c.to(torch.int32)
            tensors[f"margins_{key}"] = margins
            meta[f"prompts_{key}"] = ",".join(prompts)
    return {k: v.contiguous() for k, v in tensors.items()}, meta


def _exported_step(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("tuss-codec.step", "")


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--check", type=Path, help="recompute from the stored codec and masker and compare")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="a trained masker (the shipped one): the fixture then holds only the "
                    "case, made with all of --codec's codebooks, and names both files by sha256")
    ap.add_argument("--codec", type=Path, help="the codec --model was trained on")
    ap.add_argument("--additive", action="store_true",
                    help="the random masker has the additive head (Tests/Fixtures/masker-random-additive)")
    ap.add_argument("--lookahead", type=int, default=0,
                    help="the random masker looks this many frames ahead (Tests/Fixtures/masker-random-lookahead)")
    args = ap.parse_args(argv)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from masker.model import load_exported
    from codec.make_fixture import sha256

    if bool(args.model) != bool(args.codec):
        ap.error("--model and --codec go together")
    if args.model:
        model = load_exported(args.model).eval()
        codec_path, books = args.codec, load_codec(args.codec)[0].quantizer.n_codebooks
    if args.check:
        if args.model:
            with safe_open(str(args.check / "case.safetensors"), framework="pt") as f:
                meta = f.metadata() or {}
            for key, path in (("model_sha256", args.model), ("codec_sha256", codec_path)):
                if meta.get(key) != sha256(path):
                    raise SystemExit(f"fixture out of step: it was made from another {path} ({key}); regenerate it with --out")
            tensors, _ = compute(codec_path, model, books)
        else:
            tensors, _ = compute(args.check / "codec.safetensors", load_exported(args.check / "model.safetensors"))
        stored = load_file(str(args.check / "case.safetensors"))
        worst = 0.0
        for k, v in tensors.items():
            if v.dtype.is_floating_point and not k.startswith("margins"):
                worst = max(worst, float((v - stored[k]).norm() / stored[k].norm()))
            elif not v.dtype.is_floating_point and not torch.equal(v, stored[k]):
                raise SystemExit(f"{k}: codes differ from the stored fixture")
        print(f"fixture in step: worst relative L2 {worst:.2e}")
        if worst > 1e-5:
            raise SystemExit("fixture out of step: regenerate it with --out")
        return
    if not args.out:
        ap.error("give --out DIR or --check DIR")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model:
        tensors, meta = compute(codec_path, model, books)
        meta |= {"model_sha256": sha256(args.model), "codec_sha256": sha256(codec_path),
                 "model_step": _exported_step(args.model)}
        tmp = args.out / "case.safetensors.tmp"
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(args.out / "case.safetensors")
        print(meta)
        return
    codec_path = write_random_codec(args.out / "codec.safetensors", seed=args.seed)
    _, identity = load_codec(codec_path)
    model = random_masker(identity, args.seed, additive=args.additive, lookahead=args.lookahead)
    export(model, args.out / "model.safetensors", {"source": "Training/masker/make_fixture.py (random weights)"})
    tensors, meta = compute(codec_path, model)
    save_file(tensors, str(args.out / "case.safetensors"), metadata=meta)
    with safe_open(str(args.out / "case.safetensors"), framework="pt") as f:
        print({k: f.get_tensor(k).shape for k in f.keys()})
    print(meta)


if __name__ == "__main__":
    main()
