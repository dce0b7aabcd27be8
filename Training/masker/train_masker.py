"""Train the codec-path latent masker on CPU against a frozen codec (seeded, resumable, 1 thread).

    # smoke test without the data pipeline or a trained codec (random tiny codec, 3 steps, scratch outputs)
    python3 Training/masker/train_masker.py --run smoke --synthetic --random-codec --max-steps 3 --val-items 2 \
        --val-every-sec 0 --log /tmp/masker-smoke/log.csv --export /tmp/masker-smoke/model.safetensors \
        && rm -rf Training/masker/runs/smoke
    # the real run (after the codec exists), in the background, low priority
    setsid nohup nice -n 5 python3 Training/masker/train_masker.py --run codec-masker \
        --codec Codecs/dac-small-16k/codec.safetensors > /tmp/codec-masker.log 2>&1 &
    # resume it
    ... train_masker.py --run codec-masker --codec Codecs/dac-small-16k/codec.safetensors --resume

Data: ``data.mixtures.MixtureSampler`` (as Training/tuss/train.py: mixture, prompts, references; item i = batch * size
+ j over freshly encoded batches, so a resumed run continues the same stream), prompt dropout in 25 % of the steps.
With --replay R, every freshly encoded batch is followed by R optimizer steps on items drawn from a ring buffer of
earlier encodings (the frozen codec's encoder costs ~100x the masker step); the buffer is not checkpointed and
refills after a resume.
Per item: the mixture is encoded by the frozen codec and quantised with K codebooks (K = all in half the steps,
else uniform in 1..all, so the masker serves any bitrate); the masker's input is that quantised latent, exactly what
`dequantize` rebuilds from a codes file. Targets: each reference source encoded and quantised with the same K
(with --continuous-target: its continuous encoder latent, which the encoder's lookup maps to the source's own codes;
outputs go back to codes with `requantize`, as in the engine; figures in masker/requant_study.py).
Loss: latent SNR (snr_with_zero_refs of tuss/train.py on the flattened latents, 30 dB cap), permutation-invariant
within repeated prompts, plus --l1-weight x the L1 error normalised by the target's mean magnitude (robust to the
latent's heavy-tailed channels), plus --decoded-weight x a loss of the decoded output against the decoded quantised
target on a random --decoded-seconds crop (--decoded-kind: SNR, SI-SDR, or the per-bin SIR / SDR of `spectral_bss`;
`decoded_loss`; backpropagates through the frozen decoder).
Validation (fixed valid-split mixtures, all codebooks): latent SNR per prompt (dB) and, through requantisation and
the codec decoder, SI-SDR improvement of the decoded audio per prompt (what `separate --codes --decode` gives).
The best model (by decoded SI-SDRi; --select-by siri / bss-sdri for the BSS Eval SIR / SDR gain, latent-snr for the
older rule, which runs before session 16 used) is exported with the codec's identity to --export.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parent
REPO = TRAINING.parent
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from codec.train_codec import SpectralLosses  # noqa: E402
from eval.bss_eval import BSSEval  # noqa: E402
from masker.codec_tools import (encode_latent, load_codec, quantize, requantize, silence_latent,  # noqa: E402
                                 write_random_codec)
from masker.model import (PROMPTS, LatentMasker, canonical, default_config, export, grow_from,  # noqa: E402
                          load_exported, unfold_centre, widen)
from tuss.train import (advance, append_csv, apply_step, atomic_save, get_item, lr_at, make_sampler, pit_snr_loss,  # noqa: E402
                        prompt_dropout, rng_state, set_rng_state, si_sdr, snr_with_zero_refs, wait_for_index)

MEL = SpectralLosses(16000)

DEFAULT_CODEC = REPO / "Codecs" / "dac-small-16k" / "codec.safetensors"
DEFAULT_EXPORT = REPO / "Models" / "codec-masker" / "model.safetensors"
DEFAULT_LOG = REPO / "Models" / "codec-masker" / "training-log.csv"
LOG_FIELDS = (["step", "wall_s", "audio_hours", "train_loss", "lr", "codebooks", "val_latent_snr_mean", "val_sisdri_mean"]
              + [f"val_latent_snr_{p}" for p in PROMPTS] + [f"val_sisdri_{p}" for p in PROMPTS] + ["val_items", "best"]
              + ["val_mel_gain_mean"] + [f"val_mel_gain_{p}" for p in PROMPTS]
              + ["val_siri_mean"] + [f"val_siri_{p}" for p in PROMPTS]
              + ["val_bss_sdri_mean"] + [f"val_bss_sdri_{p}" for p in PROMPTS])


def append_log(path: Path, row: dict):
    append_csv(path, LOG_FIELDS, row)


def latents(codec, audio, codebooks):
    """Quantised latents (B, C, T) of audio (B, L) with the first `codebooks` codebooks."""
    return quantize(codec, encode_latent(codec, audio), codebooks)[1]


def masker_loss(est, target, mix_latent, prompts, l1_weight, norm_weight: float = 0.0):
    """est, target (B, N, C, T); mix_latent (B, C, T). Returns (loss, perms: est index -> target index).

    `norm_weight` adds the mean absolute per-frame norm ratio in dB, |20 log10(|est_t| / |target_t|)|. Why: a
    latent loss is minimised by shrinking uncertain outputs towards their conditional mean, and the decoder turns
    shrunk latents into worse audio (session 26: rescaling the masker's outputs per frame to the target's norm gains
    0.7 dB SI-SDRi on validation); this term asks for the target's energy per frame even where the detail is unsure."""
    b, n = est.shape[:2]
    snr, perms = pit_snr_loss(est.reshape(b, n, -1), target.reshape(b, n, -1), mix_latent.reshape(b, -1), prompts)
    matched = torch.stack([target[i, perms[i]] for i in range(b)])
    l1 = ((est - matched).abs().mean((2, 3)) / (matched.abs().mean((2, 3)) + 1e-6)).mean()
    loss = snr + l1_weight * l1
    if norm_weight > 0:
        ratio = est.norm(dim=2).clamp_min(1e-6) / matched.norm(dim=2).clamp_min(1e-6)   # (B, N, T)
        loss = loss + norm_weight * (20 * torch.log10(ratio)).abs().mean()
    return loss, perms


