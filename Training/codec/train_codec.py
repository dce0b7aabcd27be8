"""Train a compact 16 kHz DAC-style codec on CPU (seeded, resumable). NOT started as a long run by default.

    # smoke test (a few steps)
    python3 Training/codec/train_codec.py --run smoke --max-steps 5 --log-every 1 && rm -rf Training/codec/runs/smoke
    # a real run (the lead decides; CPU is scarce)
    setsid nohup nice -n 5 python3 Training/codec/train_codec.py --run codec16k > Training/codec/runs/codec16k/stdout.log 2>&1 &
    # resume
    ... train_codec.py --run codec16k --resume

Model: DAC architecture (Training/codec/dac.py, official key names with weight_g/weight_v), compact config:
16 kHz, encoder_dim 32, strides 2,4,5,8 (hop 320, 50 frames/s), latent 256, decoder_dim 384, 12 codebooks of 1024
(dim 8), quantizer dropout 0.5 (so fewer codebooks decode usefully: 12 x 10 bits x 50 Hz = 6 kbps at most).
Losses (no adversarial terms: CPU only): multi-scale log-mel L1 (windows 32..2048, DAC-style), multi-resolution STFT
(spectral convergence + log-magnitude L1), waveform L1, VQ commitment 0.25 and codebook 1.0.
Data: single sources and mixtures from data.mixtures.MixtureSampler (Training/data/READY), level-randomised.
Export: ``model.safetensors`` with the official state-dict names and metadata tuss-codec.kind = "dac",
tuss-codec.format = "1", tuss-codec.config = JSON of the DAC kwargs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parent
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from codec.dac import DAC, count_parameters  # noqa: E402

COMPACT_16K = dict(encoder_dim=32, encoder_rates=[2, 4, 5, 8], latent_dim=256, decoder_dim=384,
                   decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8,
                   quantizer_dropout=0.5, sample_rate=16000)


# ---------------------------------------------------------------------------------------------------------------------
# Spectral losses
# ---------------------------------------------------------------------------------------------------------------------


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """Triangular filters on the HTK mel scale, (n_mels, n_fft//2+1), slaney-style area normalisation."""
    fmax = fmax or sr / 2
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.maximum(0, np.minimum(up, down)) * (2.0 / max(hi - lo, 1e-9))
    return torch.tensor(fb, dtype=torch.float32)


class SpectralLosses(torch.nn.Module):
    def __init__(self, sr, mel_windows=(32, 64, 128, 256, 512, 1024, 2048), mel_bins=(5, 10, 20, 40, 80, 160, 320),
                 stft_windows=(2048, 512, 128)):
        super().__init__()
        self.mel_cfg = []
        for i, (w, nm) in enumerate(zip(mel_windows, mel_bins)):
            self.register_buffer(f"fb{i}", mel_filterbank(sr, w, nm), persistent=False)
            self.register_buffer(f"win{i}", torch.hann_window(w), persistent=False)
            self.mel_cfg.append(w)
        self.stft_cfg = list(stft_windows)
        for w in self.stft_cfg:
            self.register_buffer(f"swin{w}", torch.hann_window(w), persistent=False)

    @staticmethod
    def _mag(x, w, window):
        return torch.stft(x, n_fft=w, hop_length=w // 4, window=window, return_complex=True).abs()

    def forward(self, y, x):
        """y estimate, x reference: (B, L). Returns dict of losses."""
        mel = 0.0
        for i, w in enumerate(self.mel_cfg):
            fb, win = getattr(self, f"fb{i}"), getattr(self, f"win{i}")
            my = fb @ self._mag(y, w, win)
            mx = fb @ self._mag(x, w, win)
            mel = mel + (my.clamp_min(1e-5).log10() - mx.clamp_min(1e-5).log10()).abs().mean()
        sc, logmag = 0.0, 0.0
        for w in self.stft_cfg:
            win = getattr(self, f"swin{w}")
            sy, sx = self._mag(y, w, win), self._mag(x, w, win)
            sc = sc + (sx - sy).norm() / sx.norm().clamp_min(1e-7)
            logmag = logmag + (sy.clamp_min(1e-5).log() - sx.clamp_min(1e-5).log()).abs().mean()
        n = len(self.stft_cfg)
        return {"mel": mel, "stft_sc": sc / n, "stft_logmag": logmag / n, "wave_l1": (y - x).abs().mean()}


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class AudioSource:
    """Segments for codec training: mixtures and single sources of the TUSS data pipeline, random level."""

    def __init__(self, split, seconds, seed, synthetic=False):
        self.length = int(seconds * 16000)
        self.seed = seed
        self.synthetic = synthetic
        if not synthetic:
            from data.mixtures import MixtureSampler

            ready = TRAINING / "data" / "READY"
            idx = Path(ready.read_text().strip().splitlines()[0])
            if not idx.is_absolute():
                idx = TRAINING.parent / idx
            self.sampler = MixtureSampler(str(idx), split, sample_rate=16000, seconds=seconds, seed=seed)

    def get(self, i):
        rng = np.random.default_rng(self.seed * 1_000_003 + i)
        if self.synthetic:
            t = np.arange(self.length) / 16000
            x = np.sin(2 * np.pi * rng.uniform(80, 800) * t) + 0.3 * rng.standard_normal(self.length)
        else:
            mix, _, sources = self.sampler.sample(i)
            x = mix if rng.random() < 0.6 else sources[rng.integers(len(sources))]
        x = np.asarray(x, dtype=np.float32)
        peak = float(np.abs(x).max()) + 1e-6
        x = x / peak * (10 ** (rng.uniform(-24, -1) / 20))  # peak between -24 and -1 dBFS
        return torch.from_numpy(x.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def export_codec(model: DAC, path: Path, extra=None):
    from safetensors.torch import save_file

    tensors = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"tuss-codec.kind": "dac", "tuss-codec.format": "1", "tuss-codec.config": json.dumps(model.kwargs)}
    meta.update({f"tuss-codec.{k}": str(v) for k, v in (extra or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="codec16k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--save-every-sec", type=float, default=600)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = HERE / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = run_dir / "latest.pt"
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = DAC(**COMPACT_16K)
    losses = SpectralLosses(16000)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.8, 0.99))
    state = {"step": 0, "wall_s": 0.0}
    if args.resume:
        ck = torch.load(latest, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state.update(ck["state"])
        torch.set_rng_state(ck["torch_rng"])
    elif latest.exists():
        raise SystemExit(f"{latest} exists: use --resume or another --run")
    print(f"DAC compact 16k: {count_parameters(model):,} parameters, hop {model.hop_length}", flush=True)
    data = AudioSource("train", args.seconds, args.seed, args.synthetic)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(flag=True))

    def save():
        tmp = latest.with_name("latest.pt.tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                    "torch_rng": torch.get_rng_state(), "kwargs": model.kwargs}, tmp)
        os.replace(tmp, latest)
        export_codec(model, run_dir / "model.safetensors", {"step": state["step"]})

    log_path = run_dir / "log.csv"
    t_last, last_save = time.time(), time.time()
    model.train()
    while state["step"] < args.max_steps and not stop["flag"]:
        step = state["step"]
        x = torch.stack([data.get(step * args.batch + j) for j in range(args.batch)])[:, None]  # (B, 1, L)
        out = model(x)
        y = out["audio"][:, 0]
        l = losses(y, x[:, 0, : y.shape[-1]])  # the stride-5 decoder yields 320*T - 8 samples
        total = (15.0 * l["mel"] + 1.0 * l["stft_sc"] + 1.0 * l["stft_logmag"] + 5.0 * l["wave_l1"]
                 + 0.25 * out["vq/commitment_loss"] + 1.0 * out["vq/codebook_loss"])
        opt.zero_grad(set_to_none=True)
        total.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e3)
        opt.step()
        now = time.time()
        state["wall_s"] += now - t_last
        t_last = now
        state["step"] += 1
        if state["step"] % args.log_every == 0:
            row = {"step": state["step"], "wall_s": round(state["wall_s"], 1), "total": round(float(total.detach()), 4),
                   **{k: round(float(v), 4) for k, v in l.items()},
                   "commit": round(float(out["vq/commitment_loss"]), 4), "grad_norm": round(float(gn), 2)}
            new = not log_path.exists()
            with open(log_path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            print(row, flush=True)
        if time.time() - last_save > args.save_every_sec:
            save()
            last_save = time.time()
    save()
    print(f"stopped at step {state['step']}", flush=True)


if __name__ == "__main__":
    main()
