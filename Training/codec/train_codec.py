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
from tuss.train import append_csv, si_sdr  # noqa: E402  (one definition of the metric for every recipe)

COMPACT_16K = dict(encoder_dim=32, encoder_rates=[2, 4, 5, 8], latent_dim=256, decoder_dim=384,
                   decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8,
                   quantizer_dropout=0.5, sample_rate=16000)
# The shipped default (Codecs/dac-small-16k): sized so that one CPU core trains it at ~4 audio-seconds per second.
SMALL_16K = dict(encoder_dim=24, encoder_rates=[2, 4, 5, 8], latent_dim=64, decoder_dim=256,
                 decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8,
                 quantizer_dropout=0.5, sample_rate=16000)
LOG_FIELDS = ["step", "wall_s", "audio_h", "lr", "total", "mel", "stft_sc", "stft_logmag", "wave_l1", "commit",
              "grad_norm", "revived", "batch_codes_used", "val_mel_4", "val_mel_8", "val_mel_12", "val_sisdr_4", "val_sisdr_8",
              "val_sisdr_12", "val_codes_used", "sisdr", "nmse", "phase", "additivity", "val_additivity_db"]


@torch.no_grad()
def zero_biases(model):
    """Starts every convolution bias at zero, as the official DAC initialisation does.

    With PyTorch's default uniform biases the encoder's output at initialisation is almost constant (measured here:
    frame-to-frame variation was 2 % of its energy, encoder outputs of different frames had cosine similarity 0.96),
    so every codebook lookup picked the same entry and training collapsed onto one code per codebook. With zero
    biases the variation is 98 % and a random codebook already uses 160-300 entries per 400 lookups.
    """
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.zero_()


@torch.no_grad()
def seed_codebooks(model, segments):
    """Sets each codebook's entries to in_proj outputs of real audio, codebook by codebook down the residual chain.

    A random N(0, 1) codebook sits far from the encoder's outputs, so the first lookups all pick the few entries that
    happen to point the encoder's way and the commitment loss then pulls the encoder onto them (collapse). Seeding from
    data starts every entry where inputs are.
    """
    x = torch.stack(segments)[:, None]
    residual = model.encoder(model.preprocess(x))
    d = model.quantizer.codebook_dim
    for q in model.quantizer.quantizers:
        pool = q.in_proj(residual).transpose(1, 2).reshape(-1, d)
        pick = torch.randperm(len(pool))[: q.codebook.weight.shape[0]]
        if len(pick) < q.codebook.weight.shape[0]:
            pick = torch.randint(len(pool), (q.codebook.weight.shape[0],))
        q.codebook.weight.data.copy_(pool[pick] + 1e-3 * torch.randn(len(pick), d))
        residual = residual - q(residual)[0]


class DeadCodeReviver:
    """Keeps every codebook entry in use: entries unused for a while are re-seeded from current encoder outputs.

    Without it the cosine-similarity lookup collapsed here within a few hundred CPU steps (every codebook used one
    entry, so no information reached the decoder). Usage is an exponential moving average of per-step counts; every
    `every` steps, entries whose average use fell below `threshold` take the value of a random in_proj output of the
    current batch (the space the lookup compares in), so they start out as the nearest entry for real inputs.
    """

    def __init__(self, quantizer, decay=0.99, threshold=0.003, every=25):
        self.quantizer = quantizer
        self.decay, self.threshold, self.every = decay, threshold, every
        self.usage = torch.full((quantizer.n_codebooks, quantizer.codebook_size), 0.5)
        self.steps = 0
        self.revived_total = 0

    @torch.no_grad()
    def observe(self, codes, latents):
        """codes (B, nq, T), latents (B, nq*d, T): the in_proj outputs of the same forward."""
        self.steps += 1
        d = self.quantizer.codebook_dim
        for i in range(codes.shape[1]):
            counts = torch.bincount(codes[:, i].reshape(-1), minlength=self.quantizer.codebook_size).float()
            self.usage[i].mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.every <= 0 or self.steps % self.every:
            return
        for i, q in enumerate(self.quantizer.quantizers):
            dead = (self.usage[i] < self.threshold).nonzero().flatten()
            if len(dead) == 0:
                continue
            pool = latents[:, i * d:(i + 1) * d].transpose(1, 2).reshape(-1, d)
            pick = torch.randint(len(pool), (len(dead),))
            q.codebook.weight.data[dead] = pool[pick] + 1e-3 * torch.randn(len(dead), d)
            self.usage[i, dead] = 1.0
            self.revived_total += len(dead)


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


