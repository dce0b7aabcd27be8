"""Writes the models scripts/loadtest.sh serves: a random-weight codec of the default size (SMALL_16K: latent 64,
12 codebooks of 1024, hop 320) unless one is given, and a random-weight masker of the default size (D 128, 4 heads,
2 + 2 layers, window 64) for that codec. Timing does not depend on the weight values.

    python3 scripts/loadtest_models.py --out DIR [--codec CODEC.safetensors]
Prints the codec and masker paths, one per line.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Training"))

from masker.codec_tools import load_codec, write_random_codec  # noqa: E402
from masker.model import LatentMasker, default_config, export  # noqa: E402

SMALL_16K = dict(encoder_dim=24, encoder_rates=[2, 4, 5, 8], latent_dim=64, decoder_dim=256, decoder_rates=[8, 5, 4, 2],
                 n_codebooks=12, codebook_size=1024, codebook_dim=8, quantizer_dropout=False, sample_rate=16000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--codec", type=Path, help="serve this codec instead of a random one of the default size")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    codec_path = args.codec or write_random_codec(args.out / "codec.safetensors", seed=1, kwargs=SMALL_16K)
    codec, identity = load_codec(codec_path)
    torch.manual_seed(2)
    kw = codec.kwargs
    latent = kw["latent_dim"] or kw["encoder_dim"] * 2 ** len(kw["encoder_rates"])
    model = LatentMasker(default_config(latent, identity["name"], identity["sha256"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_((torch.rand_like(p) * 2 - 1) / math.sqrt(p.shape[1]))
    masker_path = args.out / "masker.safetensors"
    export(model.eval(), masker_path)
    print(codec_path)
    print(masker_path)


if __name__ == "__main__":
    main()
