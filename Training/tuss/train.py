"""Train a compact TUSS model on CPU (seeded, resumable).

    # smoke test (a few steps, tiny validation, writes to a scratch run dir)
    python3 Training/tuss/train.py --run small-smoke --max-steps 6 --val-items 4 --val-every-sec 0 \
        --log /tmp/smoke-log.csv --export /tmp/smoke.safetensors
    # long run (1 thread, low priority, survives the shell)
    setsid nohup nice -n 5 python3 Training/tuss/train.py --run small > Training/tuss/runs/small/stdout.log 2>&1 &
    # resume the same run later (latest.pt: model, optimizer, step, RNG, best metric)
    setsid nohup nice -n 5 python3 Training/tuss/train.py --run small --resume >> Training/tuss/runs/small/stdout.log 2>&1 &

Data: ``data.mixtures.MixtureSampler(index_path, split, sample_rate, seconds, seed).sample(i)`` ->
(mixture [L], prompts [N] (speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix), sources [N, L]).
The index path is read from Training/data/READY (waits for it) unless --index is given.
Items i = step * batch + j are drawn deterministically, so a resumed run continues the same stream.

Loss: snr_with_zero_refs (snr_max 30 dB, eps 1e-7, all-zero references use the mixture power and weight 0.1),
permutation-invariant within each repeated prompt category and averaged over categories (paper II-B).
Optimiser: AdamW (lr 1e-3, wd 1e-2), linear warm-up, grad-norm clip 5, LR halved after --plateau validations
without improvement. Prompt dropout in 25 % of the steps (paper section II-C).
Validation every --val-every-sec seconds on a fixed set of valid-split mixtures: SI-SDR improvement per prompt.
The best model is exported to Models/tuss-small/model.safetensors each time validation improves.
"""

from __future__ import annotations

import argparse
import csv
import itertools
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

HERE = Path(__file__).resolve().parent
TRAINING = HERE.parent
REPO = TRAINING.parent
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from tuss.export import export_model  # noqa: E402
from tuss.model import (  # noqa: E402
    OFFICIAL_PROMPTS, SeparationModel, canonical_prompt, count_parameters, grow_from, load_exported,
)

DEFAULT_CONFIG = REPO / "Models" / "tuss-small" / "config.json"
DEFAULT_LOG = REPO / "Models" / "tuss-small" / "training-log.csv"
DEFAULT_EXPORT = REPO / "Models" / "tuss-small" / "model.safetensors"
DEFAULT_FIXTURE = REPO / "Tests" / "Fixtures" / "tuss-small"
READY = TRAINING / "data" / "READY"


# ---------------------------------------------------------------------------------------------------------------------
# Loss and metrics
# ---------------------------------------------------------------------------------------------------------------------


def snr_with_zero_refs(est, ref, mix, snr_max=30.0, eps=1e-7, zero_ref_loss_weight=0.1):
    """est, ref (B, N, L); mix (B, L). Returns (mean loss, per-source loss (B, N), active mask (B, N)).

    Active references: 10 log10(||est - ref||^2 + tau + eps) - 10 log10(||ref||^2 + eps), tau = 10^(-snr_max/10)
    ||ref||^2. All-zero references: the reference power is replaced by the mixture power and the loss is weighted
    by zero_ref_loss_weight. Fixed assignment (output n <-> reference n); see pit_snr_loss for repeated prompts.
    """
    ref_pow = ref.pow(2).sum(-1)
    active = ref_pow > 0
    mix_pow = mix.pow(2).sum(-1, keepdim=True).expand_as(ref_pow)
    target_pow = torch.where(active, ref_pow, mix_pow)
    tau = 10.0 ** (-snr_max / 10.0) * target_pow
    err = (est - ref).pow(2).sum(-1)
    loss = 10 * torch.log10(err + tau + eps) - 10 * torch.log10(target_pow + eps)
    weight = torch.where(active, torch.ones_like(loss), torch.full_like(loss, zero_ref_loss_weight))
    return (loss * weight).mean(), loss.detach(), active


def category_groups(prompts):
    groups = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    return list(groups.values())


