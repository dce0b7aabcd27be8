"""Parity check of Training/tuss/model.py against reference bundles made by the official TUSS code.

For each bundle (default: tuss-tiny and tuss-medium under <repo>/../shared/reference/) this loads
checkpoints/model.pth (prefix ``model.`` stripped, strict), builds the model from hparams.yaml, runs every case in
cases/*.safetensors and compares the untrimmed ``output`` and, where present, the intermediates
(stft_re, stft_im, bandsplit, cross_out, tse_out, mask_re, mask_im) by relative L2 error over the whole tensor.
The intermediates after the STFT are gated stage-isolated (computed from the reference STFT); the end-to-end values
are printed for information (they carry the float32 STFT rounding amplified by near-silent bands).

    python3 Training/tuss/check_reference.py                 # both bundles
    python3 Training/tuss/check_reference.py --bundle tuss-tiny
Exit status 1 if any error exceeds --tol (default 1e-4).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from tuss.model import SeparationModel, load_official_checkpoint, load_yaml_config  # noqa: E402

REPO = HERE.parent.parent
INTERMEDIATES = ["stft_re", "stft_im", "bandsplit", "cross_out", "tse_out", "mask_re", "mask_im"]


def shared_dir() -> Path:
    return (REPO / ".." / "shared").resolve()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.detach().double()
    b = b.detach().double()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _collect(inter: dict, n_batch_item: int = 0) -> dict:
    out = {
        "bandsplit": inter["bandsplit"][n_batch_item],
        "cross_out": inter["cross_out"][n_batch_item],
        "tse_out": inter["tse_out"],
        "mask_re": inter["mask"][n_batch_item].real,
        "mask_im": inter["mask"][n_batch_item].imag,
    }
    if "stft" in inter:
        out["stft_re"] = inter["stft"][n_batch_item].real
        out["stft_im"] = inter["stft"][n_batch_item].imag
    return out


def run_case(model: SeparationModel, case_path: Path) -> dict:
    """Returns gated errors (must be <= tol) and end-to-end intermediate errors (informational).

    Gated: ``output`` (untrimmed, end to end from the waveform), ``output[:, :L]`` (trimmed), ``stft_re/_im``, and
    every later intermediate computed from the *reference* STFT (stage-isolated). The end-to-end intermediates also
    contain the float32 rounding of the STFT, which the per-band GroupNorm of near-silent high bands amplifies
    (the reference itself is that far from exact arithmetic: see the README of this directory).
    """
    from safetensors import safe_open

    with safe_open(str(case_path), "pt") as f:
        meta = f.metadata()
        ref = {k: f.get_tensor(k) for k in f.keys()}
    prompts = meta["prompts"].split(",")
    inter: dict = {}
    with torch.no_grad():
        out = model(ref["mixture"][None], [prompts], trim=False, intermediates=inter)[0]
        out_trim = model(ref["mixture"][None], [prompts], trim=True)[0]
    errors = {"output": rel_l2(out, ref["output"])}
    errors["output[:, :L]"] = rel_l2(out_trim, ref["output"][:, : ref["mixture"].shape[-1]])
    e2e = {}
    if "stft_re" in ref:
        mine = _collect(inter)
        for name in INTERMEDIATES:
            if name in ref:
                e2e[name] = rel_l2(mine[name], ref[name])
        errors["stft_re"] = e2e["stft_re"]
        errors["stft_im"] = e2e["stft_im"]
        staged: dict = {}
        spec = torch.complex(ref["stft_re"], ref["stft_im"])[None]
        with torch.no_grad():
            model.separator(spec, [prompts], staged)
        mine = _collect(staged)
        for name in INTERMEDIATES[2:]:
            if name in ref:
                errors[name] = rel_l2(mine[name], ref[name])
    return {"prompts": prompts, "errors": errors, "e2e": e2e, "length": ref["mixture"].shape[-1]}


def check_bundle(bundle_dir: Path, tol: float, verbose: bool = True) -> dict:
    config = load_yaml_config(bundle_dir / "hparams.yaml")
    model = SeparationModel(config).eval()
    load_official_checkpoint(model, bundle_dir / "checkpoints" / "model.pth")
    results = {}
    for case_path in sorted((bundle_dir / "cases").glob("*.safetensors")):
        t0 = time.time()
        res = run_case(model, case_path)
        res["seconds"] = time.time() - t0
        results[case_path.stem] = res
        if verbose:
            worst = max(res["errors"].values())
            status = "OK " if worst <= tol else "FAIL"
            errs = "  ".join(f"{k}={v:.2e}" for k, v in res["errors"].items())
            print(f"[{status}] {bundle_dir.name}/{case_path.stem} ({','.join(res['prompts'])}, "
                  f"L={res['length']}, {res['seconds']:.1f}s): {errs}", flush=True)
            if res["e2e"]:
                e2e = "  ".join(f"{k}={v:.2e}" for k, v in res["e2e"].items())
                print(f"       end-to-end intermediates (info, includes STFT fp32 rounding): {e2e}", flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=None, help="shared dir (default <repo>/../shared)")
    ap.add_argument("--bundle", action="append", help="bundle name(s) under shared/reference (default: tiny+medium)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shared = args.shared or shared_dir()
    bundles = args.bundle or ["tuss-tiny", "tuss-medium"]
    worst = 0.0
    for name in bundles:
        bdir = shared / "reference" / name
        if not bdir.is_dir():
            print(f"missing bundle {bdir}", file=sys.stderr)
            return 2
        for res in check_bundle(bdir, args.tol).values():
            worst = max(worst, max(res["errors"].values()))
    print(f"worst relative L2 error: {worst:.3e} (tolerance {args.tol:g}) -> {'PASS' if worst <= args.tol else 'FAIL'}")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
