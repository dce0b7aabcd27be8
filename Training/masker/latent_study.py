"""Reproduces the session-23 latent figures (docs/masker.md, docs/results.md): how additive the codec's latent is, and
how latent errors of each kind decode, on the first 32 `valid` mixtures (3 s, all codebooks, outputs back to codes
with the engine's matcher, SI-SDRi over the mixture).

    python3 Training/masker/latent_study.py [--masker Models/codec-masker/model.safetensors] [--items 32] [--split train]

Rows: the latent SNR of the mixture's latent against the sum of its sources' latents (raw, and with the latent of
silence taken off every term); decoded SI-SDRi along the straight path from each source's latent to the mixture's
(z_s + a (z_mix - z_s)), for Gaussian errors at a given latent SNR, for the mask in [0, 1] around silence's
latent closest to each source's latent (session 24: a reference point for a masker on this codec, not a bound), for the masker's outputs as they are and rescaled
(per item and per frame) to the norm of their target, and (session 25) for parts of the masker's error added to the
target alone: its slow and fast parts, white noise of its energy, its frames shuffled, half of it; (session 26) for the
masker's output restricted to the box between silence's latent and the mixture's (its effective mask clipped to
[0, 1]) or to one gain per frame along that path, and for the best such gain per frame; (session 27) BSS Eval SIR
gain over the mixture (how much of the other sources an output no longer holds) for the codec-oracle, the oracle mask
and the masker's outputs. ~12 min on one core.
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

from masker.codec_tools import encode_latent, load_codec, quantize, requantize, silence_latent  # noqa: E402
from eval.bss_eval import BSSEval  # noqa: E402
from masker.train_masker import oracle_masked  # noqa: E402
from masker.model import canonical, load_exported  # noqa: E402
from tuss.train import get_item, make_sampler, pit_snr_loss, si_sdr, wait_for_index  # noqa: E402

REPO = TRAINING.parent


def smooth_in_time(x, frames: int = 5):
    """x (N, C, T) averaged over `frames` frames around each frame (edges replicated): the slow part of x."""
    kernel = torch.full((x.shape[1], 1, frames), 1.0 / frames)
    padded = torch.nn.functional.pad(x, (frames // 2, frames // 2), mode="replicate")
    return torch.nn.functional.conv1d(padded, kernel, groups=x.shape[1])


def snr_db(target, estimate):
    return float(10 * torch.log10(target.pow(2).sum() / ((estimate - target).pow(2).sum() + 1e-12)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", type=Path, default=REPO / "Codecs" / "dac-small-16k" / "codec.safetensors")
    ap.add_argument("--masker", type=Path, default=REPO / "Models" / "codec-masker" / "model.safetensors",
                    help="the masker whose outputs are studied, or 'none' (e.g. for a codec no masker was trained on)")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--split", choices=("valid", "train"), default="valid",
                    help="train: the same study on new mixtures of training clips (items 100 000 on of the training "
                         "stream, which no run has reached), to see whether the masker does better on the clips it "
                         "was trained on than on held-out ones")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = argparse.Namespace(synthetic=False, index=wait_for_index(10), sample_rate=16000, seconds=3.0, seed=0)
    val = make_sampler(data, args.split)
    first = 100_000 if args.split == "train" else 0
    codec, _ = load_codec(args.codec)
    masker = None if str(args.masker) == "none" else load_exported(args.masker)
    books = codec.quantizer.n_codebooks
    rows: dict[str, list[float]] = {}

    def add(key, values):
        rows.setdefault(key, []).extend(float(v) for v in np.atleast_1d(values))

    with torch.no_grad():
        centre = silence_latent(codec)[:, None]
        add("latent of silence: norm per frame", float(centre.norm()))
        for i in range(args.items):
            mix, prompts, sources = get_item(val, first + i)
            length = mix.shape[-1]
            z = encode_latent(codec, torch.cat([mix[None], sources]))
            # Sources that are silent in this crop make both sides equal once the centre is removed: skip those.
            if not torch.equal(z[0], z[1:].sum(0)):
                add("additivity: latent SNR of z_mix against the sum of source latents (dB)", snr_db(z[0], z[1:].sum(0)))
            if not torch.equal(z[0] - centre, (z[1:] - centre).sum(0)):
                add("additivity, silence's latent removed from every term (dB)",
                    snr_db(z[0] - centre, (z[1:] - centre).sum(0)))
            z_mix = quantize(codec, z[:1], books)[1]
            z_src = quantize(codec, z[1:], books)[1]
            mixture_score = si_sdr(mix[None].expand_as(sources), sources)
            add("mixture's SI-SDR against each source (dB, for scale)", mixture_score.numpy())

            def decoded(latents):
                audio = codec.decode(requantize(codec, latents, books)[1])[:, 0, :length]
                return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))

            # One scorer per item serves every SIR row: its Gram factorisation depends only on the sources.
            scorer = BSSEval(sources.numpy())
            mix_scores = scorer.criteria(mix.numpy())

            def decoded_gain(latents, refs=sources, order=None, sir=False):
                """Decoded SI-SDRi of each output (output i against refs[i]); with `sir`, also the list of BSS Eval
                SIR gains over the mixture (output i against source order[i], all sources interfering), from the
                same decode."""
                audio = decoded(latents)
                gains = (si_sdr(audio, refs) - si_sdr(mix[None].expand_as(refs), refs)).numpy()
                if not sir:
                    return gains
                sir_gains = []
                for i, row in enumerate(audio):
                    j = i if order is None else int(order[i])
                    out, base = scorer.criteria(row.numpy())[j], mix_scores[j]
                    if out and base and out[1] is not None and base[1] is not None:
                        sir_gains.append(out[1] - base[1])
                return gains, sir_gains

            own_codes, own_codes_sir = decoded_gain(z_src, sir=True)
            add("each source's own codes (codec-oracle): SIRi (dB)", own_codes_sir)

            for a in (0.0, 0.25, 0.5, 0.75, 1.0):
                est = z_src + a * (z_mix - z_src)
                add(f"path a={a}: SI-SDRi (dB)", own_codes if a == 0.0 else decoded_gain(est))
                if a > 0:
                    add(f"path a={a}: latent SNR (dB)", [snr_db(t, e) for t, e in zip(z_src, est)])
            for snr in (0, 3, 6, 10):
                noise = torch.randn_like(z_src)
                noise *= (z_src.pow(2).sum((1, 2), keepdim=True) / noise.pow(2).sum((1, 2), keepdim=True)).sqrt()
                add(f"Gaussian error at {snr} dB latent SNR: SI-SDRi (dB)", decoded_gain(z_src + noise * 10 ** (-snr / 20)))
            # A reference for a mask on this codec: each source's ratio to the mixture around silence's latent,
            # clipped to [0, 1] per channel and frame (a mask that could also exceed 1 or go negative would be exact).
            oracle = oracle_masked(z_src[None], z_mix, centre[:, 0])[0]
            add("oracle mask around silence's latent, in [0, 1]: latent SNR (dB)", [snr_db(t, e) for t, e in zip(z_src, oracle)])
            oracle_gain, oracle_sir = decoded_gain(oracle, sir=True)
            add("oracle mask around silence's latent, in [0, 1]: SI-SDRi (dB)", oracle_gain)
            add("oracle mask around silence's latent, in [0, 1]: SIRi (dB)", oracle_sir)
            if masker is None:
                continue
            names = [canonical(p) for p in prompts]
            est = masker(z_mix, [names])
            _, perms = pit_snr_loss(est.flatten(2), z_src[None].flatten(2), z_mix.flatten(1), [names])
            order = torch.tensor(perms[0])
            est, target, refs = est[0], z_src[order], sources[order]
            add("masker: latent SNR (dB)", [snr_db(t, e) for t, e in zip(target, est)])
            add("masker: output norm / target norm", (est.norm(dim=(1, 2)) / target.norm(dim=(1, 2))).numpy())
            masker_gain, masker_sir = decoded_gain(est, refs, order, sir=True)
            add("masker: SI-SDRi (dB)", masker_gain)
            add("masker: SIRi (dB)", masker_sir)
            add("masker rescaled per item to the target's norm: SI-SDRi (dB)",
                decoded_gain(est * target.norm(dim=(1, 2), keepdim=True) / est.norm(dim=(1, 2), keepdim=True), refs))
            add("masker rescaled per frame to the target's norm: SI-SDRi (dB)",
                decoded_gain(est * target.norm(dim=1, keepdim=True) / (est.norm(dim=1, keepdim=True) + 1e-6), refs))
            # Session 25: which part of the masker's error costs the most once decoded. Each row adds one part (or a
            # stand-in of the same energy) to the target's latent.
            error = est - target
            slow = smooth_in_time(error)
            add("masker error, slow part only (5-frame mean): SI-SDRi (dB)", decoded_gain(target + slow, refs))
            add("masker error, fast part only (the rest): SI-SDRi (dB)", decoded_gain(target + error - slow, refs))
            noise = torch.randn_like(error)
            noise *= (error.pow(2).sum((1, 2), keepdim=True) / noise.pow(2).sum((1, 2), keepdim=True)).sqrt()
            add("white Gaussian noise of the masker error's energy: SI-SDRi (dB)", decoded_gain(target + noise, refs))
            add("masker error with its frames shuffled: SI-SDRi (dB)",
                decoded_gain(target + error[..., torch.randperm(error.shape[-1])], refs))
            add("half the masker error: SI-SDRi (dB)", decoded_gain(target + error / 2, refs))
            # Session 26: does restricting the masker's output to leakage-like errors help once decoded? Its
            # effective mask around silence's latent, clipped to [0, 1] per channel and frame (the output stays in the
            # box between silence and the mixture), and its output projected onto the straight path c + a_t (z - c)
            # with one gain a_t in [0, 1] per frame; beside them the best such per-frame gain (an oracle).
            offset = z_mix - centre                                                # (1, C, T)
            safe = torch.where(offset.abs() < 1e-6, torch.full_like(offset, 1e-6), offset)
            boxed = centre + ((est - centre) / safe).clamp(0, 1) * offset
            add("masker, effective mask clipped to [0, 1]: latent SNR (dB)", [snr_db(t, e) for t, e in zip(target, boxed)])
            boxed_gain, boxed_sir = decoded_gain(boxed, refs, order, sir=True)
            add("masker, effective mask clipped to [0, 1]: SI-SDRi (dB)", boxed_gain)
            add("masker, effective mask clipped to [0, 1]: SIRi (dB)", boxed_sir)

            def frame_gain(latents):
                a = ((latents - centre) * offset).sum(1, keepdim=True) / offset.pow(2).sum(1, keepdim=True).clamp_min(1e-9)
                return centre + a.clamp(0, 1) * offset

            gained = frame_gain(est)
            add("masker projected to one gain per frame: latent SNR (dB)", [snr_db(t, e) for t, e in zip(target, gained)])
            add("masker projected to one gain per frame: SI-SDRi (dB)", decoded_gain(gained, refs))
            best = frame_gain(target)
            add("oracle gain per frame in [0, 1]: latent SNR (dB)", [snr_db(t, e) for t, e in zip(target, best)])
            add("oracle gain per frame in [0, 1]: SI-SDRi (dB)", decoded_gain(best, refs))
    for key, values in rows.items():
        print(f"{key:75s} {np.mean(values):8.2f}   (n = {len(values)})")


if __name__ == "__main__":
    main()