def pit_snr_loss(est, ref, mix, prompts, snr_max=30.0, eps=1e-7, zero_ref_loss_weight=0.1):
    """Paper II-B: outputs follow the prompt order, but sources of a repeated prompt (e.g. speech, speech) have no
    order, so the loss is permutation-invariant within each category, computed per category and averaged over the
    categories. Per-pair loss = snr_with_zero_refs. est, ref (B, N, L); mix (B, L); prompts: B lists of N names.
    Returns (mean loss over the batch, the best permutation per item as a list of index lists).
    """
    ref_pow = ref.pow(2).sum(-1)  # (B, N)
    active = ref_pow > 0
    mix_pow = mix.pow(2).sum(-1, keepdim=True).expand_as(ref_pow)
    target_pow = torch.where(active, ref_pow, mix_pow)
    tau = 10.0 ** (-snr_max / 10.0) * target_pow
    err = (est[:, :, None, :] - ref[:, None, :, :]).pow(2).sum(-1)  # (B, N_est, N_ref)
    pair = 10 * torch.log10(err + tau[:, None, :] + eps) - 10 * torch.log10(target_pow[:, None, :] + eps)
    weight = torch.where(active, torch.ones_like(ref_pow), torch.full_like(ref_pow, zero_ref_loss_weight))
    pair = pair * weight[:, None, :]
    total = est.new_zeros(())
    perms = []
    for b, plist in enumerate(prompts):
        item_losses = []
        perm = list(range(len(plist)))
        for grp in category_groups(plist):
            if len(grp) == 1:
                item_losses.append(pair[b, grp[0], grp[0]])
                continue
            idx = torch.tensor(grp)
            sub = pair[b][idx][:, idx]  # (g, g): est grp[i] vs ref grp[j]
            cands = list(itertools.permutations(range(len(grp))))
            scores = torch.stack([sum(sub[i, pj] for i, pj in enumerate(pm)) for pm in cands])
            best = int(scores.detach().argmin())
            item_losses.append(scores[best] / len(grp))
            for i, pj in enumerate(cands[best]):
                perm[grp[i]] = grp[pj]
        total = total + torch.stack(item_losses).mean()
        perms.append(perm)
    return total / len(prompts), perms


def si_sdr(est, ref, eps=1e-8):
    """Scale-invariant SDR in dB over the last axis (zero-mean)."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def wait_for_index(timeout_s: float) -> str:
    t0 = time.time()
    announced = False
    while True:
        if READY.is_file():
            text = READY.read_text().strip()
            if text:
                path = Path(text.splitlines()[0].strip())
                if not path.is_absolute():
                    for base in (TRAINING / "data", TRAINING, REPO):
                        if (base / path).exists():
                            path = base / path
                            break
                return str(path)
        if time.time() - t0 > timeout_s:
            raise SystemExit(f"data not ready: {READY} missing after {timeout_s:.0f} s")
        if not announced:
            print(f"waiting for {READY} ...", flush=True)
            announced = True
        time.sleep(20)


class SyntheticSampler:
    """Stand-in for data.mixtures.MixtureSampler (--synthetic): tones/noise per prompt. For smoke tests only."""

    def __init__(self, split, sample_rate=16000, seconds=4.0, seed=0):
        self.sr = sample_rate
        self.length = int(round(seconds * sample_rate))
        self.seed = seed + (0 if split == "train" else 10_000_000)

    def sample(self, i):
        rng = np.random.default_rng(self.seed + i)
        n = int(rng.integers(1, 4))
        names = ["speech", "sfx", "sfx-mix", "drums", "bass", "vocals", "other", "music-mix"]
        prompts = list(rng.choice(names, size=n, replace=False))
        t = np.arange(self.length) / self.sr
        sources = []
        for p in prompts:
            if p in ("speech", "vocals", "bass", "other"):
                f0 = {"speech": 150, "vocals": 300, "bass": 60, "other": 500}[p] * rng.uniform(0.8, 1.25)
                s = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
                s *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
            else:
                s = rng.standard_normal(self.length)
                if p == "drums":
                    s *= (np.mod(t, 0.5) < 0.05)
            s = s / (np.sqrt(np.mean(s ** 2)) + 1e-8) * 0.1 * 10 ** (rng.uniform(-5, 5) / 20)
            sources.append(s.astype(np.float32))
        sources = np.stack(sources)
        return sources.sum(0), prompts, sources


def make_sampler(args, split):
    if args.synthetic:
        return SyntheticSampler(split, args.sample_rate, args.seconds, args.seed)
    from data.mixtures import MixtureSampler, parse_template_weights

    # Only training draws change: validation keeps the default mixture distribution, so its scores stay comparable
    # with every earlier run's log. The masker recipe shares this function and has no template options.
    extra = {}
    if split == "train":
        if getattr(args, "template_prob", None) is not None:
            extra["template_prob"] = args.template_prob
        if getattr(args, "template_weights", ""):
            extra["template_weights"] = parse_template_weights(args.template_weights)
    return MixtureSampler(args.index, split, sample_rate=args.sample_rate, seconds=args.seconds, seed=args.seed,
                          **extra)


def get_item(sampler, i):
    mix, prompts, sources = sampler.sample(i)
    mix = torch.as_tensor(np.asarray(mix, dtype=np.float32))
    sources = torch.as_tensor(np.asarray(sources, dtype=np.float32))
    prompts = [canonical_prompt(str(p)) for p in prompts]
    return mix, prompts, sources


def prompt_dropout(prompts, sources, rng: random.Random):
    """Paper II-C: remove M in [1, N-1] prompts (never ones whose category repeats); their sources stay in the mix."""
    n = len(prompts)
    removable = [i for i, p in enumerate(prompts) if prompts.count(p) == 1]
    if n < 2 or not removable:
        return prompts, sources
    m = rng.randint(1, min(n - 1, len(removable)))
    drop = set(rng.sample(removable, m))
    keep = [i for i in range(n) if i not in drop]
    return [prompts[i] for i in keep], sources[keep]


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints and logging
# ---------------------------------------------------------------------------------------------------------------------


def atomic_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


LOG_FIELDS = ["step", "wall_s", "audio_hours", "train_loss", "lr", "val_sisdri_mean", "val_loss"] + [
    f"val_sisdri_{p}" for p in OFFICIAL_PROMPTS
] + ["val_items", "best"]


def append_csv(path: Path, fields: list, row: dict):
    """Appends `row` (missing fields empty, extra keys ignored) to the CSV log at `path` with header `fields`.

    A log begun by an older recipe with other columns is first rewritten under `fields` (old rows keep their values,
    new columns stay empty), so a resumed run's log stays one rectangular CSV.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header, rows = reader.fieldnames or [], list(reader)
        if header != list(fields):
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                for r in rows:
                    w.writerow({k: r.get(k, "") for k in fields})
            tmp.replace(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in fields})


