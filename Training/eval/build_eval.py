#!/usr/bin/env python3
"""Build the TUSS evaluation set from the *eval* split of the Debian audio cache.

    python3 Training/eval/build_eval.py            # -> Training/eval/set/manifest.json + WAVs

Five tasks (TUSS paper, Table I): se (speech + sfx-mix), ss (speech x2, half of them + sfx-mix),
uss (sfx x2-4), mss (drums, bass, vocals, other from one song), cass (speech, music-mix, sfx-mix).
Items are made with ``data.mixtures.MixtureSampler`` over the eval split only, with a fixed seed per
(task, item), and written as 16-bit 16 kHz mono WAV. The script refuses to write an item that uses a
clip outside the eval split, and checks that no group is in two splits. Running it twice gives
byte-identical files (``--check-reproducible`` builds twice and compares).

manifest.json is a JSON array of
  {"task": "se", "item": "0001", "sample_rate": 16000, "mixture": "se/0001/mixture.flac",
   "prompts": ["speech", "sfx-mix"], "references": ["se/0001/speech.flac", "se/0001/sfx-mix.flac"],
   "seconds": 4.0, "sources": [[{"package", "group", "path", "licence", "synthetic"}...], ...]}
with paths relative to the manifest; repeated prompts' references are named speech-1.flac, speech-2.flac.
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
sys.path.insert(0, TRAINING)

from data.mixtures import TASKS, MixtureSampler  # noqa: E402

DEFAULT_INDEX = os.path.join(TRAINING, "data", "cache", "index.json")
DEFAULT_OUT = os.path.join(HERE, "set")
TASK_SEED = {"se": 101, "ss": 202, "uss": 303, "mss": 404, "cass": 505}


def check_index_split(index: dict) -> None:
    """No group may appear in two splits (the whole point of splitting by group)."""
    seen = {}
    for c in index["clips"]:
        s = seen.setdefault(c["group"], c["split"])
        if s != c["split"]:
            raise SystemExit(f"group {c['group']} is in two splits ({s}, {c['split']})")


def reference_names(prompts):
    counts = {p: prompts.count(p) for p in prompts}
    seen, out = {}, []
    for p in prompts:
        if counts[p] > 1:
            seen[p] = seen.get(p, 0) + 1
            out.append(f"{p}-{seen[p]}")
        else:
            out.append(p)
    return out


def write_wav(path: str, x: np.ndarray, sr: int) -> None:
    # 16-bit FLAC (lossless, about half the size of WAV, so the set can be committed); libsndfile's FLAC encoder is
    # deterministic, so the bytes are a pure function of x
    q = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    sf.write(path, q, sr, subtype="PCM_16", format="FLAC")


def build(index_path: str, out_dir: str, items: int, seconds: float, verbose: bool = True) -> list:
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    check_index_split(index)
    sampler = MixtureSampler(index_path, "eval", seconds=seconds, seed=0)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    manifest = []
    for task in TASKS:
        rng = np.random.default_rng(TASK_SEED[task])
        for k in range(1, items + 1):
            item = f"{k:04d}"
            trace: list = []
            mix, prompts, srcs = sampler.sample_task(task, rng, seconds=seconds, trace=trace)
            # every clip used must be from the eval split
            for src in trace:
                for clip in src:
                    if clip["split"] != "eval":
                        raise SystemExit(f"{task}/{item}: uses non-eval clip {clip['path']} ({clip['split']})")
            peak = max(float(np.abs(mix).max()), float(np.abs(srcs).max()))
            if peak > 0.99:  # keep every file inside 16-bit range
                mix, srcs = mix * (0.99 / peak), srcs * (0.99 / peak)
            d = os.path.join(out_dir, task, item)
            os.makedirs(d)
            write_wav(os.path.join(d, "mixture.flac"), mix, sampler.sr)
            refs = []
            for name, x in zip(reference_names(prompts), srcs):
                write_wav(os.path.join(d, f"{name}.flac"), x, sampler.sr)
                refs.append(f"{task}/{item}/{name}.flac")
            sources = []
            for src in trace:
                uniq = {}
                for c in src:
                    uniq.setdefault(c["path"] + "|" + c["category"], c)
                sources.append([{"category": c["category"], "package": c["package"], "group": c["group"],
                                 "path": c["path"], "licence": c["licence"],
                                 "synthetic": c["synthetic"], "rendered": c["rendered"]}
                                for c in sorted(uniq.values(), key=lambda c: (c["path"], c["category"]))])
            manifest.append({"task": task, "item": item, "sample_rate": sampler.sr,
                             "mixture": f"{task}/{item}/mixture.flac", "prompts": prompts, "references": refs,
                             "seconds": round(len(mix) / sampler.sr, 3), "sources": sources})
        if verbose:
            print(f"[eval] {task}: {items} items", flush=True)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for dp, dn, fn in sorted(os.walk(root)):
        dn.sort()
        for n in sorted(fn):
            p = os.path.join(dp, n)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--items", type=int, default=30, help="items per task")
    ap.add_argument("--seconds", type=float, default=4.0, help="item length (4-10 s)")
    ap.add_argument("--check-reproducible", action="store_true",
                    help="build a second copy in a temp dir and require byte-identical files")
    a = ap.parse_args(argv)
    if not 4.0 <= a.seconds <= 10.0:
        raise SystemExit("--seconds must be within 4..10")
    man = build(a.index, a.out, a.items, a.seconds)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(a.out) for f in fs)
    print(f"[eval] {len(man)} items, {size / 1e6:.1f} MB -> {a.out}/manifest.json")
    if a.check_reproducible:
        with tempfile.TemporaryDirectory() as td:
            other = os.path.join(td, "set")
            build(a.index, other, a.items, a.seconds, verbose=False)
            cmp = filecmp.dircmp(a.out, other)
            d1, d2 = tree_digest(a.out), tree_digest(other)
            if d1 != d2:
                raise SystemExit(f"NOT reproducible: {cmp.diff_files} ...")
            print(f"[eval] reproducible: second build is byte-identical (sha256 {d1[:16]})")
    print("[eval] digest", tree_digest(a.out))


if __name__ == "__main__":
    main()
