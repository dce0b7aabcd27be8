#!/usr/bin/env python3
"""Rebuild the example mixtures in Examples/ from the *eval* split of the Debian audio cache.

    python3 Training/data/collect.py      # once, builds Training/data/cache/
    python3 Examples/make_examples.py     # writes Examples/*.wav and Examples/README.md

Every example is a sum of real (or MIDI-rendered) eval-split clips made with
Training/data/mixtures.py, written as 16-bit 16 kHz mono WAV with the mixture peak at 0.9.
The candidate search is seeded, so the output is reproducible.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Training"))

from data.mixtures import MixtureSampler  # noqa: E402

INDEX = os.path.join(ROOT, "Training", "data", "cache", "index.json")
SR = 16000

# name, prompts, seconds, seed, sampler options, description
EXAMPLES = [
    ("speech_noise", ["speech", "sfx-mix"], 6.0, 11, dict(onfly_sfx_mix_prob=0.6),
     "One speaker over a background of several sound effects / an ambient recording (SE task)."),
    ("two_speakers", ["speech", "speech"], 6.0, 22, {},
     "Two different speakers talking at the same time (SS task)."),
    ("song", ["drums", "bass", "vocals", "other"], 7.0, 33, {},
     "A MIDI song rendered to four stems (MSS task). The 'vocals' stem is the melody re-voiced with a "
     "sampled 'Voice Oohs'/'Choir Aahs' patch: synthetic, no real sung vocals with separate stems exist "
     "in the Debian packages used here."),
    ("dialogue_music_effects", ["speech", "music-mix", "sfx-mix"], 7.0, 44, dict(onfly_music_mix_prob=0.0),
     "Speech, a real music track and sound effects together (CASS task)."),
]


def activity(x: np.ndarray, frame: int = 320) -> float:
    """Fraction of 20 ms frames within 30 dB of the loudest frame."""
    n = len(x) // frame
    e = (x[: n * frame].reshape(n, frame) ** 2).mean(1)
    return float((e > e.max() * 1e-3).mean()) if e.max() > 0 else 0.0


def make(name, prompts, seconds, seed, opts):
    s = MixtureSampler(INDEX, "eval", seconds=seconds, seed=seed, **opts)
    best = None
    for k in range(40):  # seeded search for a candidate where every source is active most of the time
        rng = np.random.default_rng([seed, k])
        trace: list = []
        mix, p, srcs = s.build(prompts, rng, level=False, trace=trace)
        score = min(activity(x) for x in srcs)
        if best is None or score > best[0]:
            best = (score, mix, p, srcs, trace)
        if score >= 0.6:
            break
    _, mix, p, srcs, trace = best
    for src in trace:
        for c in src:
            assert c["split"] == "eval", c
    g = 0.9 / float(np.abs(mix).max())
    q = np.clip(np.round(mix * g * 32767), -32768, 32767).astype("<i2")
    sf.write(os.path.join(HERE, f"{name}.wav"), q, SR, subtype="PCM_16", format="WAV")
    return p, trace


def main():
    lines = ["# Example mixtures", "",
             "Short real-audio mixtures for trying the separator. Each file is 16-bit, 16 kHz, mono, built by",
             "`Examples/make_examples.py` from the **eval split** of the Debian-package audio collected by",
             "`Training/data/collect.py` (never used for training). Rebuild with:", "",
             "```", "bash Training/data/install_packages.sh && python3 Training/data/collect.py",
             "python3 Examples/make_examples.py", "```", "",
             "Sources were RMS-normalised and mixed with random gains (TUSS recipe, Training/data/mixtures.py);",
             "the mixture is scaled to a peak of 0.9. Prompts to separate them are given per file.", ""]
    info = {}
    for name, prompts, seconds, seed, opts, desc in EXAMPLES:
        p, trace = make(name, prompts, seconds, seed, opts)
        info[name] = {"prompts": p, "seconds": seconds, "sources": [
            [{k: c[k] for k in ("category", "package", "group", "path", "licence", "synthetic", "rendered")}
             for c in {c["path"] + c["category"]: c for c in src}.values()] for src in trace]}
        lines += [f"## `{name}.wav` ({seconds:g} s)", "", desc, "",
                  f"Prompts: {', '.join('`' + x + '`' for x in p)}", "",
                  "| source | package | file | licence | note |", "|---|---|---|---|---|"]
        for cat, src in zip(p, trace):
            seen = set()
            for c in src:
                key = (c["package"], c["path"], c["category"])
                if key in seen:
                    continue
                seen.add(key)
                note = "rendered from MIDI" if c["rendered"] else ""
                if c["synthetic"]:
                    note += " (synthetic voice)"
                lines.append(f"| {cat} | {c['package']} | `{c['path']}` | {c['licence']} | {note.strip()} |")
        lines.append("")
    lines += ["Licences are those of the Debian packages' copyright files; see Training/data/LICENSES.md.", ""]
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(os.path.join(HERE, "sources.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", ", ".join(e[0] + ".wav" for e in EXAMPLES))


if __name__ == "__main__":
    main()