def oracle_masked(target, z_mix, centre):
    """The best latent a centred mask in [0, 1] can give for each target: centre + clip(ratio, 0, 1) (z_mix − centre).

    target (B, N, C, T), z_mix (B, C, T), centre (C,). Why: a source's latent is not a masked mixture latent (the
    codec's latent is not additive), so a loss toward it also asks for what no mask in [0, 1] can do; this target asks
    only for what such a mask can, and decodes well (docs/results.md, session 24).
    """
    c = centre.to(target.dtype)[None, None, :, None]
    offset = z_mix[:, None] - c
    safe = torch.where(offset.abs() < 1e-6, torch.full_like(offset, 1e-6), offset)
    return c + ((target - c) / safe).clamp(0.0, 1.0) * offset


def decoded_loss(codec, est, target, z_mix, perms, books: int, frames: int, rng: random.Random, quiet_db=-40.0,
                 kind: str = "snr"):
    """Loss of the decoded output against the decoded target latent (SNR; kind "si-sdr" negative SI-SDR; kinds "sir" /
    "sdr" the negative per-bin SIR / SDR of `spectral_bss`), on one random crop of `frames` frames.

    Why: the latent loss alone left outputs that decode worse (SI-SDR) than passing the mixture through unchanged:
    the decoder is far from linear in its latent, so latent errors that look small become large waveform errors.
    The target is the codec's own reconstruction of the source (decode of the quantised source latent), the best
    waveform the codec path can deliver, so the loss asks for nothing the decoder cannot produce. The output is
    requantised as at inference with a straight-through gradient. Targets more than 40 dB below the decoded mixture
    count as absent sources (loss against the mixture power, weight 0.1, as `snr_with_zero_refs` does for silence).
    est, target (B, N, C, T); z_mix (B, C, T); perms: est index -> target index per item.
    """
    b, n, c, t = est.shape
    matched = torch.stack([target[i, perms[i]] for i in range(b)])
    if frames < t:
        start = rng.randrange(t - frames + 1)
        est, matched, z_mix = est[..., start:start + frames], matched[..., start:start + frames], z_mix[..., start:start + frames]
    flat = est.reshape(b * n, c, -1)
    with torch.no_grad():
        snapped = requantize(codec, flat, books)[1]
        ref = codec.decode(matched.reshape(b * n, c, -1))[:, 0].view(b, n, -1)
        mix = codec.decode(z_mix)[:, 0]
    out = codec.decode(flat + (snapped - flat).detach())[:, 0].view(b, n, -1)
    quiet = ref.pow(2).sum(-1) < 10 ** (quiet_db / 10) * mix.pow(2).sum(-1, keepdim=True)
    ref = torch.where(quiet[..., None], torch.zeros_like(ref), ref)
    if kind == "snr":
        return snr_with_zero_refs(out, ref, mix)[0]
    if kind in ("sir", "sdr"):
        sdr, sir = spectral_bss(out, ref, mix)
        score = (sir if kind == "sir" else sdr).clamp(max=30.0)
    else:
        score = si_sdr(out, ref).clamp(max=30.0)
    # kind "si-sdr": an SNR loss rewards shrinking an output whose waveform the masker cannot pin down (a quieter
    # wrong waveform has a smaller error), and the decoder turns shrunk latents into worse waveforms; SI-SDR cannot be
    # raised that way. Kind "sir" asks only that the other sources leave the output, kind "sdr" also that nothing
    # else enter it (`spectral_bss`).
    # Absent sources: the output's energy against the mixture's, in dB, asking for a quiet output (as
    # `snr_with_zero_refs` scores them; computed here because that function returns its per-source losses detached).
    mix_pow = mix.pow(2).sum(-1, keepdim=True)
    silent = 10 * torch.log10(out.pow(2).sum(-1) + 1e-3 * mix_pow + 1e-7) - 10 * torch.log10(mix_pow + 1e-7)
    per = torch.where(quiet, 0.1 * silent, -score)
    return per.mean()


