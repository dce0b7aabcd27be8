"""Throughput / cost benchmark of candidate TUSS configs (single thread by default).

    python3 Training/tuss/bench.py [--names A-... B-...] [--seconds 4] [--batch 2] [--nsrc 3] [--steps 6] [--compile]
Prints parameters, forward GMAC per second of audio (flop counter, N=2 prompts), training throughput
(seconds of audio per wall-clock second, fwd+bwd+AdamW) and inference real-time factor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tuss.configs import CANDIDATES, make_config  # noqa: E402
from tuss.model import SeparationModel, count_parameters  # noqa: E402


def gmac_per_second(model, sr, seconds=4.0, nsrc=2):
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, int(sr * seconds))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x, ["speech", "sfxbg"][:nsrc] if nsrc <= 2 else ["speech", "sfxbg", "musicbg"])
    return fc.get_total_flops() / 2 / 1e9 / seconds


def train_throughput(model, sr, seconds, batch, nsrc, steps, compile_=False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fwd = torch.compile(model) if compile_ else model
    L = int(sr * seconds)
    x = torch.randn(batch, L)
    tgt = torch.randn(batch, nsrc, L)
    prompts = [["speech", "sfxbg", "musicbg", "drums"][:nsrc]] * batch
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        y = fwd(x, prompts)
        loss = (y - tgt).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    t = sorted(times[2:])[len(times[2:]) // 2]
    return batch * seconds / t, t


def infer_rtf(model, sr, seconds=10.0, nsrc=2):
    x = torch.randn(1, int(sr * seconds))
    with torch.no_grad():
        model(x, ["speech", "sfxbg"])
        t0 = time.perf_counter()
        model(x, ["speech", "sfxbg"][:nsrc])
        return (time.perf_counter() - t0) / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", nargs="*")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--nsrc", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, kw in CANDIDATES.items():
        if args.names and not any(name.startswith(n) for n in args.names):
            continue
        torch.manual_seed(0)
        cfg = make_config(**kw)
        model = SeparationModel(cfg)
        sr = cfg["model_conf"]["sample_rate"]
        params = count_parameters(model)
        gm = gmac_per_second(model, sr)
        rtf = infer_rtf(model, sr)
        thr, t = train_throughput(model, sr, args.seconds, args.batch, args.nsrc, args.steps, args.compile)
        print(f"{name}: params {params:,} ({params * 4 / 1e6:.2f} MB), {gm:.3f} GMAC/s (N=2, 4 s), "
              f"infer RTF {rtf:.3f} (1 thread, N=2, 10 s), train {thr:.1f} s audio/s "
              f"({t:.2f} s/step, batch {args.batch}x{args.seconds:g}s, N={args.nsrc}"
              f"{', compiled' if args.compile else ''})", flush=True)


if __name__ == "__main__":
    main()
