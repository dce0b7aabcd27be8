"""Config builders for compact TUSS variants (official hparams schema + model_conf.band_edges)."""

from __future__ import annotations

import copy

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuss.model import OFFICIAL_PROMPTS  # noqa: E402


def bands_from_widths(widths):
    edges = [0]
    for w in widths:
        edges.append(edges[-1] + w)
    return edges


# 16 kHz, n_fft 512 (257 bins, 31.25 Hz/bin): 20 bands
#   0-1 kHz: 8 x 4 bins (125 Hz) | 1-2 kHz: 4 x 8 | 2-4 kHz: 4 x 16 | 4-8 kHz: 3 x 32 + 33 (incl. Nyquist bin)
BANDS_512_20 = bands_from_widths([4] * 8 + [8] * 4 + [16] * 4 + [32] * 3 + [33])
# 16 kHz, n_fft 512: 24 bands with finer lows (0-500 Hz in 2-bin bands)
BANDS_512_24 = bands_from_widths([2] * 8 + [4] * 4 + [8] * 4 + [16] * 4 + [32] * 3 + [33])
# 16 kHz, n_fft 512: 18 bands, coarser above 4 kHz (2 x 64 + 65)
BANDS_512_18 = bands_from_widths([4] * 8 + [8] * 4 + [16] * 4 + [64] + [65])
# 16 kHz, n_fft 256 (129 bins, 62.5 Hz/bin): 18 bands
BANDS_256_18 = bands_from_widths([2] * 4 + [4] * 6 + [8] * 4 + [16] * 3 + [17])


def _ffn(dim_inner, kernel):
    return [{"conf": {"conv1d_kernel": kernel, "conv1d_shift": 1, "dim_inner": dim_inner}} for _ in range(2)]


def make_config(
    *,
    sample_rate=16000,
    n_fft=512,
    hop=256,
    band_edges=None,
    emb_dim=32,
    num_groups=4,
    cross_blocks=1,
    cross_attention_dim=64,
    cross_heads=4,
    cross_ffn=192,
    tse_blocks=1,
    tse_attention_dim=48,
    tse_heads=4,
    tse_ffn=128,
    prompts=None,
):
    stft = {"fft_size": n_fft, "hop_length": hop, "normalize": None, "window_length": n_fft, "window_type": "sqrt_hann"}
    return {
        "encoder_name": "stft",
        "encoder_conf": copy.deepcopy(stft),
        "decoder_name": "stft",
        "decoder_conf": copy.deepcopy(stft),
        "model_name": "tuss",
        "variance_normalization": True,
        "model_conf": {
            "conf_cross_prompt_module": {
                "attention_dim": cross_attention_dim,
                "emb_dim": emb_dim,
                "flash_attention": False,
                "frame_ffn_config": _ffn(cross_ffn, 1),
                "freq_ffn_config": _ffn(cross_ffn, 4),
                "n_heads": cross_heads,
                "num_groups": num_groups,
                "tf_order": "ft",
            },
            "conf_cond_tse_module": {
                "attention_dim": tse_attention_dim,
                "emb_dim": emb_dim,
                "flash_attention": False,
                "frame_ffn_config": _ffn(tse_ffn, 4),
                "freq_ffn_config": _ffn(tse_ffn, 4),
                "n_heads": tse_heads,
                "num_groups": num_groups,
                "tf_order": "ft",
            },
            "nblocks_cross_prompt_module": cross_blocks,
            "nblocks_cond_tse_module": tse_blocks,
            "prompts": list(prompts or OFFICIAL_PROMPTS),
            "sample_rate": sample_rate,
            "stft_size": n_fft,
            "use_sos_token": True,
            "band_edges": list(band_edges or BANDS_512_20),
        },
    }


CANDIDATES = {
    # name: kwargs
    "A-d32-c1t1-512/256-20b": dict(n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=32, cross_blocks=1),
    "B-d48-c2t1-512/256-20b": dict(
        n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=48, num_groups=4, cross_blocks=2,
        cross_attention_dim=64, cross_ffn=192, tse_attention_dim=48, tse_ffn=128,
    ),
    "C-d32-c2t1-512/256-20b": dict(n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=32, cross_blocks=2),
    "D-d32-c1t1-512/128-20b": dict(n_fft=512, hop=128, band_edges=BANDS_512_20, emb_dim=32, cross_blocks=1),
    "S-d32-c1t1-small-ffn-512/256-20b": dict(
        n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=32, cross_blocks=1, cross_attention_dim=64,
        cross_heads=4, cross_ffn=128, tse_attention_dim=32, tse_heads=2, tse_ffn=64,
    ),
    "T-d32-c1t1-small-ffn-512/256-18b": dict(
        n_fft=512, hop=256, band_edges=BANDS_512_18, emb_dim=32, cross_blocks=1, cross_attention_dim=64,
        cross_heads=4, cross_ffn=128, tse_attention_dim=32, tse_heads=2, tse_ffn=64,
    ),
    "U-d24-c2t1-small-ffn-512/256-20b": dict(
        n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=24, num_groups=4, cross_blocks=2, cross_attention_dim=48,
        cross_heads=4, cross_ffn=96, tse_attention_dim=32, tse_heads=2, tse_ffn=64,
    ),
    # tuss-small grown by one block in each stack (train.py --init-from Models/tuss-small/model.safetensors)
    "G-d32-c2t2-512/256-20b": dict(n_fft=512, hop=256, band_edges=BANDS_512_20, emb_dim=32, cross_blocks=2,
                                   tse_blocks=2),
    "E-d32-c1t1-256/128-18b": dict(n_fft=256, hop=128, band_edges=BANDS_256_18, emb_dim=32, cross_blocks=1),
}

# The shipped model (Models/tuss-small/config.json): candidate A (see Training/README.md for the measurements).
TUSS_SMALL = make_config(**CANDIDATES["A-d32-c1t1-512/256-20b"])


if __name__ == "__main__":
    import argparse
    import json
    import sys
    from pathlib import Path

    ap = argparse.ArgumentParser(description="write a config JSON")
    ap.add_argument("--name", default="tuss-small", help="tuss-small or a CANDIDATES key")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cfg = TUSS_SMALL if a.name == "tuss-small" else make_config(**CANDIDATES[a.name])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