def spectral_bss(out, ref, mix, n_fft: int = 512, hop: int = 128, load: float = 1e-6):
    """Differentiable signal-to-distortion and signal-to-interference ratios (dB) of each output, each (B, N).

    out, ref (B, N, L); mix (B, L). The interferers of output n are the other references and the residual
    mix − Σ ref (sources whose prompt was dropped, and what the codec does not add up). Per frequency bin of an STFT,
    each output is fitted by least squares with one complex gain per reference (a filter per reference, as BSS Eval's
    512-tap distortion filters allow, here as long as the STFT window); SIR = the energy of its own reference's part
    over that of the interferers' parts, SDR = that energy over the rest of the output (interference and artifacts),
    summed over bins. Why: the latent loss and SNR-type losses mix what the
    codec cannot reproduce with what the masker left in, and on this codec the first dominates; this asks only for
    the second (the SIR `tuss-codec eval` reports is the same idea with time-domain filters). A diagonal load
    `load` × the mean reference energy per bin keeps silent references (all-zero rows) solvable.
    """
    b, n, length = out.shape
    refs = torch.cat((ref, (mix - ref.sum(1))[:, None]), dim=1)               # (B, N+1, L)
    window = torch.hann_window(n_fft, dtype=out.dtype, device=out.device)

    def spec(x):
        flat = x.reshape(-1, x.shape[-1])
        return torch.stft(flat, n_fft, hop, window=window, return_complex=True).view(*x.shape[:-1], n_fft // 2 + 1, -1)

    r, o = spec(refs), spec(out)                                              # (B, N+1, F, T'), (B, N, F, T')
    gram = torch.einsum("bjft,bkft->bfjk", r.conj(), r)                       # (B, F, N+1, N+1): <R_j, R_k>
    scale = gram.diagonal(dim1=-2, dim2=-1).real.mean(-1)                      # (B, F)
    eye = torch.eye(n + 1, dtype=gram.dtype, device=gram.device)
    rhs = torch.einsum("bjft,bnft->bfjn", r.conj(), o)                         # (B, F, N+1, N)
    gains = torch.linalg.solve(gram + (load * scale + 1e-12)[..., None, None] * eye, rhs)   # gain of ref j in output n
    own = torch.eye(n + 1, n, dtype=torch.bool, device=out.device)            # ref j = n is output n's own
    interf_gain = torch.where(own, torch.zeros_like(gains), gains)
    own_gain = gains[:, :, :n].diagonal(dim1=-2, dim2=-1)                      # (B, F, N)
    # Energies over the frames: |g_n|^2 <R_n, R_n> for the own part, g^H G g for the interferers' sum.
    target = (own_gain.abs().pow(2) * gram.diagonal(dim1=-2, dim2=-1).real[..., :n]).sum(1)
    interference = torch.einsum("bfjn,bfjk,bfkn->bn", interf_gain.conj(), gram, interf_gain).real.clamp_min(0)
    distortion = (o - own_gain.transpose(1, 2)[..., None] * r[:, :n]).abs().pow(2).sum((-2, -1))
    db = lambda e: 10 * torch.log10(e + 1e-9)                                 # noqa: E731
    return db(target) - db(distortion), db(target) - db(interference)


@torch.no_grad()
def validate(model, codec, val_items, decode: bool):
    model.eval()
    books = codec.quantizer.n_codebooks
    snr_per = {p: [] for p in PROMPTS}
    sdr_per = {p: [] for p in PROMPTS}
    mel_per = {p: [] for p in PROMPTS}
    siri_per = {p: [] for p in PROMPTS}
    bss_per = {p: [] for p in PROMPTS}
    for mix, prompts, sources in val_items:
        names = [canonical(p) for p in prompts]
        z_mix = latents(codec, mix[None], books)
        target = latents(codec, sources, books)[None]                       # (1, N, C, T)
        est = model(z_mix, [names])
        _, perms = pit_snr_loss(est.flatten(2), target.flatten(2), z_mix.flatten(1), [names])
        order = torch.tensor(perms[0])
        snr = 10 * torch.log10(target[0, order].pow(2).sum((1, 2)) / ((est[0] - target[0, order]).pow(2).sum((1, 2)) + 1e-12))
        for i, p in enumerate(names):
            snr_per[p].append(float(snr[i]))
        if decode:
            length = mix.shape[-1]
            audio = codec.decode(requantize(codec, est[0], books)[1])[:, 0, :length]   # (N, ≤ L): 320·T − 8 samples
            audio = torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
            refs = sources[order]
            gain = si_sdr(audio, refs) - si_sdr(mix[None].expand_as(refs), refs)
            for i, p in enumerate(names):
                sdr_per[p].append(float(gain[i]))
                # The phase-blind figure `tuss-codec eval` reports as "mel gain": how much closer (multi-scale log-mel
                # L1) the decoded output is to its reference than the mixture is.
                mel_per[p].append(float(MEL(mix[None], refs[i : i + 1])["mel"] - MEL(audio[i : i + 1], refs[i : i + 1])["mel"]))
            # BSS Eval SIR gain over the mixture, as `tuss-codec eval` reports it: how much of the other sources the
            # output no longer holds, which the codec's waveform error (SI-SDR's main term here) does not enter.
            try:
                scorer = BSSEval(refs.numpy())
            except ValueError:                  # all references silent, or shorter than the 512-tap filter
                continue
            mix_scores = scorer.criteria(mix.numpy())
            for i, p in enumerate(names):
                out, base = scorer.criteria(audio[i].numpy())[i], mix_scores[i]
                if out and base and out[1] is not None and base[1] is not None:
                    siri_per[p].append(out[1] - base[1])
                if out and base:
                    bss_per[p].append(out[0] - base[0])             # BSS SDR gain: interference and artifacts
    model.train()

    def summary(per, key):
        out = {f"{key}_{p}": (round(float(np.mean(v)), 3) if v else "") for p, v in per.items()}
        allv = [x for v in per.values() for x in v]
        out[f"{key}_mean"] = round(float(np.mean(allv)), 3) if allv else ""
        return out

    return (summary(snr_per, "val_latent_snr") | (summary(sdr_per, "val_sisdri") if decode else {})
            | (summary(mel_per, "val_mel_gain") if decode else {}) | (summary(siri_per, "val_siri") if decode else {})
            | (summary(bss_per, "val_bss_sdri") if decode else {})
            | {"val_items": len(val_items)})


# --select-by rule -> the validation column whose best value picks the exported model.
SELECT_COLUMNS = {"latent-snr": "val_latent_snr_mean", "sisdri": "val_sisdri_mean", "siri": "val_siri_mean",
                  "bss-sdri": "val_bss_sdri_mean"}


def selection_key(args) -> str:
    """The validation column whose best value picks the exported model (latent SNR when nothing is decoded)."""
    return SELECT_COLUMNS["latent-snr" if args.no_decode_val else args.select_by]


def masker_lr(step, args):
    """Warm-up, then --lr, or with --lr-final an exponential decay to it over --decay-steps (flat afterwards).

    The step counts from the start of the run, so a --resume continues the same curve."""
    lr = lr_at(step, args.lr, args.warmup, 1.0)
    if args.lr_final is None:
        return lr
    progress = min(1.0, step / max(1, args.decay_steps))
    return lr * (args.lr_final / args.lr) ** progress


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="codec-masker", help="checkpoints in Training/masker/runs/<run>/")
    ap.add_argument("--codec", type=Path, default=DEFAULT_CODEC, help="the frozen codec (our .safetensors)")
    ap.add_argument("--random-codec", action="store_true", help="smoke tests: a random tiny codec instead of --codec")
    ap.add_argument("--index", default=None, help="data index path (default: read Training/data/READY)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic tones/noise instead of the data pipeline")
    ap.add_argument("--wait-data", type=float, default=3 * 3600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=256)
    ap.add_argument("--joint-layers", type=int, default=2)
    ap.add_argument("--film-layers", type=int, default=2)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--lookahead", type=int, default=0,
                    help="codec frames after frame t that its input also sees (0: causal; a stream's latency grows "
                         "by L frames)")
    ap.add_argument("--additive", action="store_true",
                    help="an additive head beside the mask (output z * m + a; docs/masker.md); with --init-from a "
                         "mask-only donor it starts at zero, so step 0 scores the donor")
    ap.add_argument("--norm-weight", type=float, default=0.0,
                    help="weight of the per-frame norm term: mean |20 log10(|est_t| / |target_t|)| (dB), against "
                         "the shrinking a latent loss rewards (default 0: off)")
    ap.add_argument("--centred", action="store_true",
                    help="mask around the codec's latent of silence instead of around zero (exported as an additive "
                         "masker; docs/masker.md)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--lr-final", type=float, default=None,
                    help="decay the LR exponentially from --lr to this over --decay-steps (default: constant --lr). "
                         "A fine-tune at a constant LR wanders by ±0.5 dB between validations; decaying it settles "
                         "the weights so the last export is a fair pick")
    ap.add_argument("--decay-steps", type=int, default=10000, help="steps over which the LR reaches --lr-final")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--l1-weight", type=float, default=10.0)
    ap.add_argument("--prompt-dropout", type=float, default=0.25)
    ap.add_argument("--decoded-weight", type=float, default=0.0,
                    help="weight of the decoded-audio loss (--decoded-kind; through the frozen decoder; 0: latent "
                         "loss only)")
    ap.add_argument("--latent-weight", type=float, default=1.0,
                    help="weight of the latent loss (0 with --decoded-weight > 0: the decoded loss alone)")
    ap.add_argument("--decoded-kind", choices=("snr", "si-sdr", "sir", "sdr"), default="snr",
                    help="the decoded loss: SNR against the decoded target, its negative SI-SDR, or its negative "
                         "signal-to-interference or signal-to-distortion ratio per STFT bin (`spectral_bss`; all "
                         "clamped at 30 dB)")
    ap.add_argument("--continuous-target", action="store_true",
                    help="latent loss against each source's continuous (encoder) latent instead of its quantised one "
                         "(the latent the encoder's lookup maps to the source's own codes)")
    ap.add_argument("--oracle-target", action="store_true",
                    help="with --centred: train toward the mask in [0, 1] around silence's latent closest to the "
                         "source (each source's ratio to the mixture, clipped) instead of the source's own latent, "
                         "which no such mask can reach; session 24's latent study decodes that oracle to +2.8 dB "
                         "SI-SDRi on the validation items. Validation still scores against the sources")
    ap.add_argument("--select-by", choices=tuple(SELECT_COLUMNS), default="sisdri",
                    help="validation figure that picks the exported model (latent-snr when --no-decode-val)")
    ap.add_argument("--decoded-seconds", type=float, default=1.0,
                    help="length of the random crop the decoded loss decodes (the decoder dominates the step cost)")
    ap.add_argument("--val-items", type=int, default=32)
    ap.add_argument("--val-every-sec", type=float, default=300.0)
    ap.add_argument("--no-decode-val", action="store_true", help="skip the decoded SI-SDRi in validation")
    ap.add_argument("--replay", type=int, default=0,
                    help="extra optimizer steps per freshly encoded batch, drawn from a buffer of encoded items")
    ap.add_argument("--buffer-items", type=int, default=2048, help="size of the replay buffer (items)")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--max-hours", type=float, default=1e9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--export", type=Path, default=DEFAULT_EXPORT)
    ap.add_argument("--resume", action="store_true", help="continue from runs/<run>/latest.pt")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a new run from an exported masker's weights (fresh optimizer), e.g. to follow a "
                         "codec that was trained further: the latents move a little, the task does not. The donor may "
                         "have fewer --joint-layers/--film-layers than this run: the extra layers start as identities")
    ap.add_argument("--widen", action="store_true",
                    help="with --init-from: widen the donor to this run's --d-model (a whole multiple of the donor's; "
                         "--heads and --ffn the same multiple), keeping its function (masker.model.widen)")
    args = ap.parse_args(argv)
    if args.norm_weight < 0:
        raise SystemExit(f"--norm-weight {args.norm_weight}: pass 0 (off) or a positive weight")
    if args.norm_weight > 0 and args.latent_weight == 0:
        # The norm term is part of the latent loss and scaled by its weight: it would silently do nothing.
        raise SystemExit("--norm-weight is part of the latent loss, which --latent-weight 0 turns off")
    if args.oracle_target and not args.centred:
        raise SystemExit("--oracle-target needs --centred: the oracle mask is taken around silence's latent")
    if args.latent_weight < 0 or (args.latent_weight == 0 and args.decoded_weight <= 0):
        raise SystemExit("--latent-weight 0 needs --decoded-weight > 0 (otherwise nothing is trained)")
    if args.lookahead < 0:
        raise SystemExit(f"--lookahead {args.lookahead}: pass 0 (causal) or a positive number of frames")
    if args.init_from and args.resume:
        raise SystemExit("--init-from starts a new run; it cannot be combined with --resume")
    if args.widen and not args.init_from:
        raise SystemExit("--widen widens the --init-from donor; pass --init-from")
    if args.select_by in ("siri", "bss-sdri") and args.no_decode_val:
        raise SystemExit(f"--select-by {args.select_by} needs the decoded validation that --no-decode-val skips")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:            # torch allows it once per process: a second run in one process (tests) keeps it
        pass
    run_dir = HERE / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    latest_path, best_path = run_dir / "latest.pt", run_dir / "best.pt"
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    codec_path = write_random_codec(run_dir / "random-codec.safetensors", args.seed) if args.random_codec else args.codec
    if not Path(codec_path).is_file():
        raise SystemExit(f"codec not found: {codec_path} (train it with Training/codec/train_codec.py, or pass --codec)")
    codec, identity = load_codec(codec_path)
    args.sample_rate = codec.sample_rate
    latent_dim = int(codec.kwargs["latent_dim"])
    config = default_config(latent_dim, identity["name"], identity["sha256"], d_model=args.d_model, heads=args.heads,
                            ffn=args.ffn, joint_layers=args.joint_layers, film_layers=args.film_layers,
                            window=args.window, **({"additive": True} if args.additive else {}),
                            **({"lookahead": args.lookahead} if args.lookahead > 0 else {}))
    model = LatentMasker(config)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    state = {"step": 0, "audio_seconds": 0.0, "wall_s": 0.0, "best_metric": -float("inf"), "centred": args.centred,
             "select_by": selection_key(args)}
    if args.resume:
        if not latest_path.exists():
            raise SystemExit(f"--resume: {latest_path} not found")
        ckpt = torch.load(latest_path, map_location="cpu", weights_only=False)
        if ckpt["config"]["codec"] != config["codec"]:
            raise SystemExit(f"--resume: the run was trained on codec {ckpt['config']['codec']}, not {config['codec']}")
        if ckpt["config"].get("lookahead", 0) != config.get("lookahead", 0):
            raise SystemExit(f"--resume: the run looks {ckpt['config'].get('lookahead', 0)} frames ahead; pass "
                             f"--lookahead {ckpt['config'].get('lookahead', 0)}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state.update({"centred": False} | ckpt["state"])                 # runs before --centred were not centred
        # Checkpoints from before the rule was recorded selected by SI-SDRi, or by latent SNR without decoding.
        before = ckpt["state"].get("select_by", "val_latent_snr_mean" if args.no_decode_val else "val_sisdri_mean")
        before = SELECT_COLUMNS.get(before, before)                     # session-28 checkpoints kept the flag
        if before != selection_key(args):
            # The best so far was measured in another unit; the next validation starts the new rule's record.
            print(f"--select-by: the run selected by {before} until now, now by {selection_key(args)}; its next "
                  f"validation sets the new best", flush=True)
            state["best_metric"], state["select_by"] = -float("inf"), selection_key(args)
        set_rng_state(ckpt["rng"])
        print(f"resumed {latest_path} at step {state['step']}", flush=True)
    elif latest_path.exists():
        raise SystemExit(f"{latest_path} exists: pass --resume to continue or choose another --run")
    if args.init_from:
        if not args.init_from.is_file():
            raise SystemExit(f"--init-from: {args.init_from} not found")
        donor = load_exported(args.init_from)
        if args.centred and donor.config.get("additive"):
            # A centred run's export holds its centre in the additive head: take it back out, so the run continues
            # the centred parametrisation. With --additive whatever else the head holds stays in it (the function is
            # unchanged for any additive donor); without, the head must be exactly that fold.
            try:
                donor = unfold_centre(donor, silence_latent(codec), keep_additive=args.additive)
            except ValueError as e:
                raise SystemExit(f"--centred: {args.init_from} has an additive term beyond a centre folded in on this "
                                 f"codec ({e}); pass --additive too to keep that term")
            print(f"--centred: the centre is taken out of {args.init_from}'s additive head", flush=True)
        if args.widen:
            factor = args.d_model // donor.config["d_model"]
            want = {k: donor.config[k] * factor for k in ("d_model", "heads", "ffn")}
            if factor < 1 or {"d_model": args.d_model, "heads": args.heads, "ffn": args.ffn} != want:
                raise SystemExit(f"--widen: --d-model, --heads and --ffn must be one whole multiple of the donor's "
                                 f"({donor.config['d_model']}, {donor.config['heads']}, {donor.config['ffn']})")
            donor = widen(donor, factor, seed=args.seed)
            print(f"--widen: the donor widened {factor}x to D {args.d_model}, {args.heads} heads, FFN {args.ffn}",
                  flush=True)
        try:
            fresh = grow_from(model, donor)
        except ValueError as e:
            raise SystemExit(f"--init-from: {args.init_from} has another shape than this run: {e}")
        deeper = any(config[k] > donor.config[k] for k in ("joint_layers", "film_layers"))
        grown = (f"; grown to {config['joint_layers']} joint + {config['film_layers']} FiLM layers, the new ones "
                 f"starting as identities" if deeper else "")
        if any(name.startswith("add_head.") for name in fresh):
            grown += "; the additive head starts at zero"
        print(f"initialised from {args.init_from} (trained on codec {donor.config['codec']}){grown}", flush=True)

    if args.centred:
        model.set_centre(silence_latent(codec))
        print(f"centred: masks around the latent of silence (norm {float(model.centre.norm()):.2f})", flush=True)
    if state["centred"] != args.centred:
        raise SystemExit(f"--resume: the run was {'' if state['centred'] else 'not '}trained with --centred; "
                         f"pass the same setting")
    if not args.synthetic:
        args.index = args.index or wait_for_index(args.wait_data)
        if not Path(args.index).is_file():
            raise SystemExit(f"data index not found: {args.index} (build it with Training/data/collect.py, or pass --index)")
    train_sampler, val_sampler = make_sampler(args, "train"), make_sampler(args, "valid")
    val_items = [get_item(val_sampler, i) for i in range(args.val_items)]
    n_books = codec.quantizer.n_codebooks
    print(f"masker: {sum(p.numel() for p in model.parameters()):,} parameters, latent {latent_dim}, codec "
          f"{identity['name']} ({identity['sha256'][:16]}…), {n_books} codebooks; {len(val_items)} validation mixtures",
          flush=True)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save_latest():
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state, "rng": rng_state(),
                     "config": config, "args": {k: str(v) for k, v in vars(args).items()}}, latest_path)

    def run_validation(train_loss, books):
        metrics = validate(model, codec, val_items, decode=not args.no_decode_val)
        key = selection_key(args)
        improved = metrics[key] != "" and metrics[key] > state["best_metric"]
        if improved:
            state["best_metric"] = metrics[key]
            atomic_save({"model": model.state_dict(), "config": config, "step": state["step"]}, best_path)
            args.export.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.export.with_name(args.export.name + ".tmp")
            export(model, tmp, {"source": f"Training/masker/train_masker.py run {args.run}", "step": state["step"],
                                "val_latent_snr_db": metrics["val_latent_snr_mean"],
                                "val_si_sdri_db": metrics.get("val_sisdri_mean", ""),
                                "audio_hours": round(state["audio_seconds"] / 3600, 3)})
            tmp.replace(args.export)
        append_log(args.log, {"step": state["step"], "wall_s": round(state["wall_s"], 1),
                              "audio_hours": round(state["audio_seconds"] / 3600, 4),
                              "train_loss": round(train_loss, 3) if train_loss == train_loss else "",
                              "lr": f"{masker_lr(state['step'], args):.3g}", "codebooks": books,
                              "best": int(improved), **metrics})
        save_latest()
        print(f"[val] step {state['step']} latent SNR {metrics['val_latent_snr_mean']} dB, decoded SI-SDRi "
              f"{metrics.get('val_sisdri_mean', 'n/a')} dB, SIRi {metrics.get('val_siri_mean', 'n/a')} dB, BSS SDRi "
              f"{metrics.get('val_bss_sdri_mean', 'n/a')} dB "
              f"{'(best)' if improved else ''}", flush=True)

    if state["step"] == 0:
        run_validation(float("nan"), n_books)
    # Replay: encoding a batch through the frozen codec costs far more than a masker step (the masker is ~30 MMAC per
    # second of audio, the codec encoder ~100x that), so each freshly encoded batch is kept (continuous latents) in a
    # ring buffer and `--replay` further optimizer steps are drawn from it. Codebook count and prompt dropout are
    # chosen per optimizer step, so a replayed item is seen at other bitrates and prompt subsets.
    buffer: list = []
    state.setdefault("batches", state["step"])          # fresh batches consumed (data stream index); old runs: = step
    t_start = t_last = last_val = time.time()
    loss_acc, loss_n = 0.0, 0

    def train_on(entries, rng):
        """One optimizer step on encoded items [(z_mix (C, T), z_src (N, C, T), prompts)]."""
        books = n_books if rng.random() < 0.5 else rng.randint(1, n_books)
        dropout = rng.random() < args.prompt_dropout
        groups = {}
        for zm, zs, p in entries:
            if dropout:
                p, zs = prompt_dropout(p, zs, rng)
            groups.setdefault(len(p), []).append((zm, [canonical(x) for x in p], zs))
        for g in opt.param_groups:
            g["lr"] = masker_lr(state["step"], args)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for n, grp in groups.items():
            z_mix = quantize(codec, torch.stack([m for m, _, _ in grp]), books)[1]
            zs = torch.stack([s for _, _, s in grp])                            # (B, N, C, T)
            target_q = quantize(codec, zs.flatten(0, 1), books)[1].view(zs.shape)
            target = zs if args.continuous_target else target_q
            if args.oracle_target:
                target = oracle_masked(target, z_mix, model.centre)
            prompts = [p for _, p, _ in grp]
            est = model(z_mix, prompts)
            loss, perms = masker_loss(est, target, z_mix, prompts, args.l1_weight, args.norm_weight)
            loss = args.latent_weight * loss
            if args.decoded_weight > 0:
                frames = max(1, round(args.decoded_seconds * args.sample_rate / codec.hop_length))
                loss = loss + args.decoded_weight * decoded_loss(codec, est, target_q, z_mix, perms, books, frames, rng,
                                                                  kind=args.decoded_kind)
            (loss * len(grp) / len(entries)).backward()
            total += float(loss.detach()) * len(grp) / len(entries)
        return total, books

    while state["step"] < args.max_steps and not stop["flag"] and time.time() - t_start < args.max_hours * 3600:
        batch_index = state["batches"]
        items = [get_item(train_sampler, batch_index * args.batch + j) for j in range(args.batch)]
        fresh = []
        with torch.no_grad():
            for m, p, s in items:
                zz = encode_latent(codec, torch.cat([m[None], s]))               # mixture and its sources at once
                fresh.append((zz[0], zz[1:], list(p)))
        if args.replay > 0:
            buffer.extend(fresh)
            del buffer[: max(0, len(buffer) - args.buffer_items)]
        state["batches"] += 1
        plan = [fresh] + [None] * args.replay
        for entries in plan:
            if state["step"] >= args.max_steps or stop["flag"]:
                break
            rng = random.Random(args.seed * 1_000_003 + state["step"])         # per step: resume-safe
            if entries is None:
                entries = [buffer[rng.randrange(len(buffer))] for _ in range(args.batch)]
            total, books = train_on(entries, rng)
            if apply_step(model, opt, total, args.clip, state["step"]):
                loss_acc += total
                loss_n += 1
            t_last = advance(state, items if entries is fresh else [], args.sample_rate, t_last)   # audio counted once
            if state["step"] % 20 == 0:
                print(f"step {state['step']} loss {loss_acc / max(1, loss_n):.3f} "
                      f"({state['wall_s'] / state['step']:.2f} s/step, {state['batches']} batches encoded)", flush=True)
            if time.time() - last_val >= args.val_every_sec or state["step"] >= args.max_steps:
                run_validation(loss_acc / max(1, loss_n), books)
                loss_acc, loss_n = 0.0, 0
                last_val = t_last = time.time()
    save_latest()
    print(f"stopped at step {state['step']}; latest checkpoint {latest_path}", flush=True)


if __name__ == "__main__":
    main()
