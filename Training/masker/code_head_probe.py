"""Probe: does predicting each prompt's codes directly (a classifier per codebook) beat the masker's continuous output?

    python3 Training/masker/code_head_probe.py --masker Models/codec-masker/model.safetensors --minutes 60 \
        --log /tmp/code-head.csv

Why: the masker's continuous output is trained with a latent loss, which rewards the conditional mean. Where it is
unsure which source a part of the mixture belongs to, the mean blends the candidates, and the nearest codes to a
blend hold a bit of each: interference (BSS Eval SIR shows the shipped masker removes only 2-6 dB of it, where each
source's own codes would remove 25-27; docs/results.md, session 27). A classifier picks the most likely code instead
of the average. This script adds a linear `code_head` (D -> books x codebook size) to a trained masker's frame
features and trains it with cross-entropy against each source's own codes (what `encode` gives the source alone);
unless --trunk-lr 0 it trains the masker too, with the recipe's latent loss kept (so the continuous output stays
usable). It validates on the recipe's 32
`valid` mixtures in several decode modes:

    continuous   the masker's output back to codes (`requantize`), as the engine runs it today
    argmax       every codebook's code from the classifier
    hybrid-k     the first k codebooks from the classifier, the rest matched to what the continuous output leaves

It is a probe: the engine has no code head. Decoded SI-SDRi per mode goes to --log (CSV) at every validation.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parent
REPO = TRAINING.parent
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from masker.codec_tools import dequantize, encode_latent, latent_code_tables, load_codec, quantize  # noqa: E402
from masker.model import canonical, load_exported  # noqa: E402
from masker.train_masker import masker_loss  # noqa: E402
from tuss.train import append_csv, get_item, make_sampler, pit_snr_loss, prompt_dropout, si_sdr  # noqa: E402


class CodeHead(nn.Module):
    """Logits (B, N, T, books, size) for every codebook from the masker's features (B * N, T, D)."""

    def __init__(self, dim: int, books: int, size: int):
        super().__init__()
        self.books, self.size = books, size
        self.linear = nn.Linear(dim, books * size)
        nn.init.normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h, b: int, n: int):
        t = h.shape[1]
        return self.linear(h).view(b, n, t, self.books, self.size)


def match_rest(tables, residual, start: int):
    """Codes for codebooks start.. by nearest latent contribution to `residual` (C, T), as `requantize` does."""
    codes = []
    r = residual.clone()
    for table in tables[start:]:
        rt = r.t()                                                             # (T, C)
        idx = (table.pow(2).sum(-1) - 2 * rt @ table.t()).argmin(-1)
        r = r - table[idx].t()
        codes.append(idx)
    return codes