def append_log(path: Path, row: dict):
    append_csv(path, LOG_FIELDS, row)


# ---------------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(model, val_items):
    model.eval()
    per_prompt = {p: [] for p in OFFICIAL_PROMPTS}
    losses = []
    for mix, prompts, sources in val_items:
        est = model(mix[None], [prompts])[0]  # (N, L)
        loss, perms = pit_snr_loss(est[None], sources[None], mix[None], [prompts])
        losses.append(float(loss))
        est = est[torch.tensor(perms[0]).argsort()]  # est reordered so that est[j] pairs with sources[j]
        sdr_est = si_sdr(est, sources)
        sdr_mix = si_sdr(mix[None].expand_as(sources), sources)
        active = sources.pow(2).sum(-1) > 0
        for n, p in enumerate(prompts):
            if bool(active[n]):
                per_prompt[p].append(float(sdr_est[n] - sdr_mix[n]))
    model.train()
    out = {f"val_sisdri_{p}": (round(float(np.mean(v)), 3) if v else "") for p, v in per_prompt.items()}
    allv = [x for v in per_prompt.values() for x in v]
    out["val_sisdri_mean"] = round(float(np.mean(allv)), 3) if allv else float("nan")
    out["val_loss"] = round(float(np.mean(losses)), 3)
    out["val_items"] = len(val_items)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Main loop
# ---------------------------------------------------------------------------------------------------------------------


def refresh_fixture(model_path: Path, fixture_dir: Path):
    """Keep Tests/Fixtures/tuss-small in step with the exported model (same file, same sha256)."""
    from tuss.make_fixture import DEFAULT_PROMPTS, make_case, write_readme
    from tuss.model import load_exported

    try:
        exported = load_exported(model_path)
        meta = make_case(exported, Path(model_path), Path(fixture_dir) / "case.safetensors", DEFAULT_PROMPTS)
        write_readme(Path(fixture_dir), meta, f"from `Models/tuss-small/{Path(model_path).name}`, written by train.py")
    except Exception as exc:  # the fixture must never stop training
        print(f"fixture refresh failed: {exc!r}", flush=True)


def apply_step(model, opt, total: float, clip: float, step: int) -> bool:
    """Clips and applies the accumulated gradients when the step's loss is finite; returns whether it did."""
    if not math.isfinite(total):
        print(f"step {step}: non-finite loss, skipping", flush=True)
        opt.zero_grad(set_to_none=True)
        return False
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return True


def advance(state: dict, items, sample_rate: int, t_last: float) -> float:
    """Counts one finished step in `state` (step, wall time since `t_last`, audio seen); returns the new `t_last`."""
    now = time.time()
    state["wall_s"] += now - t_last
    state["step"] += 1
    state["audio_seconds"] += sum(m.shape[-1] for m, _, _ in items) / sample_rate
    return now


