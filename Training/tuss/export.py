"""Export a TUSS model to the one-file format read by the Swift engine.

File: ``model.safetensors``
  tensors:  every state-dict entry of SeparationModel under its official name without the ``model.`` prefix
            (``separator.sos_token``, ``separator.prompts.speech``, ``separator.cross_prompt_module.0.freq_path...``,
            ``separator.band_split_module.bandwise_decoding_module.<b>.5.bias``, ``...attn.rope.freqs``), float32.
  metadata (all strings):
            tuss-codec.kind   = "tuss"
            tuss-codec.format = "1"
            tuss-codec.config = JSON of the full config dict (official hparams schema: encoder_conf, decoder_conf,
                                model_conf, variance_normalization; model_conf.band_edges always filled in)
            plus optional informational entries (tuss-codec.source, tuss-codec.step, ...).

Usage:
    # from a training checkpoint written by train.py
    python3 Training/tuss/export.py --checkpoint Training/tuss/runs/small/best.pt --out Models/tuss-small/model.safetensors
    # from an official checkpoint + hparams.yaml
    python3 Training/tuss/export.py --official ../shared/reference/tuss-tiny/checkpoints/model.pth \
        --hparams ../shared/reference/tuss-tiny/hparams.yaml --out /tmp/tuss-tiny.safetensors
    # a random-init model from a config JSON (seeded)
    python3 Training/tuss/export.py --config Models/tuss-small/config.json --seed 0 --out /tmp/random.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from tuss.model import (  # noqa: E402
    SeparationModel,
    config_with_band_edges,
    load_official_checkpoint,
    load_yaml_config,
)

KIND = "tuss"
FORMAT = "1"


def export_model(model: SeparationModel, out_path, extra_meta: Optional[dict] = None) -> Path:
    from safetensors.torch import save_file

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "tuss-codec.kind": KIND,
        "tuss-codec.format": FORMAT,
        "tuss-codec.config": json.dumps(config_with_band_edges(model.config), sort_keys=True),
    }
    for k, v in (extra_meta or {}).items():
        meta[k if k.startswith("tuss-codec.") else f"tuss-codec.{k}"] = str(v)
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_path)  # atomic: readers never see a half-written file
    return out_path


def model_from_training_checkpoint(path) -> SeparationModel:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = SeparationModel(ckpt["config"])
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (.pt) written by train.py")
    src.add_argument("--official", type=Path, help="official model.pth (needs --hparams)")
    src.add_argument("--config", type=Path, help="config JSON: export a randomly initialised model (--seed)")
    ap.add_argument("--hparams", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    extra = {}
    if args.checkpoint:
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model = SeparationModel(ckpt["config"])
        model.load_state_dict(ckpt["model"], strict=True)
        extra = {"source": "train.py", "step": ckpt.get("step", ""), "val_si_sdri": ckpt.get("best_metric", "")}
    elif args.official:
        if not args.hparams:
            ap.error("--official needs --hparams")
        model = SeparationModel(load_yaml_config(args.hparams))
        load_official_checkpoint(model, args.official)
        extra = {"source": "official checkpoint"}
    else:
        config = json.loads(args.config.read_text())
        torch.manual_seed(args.seed)
        model = SeparationModel(config)
        extra = {"source": f"random init, torch.manual_seed({args.seed})"}
    path = export_model(model, args.out, extra)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(model.state_dict())} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
