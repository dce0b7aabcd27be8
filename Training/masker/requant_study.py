"""Reproduces the session-16 requantisation figures (docs/results.md, docs/masker.md): decoded SI-SDRi on the first
32 `valid` mixtures (3 s, all codebooks) for several ways of turning a latent back into codes.

    python3 Training/masker/requant_study.py [--masker Models/codec-masker/model.safetensors] [--items 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

TRAINING = Path(__file__).resolve().parents[1]
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from masker.codec_tools import encode_latent, load_codec, quantize, requantize  # noqa: E402
from masker.model import canonical, load_exported  # noqa: E402
from tuss.train import get_item, make_sampler, pit_snr_loss, si_sdr, wait_for_index  # noqa: E402

REPO = TRAINING.parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", type=Path, default=REPO / "Codecs" / "dac-small-16k" / "codec.safetensors")
    ap.add_argument("--masker", type=Path, default=REPO / "Models" / "codec-masker" / "model.safetensors")
    ap.add_argument("--items", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = argparse.Namespace(synthetic=False, index=wait_for_index(10), sample_rate=16000, seconds=3.0, seed=0)
    val = make_sampler(data, "valid")
    codec, _ = load_codec(args.codec)
    masker = load_exported(args.masker)
    books = codec.quantizer.n_codebooks
    scores: dict[str, list[float]] = {}
    with torch.no_grad():
        for i in range(args.items):
            mix, prompts, sources = get_item(val, i)
            names = [canonical(p) for p in prompts]
            length = mix.shape[-1]
            continuous = encode_latent(codec, sources)
            target = quantize(codec, continuous, books)[1]
            z_mix = quantize(codec, encode_latent(codec, mix[None]), books)[1]
            est = masker(z_mix, [names])[0]
            _, perms = pit_snr_loss(est[None].flatten(2), target[None].flatten(2), z_mix.flatten(1), [names])
            order = torch.tensor(perms[0])
            refs = sources[order]
            base = si_sdr(mix[None].expand_as(refs), refs)
            active = refs.pow(2).sum(-1) > 0

            def decode(z):
                audio = codec.decode(z)[:, 0, :length]
                return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))

            cases = {
                "mixture codes, unchanged": z_mix.expand(len(names), -1, -1),
                "masker, encoder lookup (before)": quantize(codec, est, books)[1],
                "masker, latent matcher (now)": requantize(codec, est, books)[1],
                "masker, no requantisation": est,
                "quantised source latent, encoder lookup": quantize(codec, target[order], books)[1],
                "quantised source latent, latent matcher": requantize(codec, target[order], books)[1],
                "continuous source latent = source codes": target[order],
            }
            for key, z in cases.items():
                scores.setdefault(key, []).extend((si_sdr(decode(z), refs) - base)[active].tolist())
    for key, values in scores.items():
        print(f"{key:42s} {np.mean(values):7.2f} dB SI-SDRi")


if __name__ == "__main__":
    main()
