"""The frozen codec as the masker sees it: loading a codec file, its identity, and RVQ quantisation.

The identity matches the Swift engine's `CodecHandle`: the name is the file's `tuss-codec.name` metadata, else
`dac-<kHz>k-<file stem>`; the digest is SHA-256 over the tensors in name order, each contributing its name
(UTF-8), its shape (u64 little-endian per axis) and its values as float32 little-endian.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TRAINING = Path(__file__).resolve().parent.parent
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from codec.dac import DAC  # noqa: E402

# A tiny 16 kHz DAC (hop 320) for fixtures and smoke runs: random weights, latent 16, 4 codebooks of 64.
TINY_DAC = dict(encoder_dim=2, encoder_rates=[2, 4, 5, 8], latent_dim=16, decoder_dim=16, decoder_rates=[8, 5, 4, 2],
                n_codebooks=4, codebook_size=64, codebook_dim=4, quantizer_dropout=False, sample_rate=16000)


def weights_digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        value = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        h.update(name.encode("utf-8"))
        for d in value.shape:
            h.update(struct.pack("<Q", d))
        h.update(value.tobytes())
    return h.hexdigest()


def codec_name(path, metadata: dict, sample_rate: int) -> str:
    if metadata.get("tuss-codec.name"):
        return metadata["tuss-codec.name"][:255]
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    return f"dac-{sample_rate // 1000}k-{stem}"[:255]


def load_codec(path):
    """(DAC in eval mode with frozen weights, {"name", "sha256"}) from one of our codec safetensors files."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
    if meta.get("tuss-codec.kind") != "dac":
        raise SystemExit(f"{path} is not a codec file (tuss-codec.kind = {meta.get('tuss-codec.kind')})")
    kwargs = json.loads(meta["tuss-codec.config"])
    arrays = load_file(str(path))
    model = DAC(**kwargs)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {"name": codec_name(path, meta, model.sample_rate), "sha256": weights_digest(arrays)}


def write_random_codec(path, seed: int = 0, kwargs: dict | None = None):
    """A random-weight codec file (fixtures, smoke runs). Snake alphas are drawn around 1."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    kwargs = dict(kwargs or TINY_DAC)
    model = DAC(**kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.copy_(1 + 0.3 * (torch.rand_like(p) * 2 - 1))
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"tuss-codec.kind": "dac", "tuss-codec.format": "1",
                                            "tuss-codec.config": json.dumps(kwargs, sort_keys=True)})
    return path


@torch.no_grad()
def quantize(codec: DAC, z, n_codebooks: int, with_margins: bool = False):
    """Residual quantisation of z (B, C, T) with the first n codebooks, as the Swift engine does it.

    Returns codes (B, n, T) int64, z_q (B, C, T) and, with_margins, the gap between the best and the second-best
    cosine similarity of every lookup (B, n, T): small gaps are near-ties whose code may flip under float rounding.
    """
    residual = z
    z_q = torch.zeros_like(z)
    codes, margins = [], []
    for q in codec.quantizer.quantizers[:n_codebooks]:
        e = q.in_proj(residual)
        sims = F.normalize(e.transpose(1, 2), dim=-1) @ F.normalize(q.codebook.weight, dim=-1).t()   # (B, T, S)
        idx = sims.argmax(-1)
        if with_margins:
            top = sims.topk(2, dim=-1).values
            margins.append(top[..., 0] - top[..., 1])
        vec = q.out_proj(q.codebook(idx).transpose(1, 2))
        z_q = z_q + vec
        residual = residual - vec
        codes.append(idx)
    out = (torch.stack(codes, 1), z_q)
    return out + (torch.stack(margins, 1),) if with_margins else out


def latent_code_tables(codec: DAC, n_codebooks: int):
    """Per codebook, every code's contribution to the latent (out_proj of its raw vector): (S, C) each."""
    return [q.out_proj(q.codebook.weight.t()[None])[0].t() for q in codec.quantizer.quantizers[:n_codebooks]]


def requantize(codec: DAC, z, n_codebooks: int, with_margins: bool = False):
    """Codes for a latent that is not an encoder output (the masker's), as the Swift engine's `LatentCodeMatcher`:
    stage by stage, the code whose latent contribution is nearest (Euclidean) to the residual.

    Why not `quantize`: its lookups compare each codebook's input projection of the residual by cosine similarity,
    which is right for encoder latents but not idempotent: a quantised latent does not come back to its own codes
    (each input projection also weighs the part of the encoder latent that quantisation drops). Decoding the
    requantised quantised source latents of 32 `valid` mixtures scored -1.05 dB SI-SDRi with `quantize`, 2.76 dB
    with this, and the shipped masker's outputs -9.91 against -6.81 dB (masker/requant_study.py).
    Returns codes (B, n, T) int64, z_q (B, C, T) and, with_margins, (second-best - best squared distance) divided by
    the residual's squared norm per lookup (B, n, T): small values are near-ties that may flip under rounding.
    """
    residual = z
    z_q = torch.zeros_like(z)
    codes, margins = [], []
    for table in latent_code_tables(codec, n_codebooks):
        r = residual.transpose(1, 2)                                          # (B, T, C)
        # |r - p|^2 = |r|^2 - 2 r.p + |p|^2; |r|^2 is the same for every code, so it is left out of the argmin.
        dist = table.pow(2).sum(-1) - 2 * r @ table.t()                       # (B, T, S)
        idx = dist.argmin(-1)
        if with_margins:
            low = dist.topk(2, dim=-1, largest=False).values
            margins.append((low[..., 1] - low[..., 0]) / (r.pow(2).sum(-1) + 1e-12))
        vec = table[idx].transpose(1, 2)                                      # (B, C, T)
        z_q = z_q + vec
        residual = residual - vec
        codes.append(idx)
    out = (torch.stack(codes, 1), z_q)
    return out + (torch.stack(margins, 1),) if with_margins else out


@torch.no_grad()
def dequantize(codec: DAC, codes):
    """z (B, C, T) from codes (B, n, T): sum of the projected raw code vectors."""
    return codec.quantizer.from_codes(codes)


@torch.no_grad()
def encode_latent(codec: DAC, audio):
    """Continuous latent (B, C, ceil(L/hop)) of audio (B, L)."""
    return codec.encoder(codec.preprocess(audio[:, None]))


@torch.no_grad()
def silence_latent(codec: DAC):
    """The latent (C,) the codec gives one frame of silence: an inner frame of one second, so no edge padding is in
    view. The centred masker masks around it (train_masker.py --centred, latent_study.py)."""
    silence = encode_latent(codec, torch.zeros(1, codec.sample_rate))[0]
    return silence[:, silence.shape[-1] // 2]
