"""Parity check of Training/codec/dac.py against the official DAC reference bundles (<repo>/../shared/reference).

    python3 Training/codec/check_reference.py [--bundle dac-tiny-16k] [--bundle dac-tiny-44k]
Compares z, latents, z_q, decoded, decoded_from_codes_nq, decoded_continuous (relative L2 <= 1e-4) and codes (exact).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from codec.dac import load_official  # noqa: E402

REPO = HERE.parent.parent


def rel_l2(a, b):
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_bundle(bdir: Path, tol: float, verbose=True):
    from safetensors import safe_open

    model = load_official(bdir / "weights.pth")
    results = {}
    for case in sorted((bdir / "cases").glob("*.safetensors")):
        with safe_open(str(case), "pt") as f:
            meta = f.metadata()
            ref = {k: f.get_tensor(k) for k in f.keys()}
        nq = int(meta["nq"])
        with torch.no_grad():
            z, z_q, codes, latents, _, _ = model.encode(ref["audio"][None, None])
            mine = {
                "z": z[0], "latents": latents[0], "z_q": z_q[0],
                "decoded": model.decode(z_q)[0, 0],
                "decoded_from_codes_nq": model.decode(model.quantizer.from_codes(codes[:, :nq]))[0, 0],
                "decoded_continuous": model.decode(z)[0, 0],
            }
        errors = {k: rel_l2(v, ref[k]) for k, v in mine.items() if k in ref}
        mismatches = int((codes[0].to(torch.int64) != ref["codes"].to(torch.int64)).sum())
        ok = max(errors.values()) <= tol and mismatches == 0
        results[case.stem] = {"errors": errors, "code_mismatches": mismatches, "ok": ok}
        if verbose:
            e = "  ".join(f"{k}={v:.2e}" for k, v in errors.items())
            print(f"[{'OK ' if ok else 'FAIL'}] {bdir.name}/{case.stem}: codes mismatches={mismatches}  {e}", flush=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=(REPO / ".." / "shared").resolve())
    ap.add_argument("--bundle", action="append")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ok = True
    for name in args.bundle or ["dac-tiny-16k", "dac-tiny-44k"]:
        for res in check_bundle(args.shared / "reference" / name, args.tol).values():
            ok &= res["ok"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