def lr_at(step, base_lr, warmup, scale):
    return base_lr * scale * min(1.0, (step + 1) / max(1, warmup))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="small", help="run name: checkpoints in Training/tuss/runs/<run>/")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--index", default=None, help="data index path (default: read Training/data/READY)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic tones/noise instead of the data pipeline")
    ap.add_argument("--wait-data", type=float, default=3 * 3600, help="seconds to wait for Training/data/READY")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=2, help="mixtures per optimizer step (grouped by prompt count)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--prompt-dropout", type=float, default=0.25)
    ap.add_argument("--template-prob", type=float, default=None,
                    help="chance that a training mixture follows a task template rather than a free prompt draw "
                         "(default: the sampler's, 0.5)")
    ap.add_argument("--template-weights", default="",
                    help="new weights for some templates, e.g. 'speech+sfx-mix=6,speech+speech=3' (training only)")
    ap.add_argument("--plateau", type=int, default=8, help="halve LR after this many validations without gain")
    ap.add_argument("--min-lr-scale", type=float, default=1 / 16)
    ap.add_argument("--val-items", type=int, default=48)
    ap.add_argument("--val-every-sec", type=float, default=300.0)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--max-hours", type=float, default=1e9, help="wall-clock limit of this process")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--export", type=Path, default=DEFAULT_EXPORT)
    ap.add_argument("--fixture-dir", default=str(DEFAULT_FIXTURE),
                    help="regenerate this parity fixture after each export ('' to disable)")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<run>/latest.pt")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a new run from an exported model (weights only, fresh optimizer); --config may add "
                         "cross-prompt / cond-TSE blocks, which start as identities (model.grow_from)")
    ap.add_argument("--reset-best", action="store_true",
                    help="on resume, forget the best validation score (after the data or the metric changed)")
    args = ap.parse_args(argv)
    if args.init_from and args.resume:
        raise SystemExit("--init-from starts a new run; it cannot be combined with --resume")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    run_dir = HERE / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    latest_path, best_path = run_dir / "latest.pt", run_dir / "best.pt"

    config = json.loads(args.config.read_text())
    args.sample_rate = int(config["model_conf"]["sample_rate"])
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = SeparationModel(config)
    model.train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if (p.dim() < 2 or "prompts" in name or "sos_token" in name) else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
    )
    state = {"step": 0, "audio_seconds": 0.0, "wall_s": 0.0, "best_metric": -float("inf"), "lr_scale": 1.0,
             "since_best": 0, "history": []}
    if args.resume:
        if not latest_path.exists():
            raise SystemExit(f"--resume: {latest_path} not found")
        ckpt = torch.load(latest_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state.update(ckpt["state"])
        set_rng_state(ckpt["rng"])
        if args.reset_best:
            state["best_metric"] = -float("inf")
            state["since_best"] = 0
        print(f"resumed {latest_path} at step {state['step']} "
              f"({state['audio_seconds'] / 3600:.2f} h audio, best {state['best_metric']:.3f} dB)", flush=True)
        if ckpt.get("args", {}).get("seconds") not in (None, args.seconds):
            print("note: segment length differs from the original run", flush=True)
    elif latest_path.exists():
        raise SystemExit(f"{latest_path} exists: pass --resume to continue or choose another --run")
    if args.init_from:
        if not args.init_from.is_file():
            raise SystemExit(f"--init-from: {args.init_from} not found")
        try:
            fresh = grow_from(model, load_exported(args.init_from))
        except ValueError as e:
            raise SystemExit(f"--init-from: {args.init_from} does not fit --config: {e}")
        grown = f"; {len(fresh)} new tensors start as identity blocks" if fresh else ""
        print(f"initialised from {args.init_from}{grown}", flush=True)

    if not args.synthetic:
        args.index = args.index or wait_for_index(args.wait_data)
        print(f"data index: {args.index}", flush=True)
    train_sampler = make_sampler(args, "train")
    val_sampler = make_sampler(args, "valid")
    val_items = [get_item(val_sampler, i) for i in range(args.val_items)]
    print(f"model: {count_parameters(model):,} parameters; {len(val_items)} validation mixtures; "
          f"batch {args.batch} x {args.seconds:g} s; threads {args.threads}", flush=True)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
        print(f"signal {signum}: saving and stopping", flush=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save_latest():
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state, "rng": rng_state(),
                     "config": config, "args": vars(args) | {"config": str(args.config), "log": str(args.log),
                                                              "export": str(args.export)}}, latest_path)

    def run_validation(train_loss):
        metrics = validate(model, val_items)
        improved = metrics["val_sisdri_mean"] > state["best_metric"]
        if improved:
            state["best_metric"] = metrics["val_sisdri_mean"]
            state["since_best"] = 0
            atomic_save({"model": model.state_dict(), "config": config, "step": state["step"],
                         "best_metric": state["best_metric"], "state": dict(state)}, best_path)
            export_model(model, args.export, {"source": f"Training/tuss/train.py run {args.run}",
                                              "step": state["step"],
                                              "val_si_sdri_db": metrics["val_sisdri_mean"],
                                              "audio_hours": round(state["audio_seconds"] / 3600, 3)})
            if args.fixture_dir:
                refresh_fixture(args.export, Path(args.fixture_dir))
        else:
            state["since_best"] += 1
            if state["since_best"] >= args.plateau and state["lr_scale"] > args.min_lr_scale:
                state["lr_scale"] /= 2
                state["since_best"] = 0
                print(f"plateau: lr scale -> {state['lr_scale']}", flush=True)
        row = {"step": state["step"], "wall_s": round(state["wall_s"], 1),
               "audio_hours": round(state["audio_seconds"] / 3600, 4),
               "train_loss": round(train_loss, 3) if train_loss == train_loss else "",
               "lr": f"{lr_at(state['step'], args.lr, args.warmup, state['lr_scale']):.3g}",
               "best": int(improved), **metrics}
        append_log(args.log, row)
        state["history"].append({k: row[k] for k in ("step", "wall_s", "audio_hours", "val_sisdri_mean")})
        save_latest()
        print(f"[val] step {state['step']} wall {state['wall_s']:.0f}s audio {state['audio_seconds'] / 3600:.2f}h "
              f"train_loss {train_loss:.2f} val SI-SDRi {metrics['val_sisdri_mean']:.2f} dB "
              f"{'(best)' if improved else ''} "
              + " ".join(f"{p}={metrics['val_sisdri_' + p]}" for p in OFFICIAL_PROMPTS
                         if metrics['val_sisdri_' + p] != ""), flush=True)

    if state["step"] == 0 and not args.resume:
        run_validation(float("nan"))  # untrained baseline

    drop_rng = random.Random(args.seed * 7919 + 1)
    t_start = time.time()
    t_last = time.time()
    last_val = time.time()
    loss_acc, loss_n, data_s = 0.0, 0, 0.0
    while state["step"] < args.max_steps and not stop["flag"]:
        if time.time() - t_start > args.max_hours * 3600:
            print("max-hours reached", flush=True)
            break
        step = state["step"]
        drop_rng.seed(args.seed * 1_000_003 + step)  # deterministic per step (resume-safe)
        td = time.time()
        items = [get_item(train_sampler, step * args.batch + j) for j in range(args.batch)]
        use_dropout = drop_rng.random() < args.prompt_dropout
        if use_dropout:
            items = [(m, *prompt_dropout(p, s, drop_rng)) for m, p, s in items]
        data_s += time.time() - td
        groups = {}
        for m, p, s in items:
            groups.setdefault(len(p), []).append((m, p, s))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, state["lr_scale"])
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for n, grp in groups.items():
            mix = torch.stack([m for m, _, _ in grp])
            src = torch.stack([s for _, _, s in grp])
            plist = [p for _, p, _ in grp]
            est = model(mix, plist)
            loss, _ = pit_snr_loss(est, src, mix, plist)
            (loss * len(grp) / len(items)).backward()
            total += float(loss.detach()) * len(grp) / len(items)
        if apply_step(model, opt, total, args.clip, step):
            loss_acc += total
            loss_n += 1
        t_last = advance(state, items, args.sample_rate, t_last)
        if state["step"] % 20 == 0:
            print(f"step {state['step']} loss {loss_acc / max(1, loss_n):.2f} "
                  f"({state['wall_s'] / max(1, state['step']):.2f} s/step avg, data {data_s:.1f}s)", flush=True)
        if time.time() - last_val >= args.val_every_sec or state["step"] >= args.max_steps:
            run_validation(loss_acc / max(1, loss_n))
            loss_acc, loss_n = 0.0, 0
            last_val = time.time()
            t_last = time.time()  # validation time is not training wall time
    save_latest()
    print(f"stopped at step {state['step']}; latest checkpoint {latest_path}", flush=True)


if __name__ == "__main__":
    main()