PHASE_N_FFT = 512  # the phase term's transform; one of SpectralLosses' STFT sizes, so training shares it


def _stft(x, w, window):
    return torch.stft(x, n_fft=w, hop_length=w // 4, window=window, return_complex=True)


class SpectralLosses(torch.nn.Module):
    def __init__(self, sr, mel_windows=(32, 64, 128, 256, 512, 1024, 2048), mel_bins=(5, 10, 20, 40, 80, 160, 320),
                 stft_windows=(2048, 512, 128)):
        super().__init__()
        self.sr = sr
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
        return _stft(x, w, window).abs()

    def forward(self, y, x, phase_max_hz=None):
        """y estimate, x reference: (B, L). Returns dict of losses; with phase_max_hz also "phase" (see phase_loss),
        taken from the 512-point STFT this already computes so the phase term costs no extra transform."""
        mel = 0.0
        for i, w in enumerate(self.mel_cfg):
            fb, win = getattr(self, f"fb{i}"), getattr(self, f"win{i}")
            my = fb @ self._mag(y, w, win)
            mx = fb @ self._mag(x, w, win)
            mel = mel + (my.clamp_min(1e-5).log10() - mx.clamp_min(1e-5).log10()).abs().mean()
        sc, logmag = 0.0, 0.0
        out = {}
        for w in self.stft_cfg:
            win = getattr(self, f"swin{w}")
            cy, cx = _stft(y, w, win), _stft(x, w, win)
            sy, sx = cy.abs(), cx.abs()
            sc = sc + (sx - sy).norm() / sx.norm().clamp_min(1e-7)
            logmag = logmag + (sy.clamp_min(1e-5).log() - sx.clamp_min(1e-5).log()).abs().mean()
            if phase_max_hz is not None and w == PHASE_N_FFT:
                out["phase"] = _phase_error(cy, cx, _bins_below(phase_max_hz, self.sr, w))
        if phase_max_hz is not None and "phase" not in out:
            out["phase"] = phase_loss(y, x, max_hz=phase_max_hz, sample_rate=self.sr)
        n = len(self.stft_cfg)
        out.update({"mel": mel, "stft_sc": sc / n, "stft_logmag": logmag / n, "wave_l1": (y - x).abs().mean()})
        return out


def phase_loss(y, x, n_fft=PHASE_N_FFT, max_hz=4000.0, sample_rate=16000):
    """Magnitude-weighted phase error of y against x below max_hz, in [0, 2]: 0 = same phase, ~1 = unrelated.

    Why: the waveform terms (L1, NMSE) are dominated by the loudest, lowest partials, and where the phase is wrong their
    cheapest descent is to shrink the output, which the mel loss then fights. This term sees only the angle between
    the two STFT bins (it is unchanged when y is scaled), weighted by the reference's magnitude so silent bins do not
    count, and normalised per item so quiet segments weigh as much as loud ones. Training takes the same figure from
    SpectralLosses(phase_max_hz=...), which reuses its own 512-point STFT.
    """
    window = torch.hann_window(n_fft, device=y.device)
    return _phase_error(_stft(y, n_fft, window), _stft(x, n_fft, window), _bins_below(max_hz, sample_rate, n_fft))


def _bins_below(max_hz, sample_rate, n_fft):
    return int(max_hz / sample_rate * n_fft) + 1


def _phase_error(sy, sx, bins):
    sy, sx = sy[:, :bins], sx[:, :bins]
    cos = (sy * sx.conj()).real / (sy.abs() * sx.abs() + 1e-7)
    weight = sx.abs()
    return ((weight * (1 - cos)).sum((-2, -1)) / (weight.sum((-2, -1)) + 1e-7)).mean()


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


def additivity_error(model: DAC, x, z_x=None):
    """How far the encoder is from additive on pairs of the batch: x (B, 1, L) is paired with x rolled by one item.

    Returns the per-pair error energy of encode(a + b) against encode(a) + encode(b) − encode(silence), over the
    energy of encode(a + b) − encode(silence), as a tensor (B,). Why: the codec-path masker edits this latent, and a
    latent far from additive (session 23: −0.6 dB, 3.3 dB around silence's latent) leaves the masker no simple
    operation that removes one source; a mask works on a latent that is a sum of its sources' parts. `z_x` is the
    batch's encoder output when the caller already has it (with its graph).
    """
    z_a = model.encoder(model.preprocess(x)) if z_x is None else z_x
    z_b = z_a.roll(1, dims=0)
    z_ab = model.encoder(model.preprocess(x + x.roll(1, dims=0)))
    z_0 = model.encoder(model.preprocess(torch.zeros_like(x[:1])))
    residual = z_ab - z_a - z_b + z_0
    return residual.pow(2).sum((1, 2)) / ((z_ab - z_0).pow(2).sum((1, 2)) + 1e-8)


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


CONFIGS = {"compact": COMPACT_16K, "small": SMALL_16K}


def trainable_parameters(model: DAC, decoder_only: bool):
    """The parameters the optimiser updates; with decoder_only the encoder and quantizer are frozen in place."""
    if decoder_only:
        for p in list(model.encoder.parameters()) + list(model.quantizer.parameters()):
            p.requires_grad_(False)
        return list(model.decoder.parameters())
    return list(model.parameters())


@torch.no_grad()
def validate(model, items, losses, codebooks):
    """Mean log-mel distance and SI-SDR of the decoded validation items, per codebook count."""
    model.eval()
    out = {}
    used = []
    for x in items:
        codes = model(x[None, None])["codes"][0]
        used.append(codes)
    used = torch.cat(used, dim=1)
    out["codes_used"] = float(np.mean([len(torch.unique(used[i])) for i in range(used.shape[0])]))
    for nq in codebooks:
        mels, sdrs = [], []
        for x in items:
            y = model(x[None, None], n_quantizers=nq)["audio"][0, 0]
            n = min(len(y), len(x))
            mels.append(float(losses(y[None, :n], x[None, :n])["mel"]))
            sdrs.append(float(si_sdr(y[None, :n], x[None, :n])[0]))
        out[nq] = (float(np.mean(mels)), float(np.mean(sdrs)))
    model.train()
    return out


def load_exported(path: Path):
    """A codec safetensors file (export_codec) -> (DAC, step)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    model = DAC(**json.loads(meta["tuss-codec.config"]))
    model.load_state_dict(load_file(str(path)))
    return model, int(meta.get("tuss-codec.step", "0")), float(meta.get("tuss-codec.audio_hours", "0"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="codec16k")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-final", type=float, default=1e-4, help="reached after --decay-steps, then held")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--decay-steps", type=int, default=30000)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--save-every-sec", type=float, default=600)
    ap.add_argument("--val-items", type=int, default=12)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue runs/<run>/latest.pt (model + optimizer)")
    ap.add_argument("--init-from", type=Path, help="continue from an exported codec (weights only, fresh optimizer)")
    ap.add_argument("--export", type=Path, default=None,
                    help="also export here at every save (e.g. Codecs/dac-small-16k/codec.safetensors)")
    ap.add_argument("--log", type=Path, default=None, help="CSV log (default runs/<run>/log.csv)")
    ap.add_argument("--fixture-dir", type=Path, default=None,
                    help="regenerate the Swift parity fixture here after every --export (Tests/Fixtures/dac-small-16k)")
    ap.add_argument("--commitment", type=float, default=0.25, help="weight of the VQ commitment loss")
    ap.add_argument("--nmse-weight", type=float, default=0.0,
                    help="weight of the waveform error energy over the reference energy: unlike SI-SDR its gradient "
                         "pulls toward the reference with the same sign whatever the current correlation")
    ap.add_argument("--sisdr-weight", type=float, default=0.0,
                    help="weight of a negative SI-SDR (dB) term: spectral losses alone leave the decoder's phase free, "
                         "so its output need not line up with the input's waveform")
    ap.add_argument("--phase-weight", type=float, default=0.0,
                    help="weight of phase_loss (STFT 512, below --phase-max-hz): gives the phase a gradient that "
                         "does not shrink the output's magnitude")
    ap.add_argument("--phase-max-hz", type=float, default=4000.0)
    ap.add_argument("--normalized-vq-losses", action="store_true",
                    help="commitment/codebook losses between L2-normalised vectors (the lookup's space)")
    ap.add_argument("--revive-every", type=int, default=25, help="dead-code revival period in steps (0: off)")
    ap.add_argument("--data-init", action="store_true",
                    help="seed every codebook entry from encoder outputs of the first batches (fresh runs only)")
    ap.add_argument("--decoder-only", action="store_true",
                    help="train the decoder alone: encoder and quantizer frozen (no dead-code revival), so every input "
                         "keeps the codes it had and a latent masker trained on them sees the same latents")
    ap.add_argument("--additivity-weight", type=float, default=0.0,
                    help="weight of additivity_error: pulls the encoder toward encode(a + b) = encode(a) + encode(b) "
                         "− encode(silence) on pairs of the batch, so a latent masker can remove a source by masking; "
                         "changes the codes (not with --decoder-only)")
    ap.add_argument("--name", default="dac-small-16k", help="codec name recorded in the file and in codes files")
    args = ap.parse_args(argv)
    if args.additivity_weight and args.decoder_only:
        raise SystemExit("--additivity-weight trains the encoder, which --decoder-only freezes; drop one of them")
    torch.set_num_threads(args.threads)
    run_dir = HERE / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = run_dir / "latest.pt"
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    state = {"step": 0, "wall_s": 0.0, "audio_h": 0.0}
    if args.init_from:
        model, state["step"], state["audio_h"] = load_exported(args.init_from)
    else:
        model = DAC(**CONFIGS[args.config])
        zero_biases(model)
    losses = SpectralLosses(16000)
    if args.resume:
        ck = torch.load(latest, map_location="cpu", weights_only=False)
        model = DAC(**ck["kwargs"])
        model.load_state_dict(ck["model"])
    opt = torch.optim.AdamW(trainable_parameters(model, args.decoder_only), lr=args.lr, betas=(0.8, 0.99))
    if args.resume:
        opt.load_state_dict(ck["optimizer"])
        state.update(ck["state"])
        torch.set_rng_state(ck["torch_rng"])
    elif latest.exists() and not args.init_from:
        raise SystemExit(f"{latest} exists: use --resume, --init-from or another --run")
    first_step = state["step"]

    def lr_at(step):
        # warm-up after every (re)start: a fresh optimizer has no moment estimates yet
        warm = min(1.0, (step - first_step + 1) / max(1, args.warmup))
        frac = min(1.0, step / max(1, args.decay_steps))
        return warm * args.lr * (args.lr_final / args.lr) ** frac

    print(f"DAC {model.kwargs}: {count_parameters(model):,} parameters, hop {model.hop_length}", flush=True)
    data = AudioSource("train", args.seconds, args.seed, args.synthetic)
    val_data = AudioSource("valid", 2.0, 12345, args.synthetic)
    val_items = [val_data.get(i) for i in range(args.val_items)]
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda s, f: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda s, f: stop.update(flag=True))
    log_path = args.log or run_dir / "log.csv"

    def log(row):
        append_csv(log_path, LOG_FIELDS, row)
        print(row, flush=True)

    def save():
        v = validate(model, val_items, losses, (4, 8, 12))
        with torch.no_grad():
            err = additivity_error(model, torch.stack(val_items)[:, None])
        log({"step": state["step"], "wall_s": round(state["wall_s"], 1), "audio_h": round(state["audio_h"], 3),
             "lr": lr_at(state["step"]), "val_additivity_db": round(float(-10 * torch.log10(err.mean())), 3),
             "val_codes_used": v.pop("codes_used"),
             **{f"val_mel_{nq}": round(m, 4) for nq, (m, _) in v.items()},
             **{f"val_sisdr_{nq}": round(d, 3) for nq, (_, d) in v.items()}})
        tmp = latest.with_name("latest.pt.tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                    "torch_rng": torch.get_rng_state(), "kwargs": model.kwargs}, tmp)
        os.replace(tmp, latest)
        extra = {"name": args.name, "step": state["step"], "audio_hours": round(state["audio_h"], 3),
                 "val_mel_12": round(v[12][0], 4), "val_sisdr_12": round(v[12][1], 3)}
        export_codec(model, run_dir / "model.safetensors", extra)
        if args.export:
            export_codec(model, args.export, extra)
            if args.fixture_dir:
                from codec.make_fixture import main as make_fixture

                make_fixture(["--model", str(args.export), "--out", str(args.fixture_dir)])

    reviver = DeadCodeReviver(model.quantizer, every=0 if args.decoder_only else args.revive_every)
    for q in model.quantizer.quantizers:
        q.normalized_losses = args.normalized_vq_losses
    if args.data_init and state["step"] == 0:
        seed_codebooks(model, [data.get(10**9 + j) for j in range(16)])  # items no training step draws
    t_last, last_save = time.time(), time.time()
    model.train()
    if state["step"] == 0:
        save()
    while state["step"] < args.max_steps and not stop["flag"]:
        step = state["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = torch.stack([data.get(step * args.batch + j) for j in range(args.batch)])[:, None]  # (B, 1, L)
        if args.decoder_only:
            with torch.no_grad():  # the frozen half needs no graph; this saves its backward and its activations
                z, z_q, codes, latents, commitment, codebook_loss = model.encode(x)
            out = {"audio": model.decode(z_q)[..., : x.shape[-1]], "codes": codes, "latents": latents,
                   "vq/commitment_loss": commitment, "vq/codebook_loss": codebook_loss}
        else:
            out = model(x)
        y = out["audio"][:, 0]
        ref = x[:, 0, : y.shape[-1]]  # the stride-5 decoder yields 320*T - 8 samples
        l = losses(y, ref, phase_max_hz=args.phase_max_hz if args.phase_weight else None)
        l["sisdr"] = si_sdr(y, ref).mean()
        l["nmse"] = ((y - ref).pow(2).sum(-1) / (ref.pow(2).sum(-1) + 1e-8)).mean()
        if args.additivity_weight:
            l["additivity"] = additivity_error(model, x, out["z"]).mean()
        total = (15.0 * l["mel"] + 1.0 * l["stft_sc"] + 1.0 * l["stft_logmag"] + 5.0 * l["wave_l1"]
                 + args.commitment * out["vq/commitment_loss"] + 1.0 * out["vq/codebook_loss"]
                 - args.sisdr_weight * l["sisdr"] + args.nmse_weight * l["nmse"]
                 + (args.phase_weight * l["phase"] if args.phase_weight else 0.0)
                 + (args.additivity_weight * l["additivity"] if args.additivity_weight else 0.0))
        opt.zero_grad(set_to_none=True)
        total.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e3)
        opt.step()
        reviver.observe(out["codes"], out["latents"])
        now = time.time()
        state["wall_s"] += now - t_last
        t_last = now
        state["step"] += 1
        state["audio_h"] += args.batch * args.seconds / 3600
        if state["step"] % args.log_every == 0:
            log({"step": state["step"], "wall_s": round(state["wall_s"], 1), "audio_h": round(state["audio_h"], 3),
                 "lr": lr_at(step), "total": round(float(total.detach()), 4),
                 **{k: round(float(v.detach()) if torch.is_tensor(v) else float(v), 4) for k, v in l.items()},
                 "commit": round(float(out["vq/commitment_loss"].detach()), 4), "grad_norm": round(float(gn), 2),
                 "revived": reviver.revived_total,
                 "batch_codes_used": float(np.mean([len(torch.unique(out["codes"][:, i])) for i in range(out["codes"].shape[1])]))})
        if time.time() - last_save > args.save_every_sec:
            save()
            last_save = time.time()
    save()
    print(f"stopped at step {state['step']}", flush=True)


if __name__ == "__main__":
    main()
