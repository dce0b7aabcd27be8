"""Writes Tests/Fixtures/bss-eval: signals and the BSS Eval criteria mir_eval computes for them.

The Swift scorer (`BSSEval` in Sources/TussAudio) is checked against these numbers, so the fixture comes from an
independent implementation: mir_eval's `bss_eval_sources` (512-tap distortion filters, no permutation).

    pip install mir_eval==0.8.2
    python3 Training/eval/make_bss_fixture.py --out Tests/Fixtures/bss-eval

references.wav holds the references (one per channel), estimates.wav the estimates; estimate e is scored against
reference `targets[e]` in expected.json, which also holds mir_eval's SDR / SIR / SAR per estimate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--length", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    import mir_eval.separation as sep

    rng = np.random.default_rng(args.seed)
    n = args.length
    t = np.arange(n) / 16000.0
    white = rng.standard_normal(n)
    # A low-passed source (its delayed copies are nearly dependent, which is what strains the solver), a harmonic
    # source with some noise, and white noise.
    lowpassed = np.convolve(rng.standard_normal(n + 31), np.hanning(32), mode="valid")[:n]
    harmonic = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t + 1) + 0.05 * rng.standard_normal(n)
    refs = np.stack([lowpassed / np.std(lowpassed), harmonic / np.std(harmonic), white]).astype(np.float32)
    mixture = refs.sum(0)
    fir = np.array([0.9, 0.3, -0.2, 0.1])
    estimates, targets = [], []

    def add(x, target):
        estimates.append(np.asarray(x, dtype=np.float32))
        targets.append(target)

    add(np.convolve(refs[0], fir)[:n] + 0.3 * refs[1] + 0.05 * rng.standard_normal(n), 0)  # filtered, leaky, noisy
    add(refs[1] + 0.2 * refs[2] + 0.1 * rng.standard_normal(n), 1)
    add(0.5 * refs[2] + 0.4 * refs[0] + 0.4 * rng.standard_normal(n), 2)
    for j in range(3):
        add(mixture, j)                                                                # the mixture as every estimate
    add(np.roll(refs[1], 40) * 0.7 + 0.01 * refs[0], 1)                              # a 40-sample delay is allowed
    add(rng.standard_normal(n) * 0.5, 0)                                             # unrelated noise

    est = np.stack(estimates)
    sdr, sir, sar = [], [], []
    for e, j in zip(est, targets):
        # mir_eval scores estimate i against reference i; put this estimate in slot j and read slot j back.
        slots = refs.astype(np.float64).copy()
        slots[j] = e
        d, i, a, _ = sep.bss_eval_sources(refs.astype(np.float64), slots, compute_permutation=False)
        sdr.append(float(d[j])); sir.append(float(i[j])); sar.append(float(a[j]))

    args.out.mkdir(parents=True, exist_ok=True)
    sf.write(args.out / "references.wav", refs.T, 16000, subtype="FLOAT")
    sf.write(args.out / "estimates.wav", est.T, 16000, subtype="FLOAT")
    (args.out / "expected.json").write_text(json.dumps(
        {"source": "mir_eval " + __import__("mir_eval").__version__ + " bss_eval_sources, 512-tap filters",
         "targets": targets, "sdr": sdr, "sir": sir, "sar": sar}, indent=1) + "\n")
    for k in range(len(targets)):
        print(f"estimate {k} -> ref {targets[k]}: SDR {sdr[k]:7.3f} SIR {sir[k]:7.3f} SAR {sar[k]:7.3f}")


if __name__ == "__main__":
    main()