@torch.no_grad()
def validate(masker, head, codec, items, modes):
    masker.eval()
    books = codec.quantizer.n_codebooks
    tables = latent_code_tables(codec, books)
    gains = {m: [] for m in modes}
    correct = torch.zeros(head.books)
    total = 0
    for mix, prompts, sources in items:
        names = [canonical(p) for p in prompts]
        z_mix = quantize(codec, encode_latent(codec, mix[None]), books)[1]
        src_codes, target = quantize(codec, encode_latent(codec, sources), books)
        h = masker.features(z_mix, [names])
        mask, add = masker.heads_from(h, 1, len(names))
        est = z_mix[:, None] * mask + (add if add is not None else 0)          # (1, N, C, T), as masker(z_mix, …)
        _, perms = pit_snr_loss(est.flatten(2), target[None].flatten(2), z_mix.flatten(1), [names])
        order = torch.tensor(perms[0])
        logits = head(h, 1, len(names))[0]                                      # (N, T, books, S)
        picked = logits.argmax(-1).permute(0, 2, 1)                            # (N, books, T)
        correct += (picked == src_codes[order][:, :head.books]).float().mean(-1).sum(0)
        total += len(names)
        refs = sources[order]
        length = mix.shape[-1]
        for mode in modes:
            rows = []
            for i in range(len(names)):
                if mode == "argmax":
                    codes = picked[i]
                else:
                    k = 0 if mode == "continuous" else int(mode.split("-")[1])
                    residual = est[0, i] - sum((tables[j][picked[i, j]].t() for j in range(k)), torch.zeros_like(est[0, i]))
                    codes = torch.stack([picked[i, j] for j in range(k)] + match_rest(tables, residual, k))
                rows.append(codes)
            audio = codec.decode(dequantize(codec, torch.stack(rows)))[:, 0, :length]
            audio = F.pad(audio, (0, length - audio.shape[-1]))
            gain = si_sdr(audio, refs) - si_sdr(mix[None].expand_as(refs), refs)
            gains[mode] += [float(g) for g in gain]
    masker.train()
    out = {f"sisdri_{m}": round(float(np.mean(v)), 3) for m, v in gains.items()}
    out.update({f"top1_book{j + 1}": round(float(correct[j] / total), 3) for j in range(head.books)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--masker", type=Path, default=REPO / "Models" / "codec-masker" / "model.safetensors")
    ap.add_argument("--codec", type=Path, default=REPO / "Codecs" / "dac-small-16k" / "codec.safetensors")
    ap.add_argument("--index", default=str(TRAINING / "data" / "cache" / "index.json"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--lr", type=float, default=3e-4, help="the classifier's LR (the trunk's is --trunk-lr)")
    ap.add_argument("--trunk-lr", type=float, default=1e-4, help="0 freezes the masker: only the classifier learns")
    ap.add_argument("--warmup", type=int, default=50, help="steps of linear LR warm-up (a fresh optimizer)")
    ap.add_argument("--ce-weight", type=float, default=1.0)
    ap.add_argument("--books", type=int, default=4,
                    help="codebooks the classifier predicts (the first K; the head's cost grows with K)")
    ap.add_argument("--latent-weight", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--replay", type=int, default=6)
    ap.add_argument("--val-items", type=int, default=32)
    ap.add_argument("--val-every-sec", type=float, default=900.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    codec, _ = load_codec(args.codec)
    args.sample_rate, args.synthetic = codec.sample_rate, False
    masker = load_exported(args.masker)
    masker.train()
    books, size = codec.quantizer.n_codebooks, codec.quantizer.quantizers[0].codebook.weight.shape[0]
    if not 1 <= args.books <= books:
        raise SystemExit(f"--books {args.books}: pass 1 to {books}")
    head = CodeHead(masker.config["d_model"], args.books, size)
    if args.trunk_lr == 0:
        masker.requires_grad_(False)
    param_groups = [{"params": head.parameters(), "lr": args.lr, "base": args.lr}]
    if args.trunk_lr > 0:
        param_groups.append({"params": masker.parameters(), "lr": args.trunk_lr, "base": args.trunk_lr})
    opt = torch.optim.AdamW(param_groups, weight_decay=1e-2)
    train_sampler, val_sampler = make_sampler(args, "train"), make_sampler(args, "valid")
    val_items = [get_item(val_sampler, i) for i in range(args.val_items)]
    modes = ["continuous"] + [f"hybrid-{k}" for k in sorted({1, 2, args.books}) if k <= args.books]
    modes += ["argmax"] if args.books == books else []
    fields = ["step", "wall_s", "ce", "latent_loss"] + [f"sisdri_{m}" for m in modes] + [
        f"top1_book{j + 1}" for j in range(args.books)]
    print(f"code head: {sum(p.numel() for p in head.parameters()):,} parameters ({args.books} codebooks x {size})",
          flush=True)

    def log(step, wall, ce, lat):
        row = {"step": step, "wall_s": round(wall, 1), "ce": round(ce, 4), "latent_loss": round(lat, 3)}
        row |= validate(masker, head, codec, val_items, modes)
        append_csv(args.log, fields, row)
        print(row, flush=True)

    t0 = last = time.time()
    step, batch_index = 0, 0
    buffer: list = []
    ce_acc = lat_acc = 0.0
    n_acc = 0
    log(0, 0.0, float("nan"), float("nan"))
    while time.time() - t0 < args.minutes * 60:
        items = [get_item(train_sampler, batch_index * args.batch + j) for j in range(args.batch)]
        batch_index += 1
        with torch.no_grad():
            for m, p, s in items:
                zz = encode_latent(codec, torch.cat([m[None], s]))
                buffer.append((zz[0], zz[1:], list(p)))
        del buffer[: max(0, len(buffer) - 2048)]
        for r in range(1 + args.replay):
            rng = random.Random(args.seed * 1_000_003 + step)
            entries = buffer[-args.batch:] if r == 0 else [buffer[rng.randrange(len(buffer))] for _ in range(args.batch)]
            by_count = {}
            for zm, zs, p in entries:
                if rng.random() < 0.25:
                    p, zs = prompt_dropout(p, zs, rng)
                by_count.setdefault(len(p), []).append((zm, [canonical(x) for x in p], zs))
            opt.zero_grad(set_to_none=True)
            for g in opt.param_groups:
                g["lr"] = g["base"] * min(1.0, (step + 1) / max(1, args.warmup))
            for n, grp in by_count.items():
                z_mix = quantize(codec, torch.stack([g[0] for g in grp]), books)[1]
                zs = torch.stack([g[2] for g in grp])
                codes, target = quantize(codec, zs.flatten(0, 1), books)
                codes, target = codes.view(len(grp), n, books, -1), target.view(zs.shape)
                prompts = [g[1] for g in grp]
                h = masker.features(z_mix, prompts)
                mask, add = masker.heads_from(h, len(grp), n)
                est = z_mix[:, None] * mask + (add if add is not None else 0)
                lat, perms = masker_loss(est, target, z_mix, prompts, 10.0)
                matched = torch.stack([codes[i, perms[i]] for i in range(len(grp))])[:, :, :args.books]
                logits = head(h, len(grp), n)                                                # (B, N, T, books, S)
                ce = F.cross_entropy(logits.reshape(-1, size), matched.permute(0, 1, 3, 2).reshape(-1))
                loss = (args.latent_weight * lat + args.ce_weight * ce) * len(grp) / len(entries)
                loss.backward()
                ce_acc += float(ce.detach()) * len(grp) / len(entries)
                lat_acc += float(lat.detach()) * len(grp) / len(entries)
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 5.0)
            opt.step()
            step += 1
            n_acc += 1
            if step % 50 == 0:
                print(f"step {step} ce {ce_acc / n_acc:.3f} latent {lat_acc / n_acc:.3f} "
                      f"({(time.time() - t0) / step:.2f} s/step)", flush=True)
        if time.time() - last >= args.val_every_sec:
            log(step, time.time() - t0, ce_acc / max(1, n_acc), lat_acc / max(1, n_acc))
            ce_acc = lat_acc = 0.0
            n_acc = 0
            last = time.time()
    log(step, time.time() - t0, ce_acc / max(1, n_acc), lat_acc / max(1, n_acc))


if __name__ == "__main__":
    main()
