"""The codec-path latent masker (PyTorch), with the parameter names the Swift engine reads (docs/masker.md).

    latent z (B, C, T) -> x = input_proj(z^T)                                  (B, T, D)
    config "lookahead" L > 0: x_t += input_ahead [z_{t+1}; ...; z_{t+L}] (frames past the end count as zero), so
    frame t also sees the L frames after it (a stream's algorithmic latency grows by L codec frames)
    tokens [start, prompt_embed[p_n] + slot_embed[n] for n < N]                (B, N+1, D)
    joint_layers x pre-norm layers over [tokens; frames]:
        prompts see start+prompts; frame t sees start+prompts and frames t-W+1..t (causal window)
        RoPE (interleaved pairs, angles in float64) rotates frame queries/keys for frame-frame scores only;
        frame-to-prompt scores use unrotated queries, so every score depends on relative positions only
    joint_norm -> o_n (prompt outputs), g (frames)
    per prompt n, per FiLM layer l: g <- g * (1 + gamma) + beta, [gamma | beta] = film.l(o_n); layer film_stage.l
    out_norm, mask_head (D -> C): mask m_n (unbounded); output z * m_n                  (B, N, C, T)
    config "additive": also add_head (D -> C): a_n; output z * m_n + a_n (a mask alone cannot move a latent
    coordinate whose mixture value is near zero, nor change its sign)
    training only, `set_centre(c)`: output c + m_n * (z - c) (+ a_n), a mask around the codec's latent of silence c;
    `export` folds c into the additive head, so the engine runs it as an ordinary additive masker

Layer (joint.<i>, film_stage.<l>): attn_norm, attn.qkv (D -> 3D, [q | k | v], head-major), attn.out, ffn_norm,
ffn.in (D -> F), SiLU, ffn.out (F -> D); LayerNorm eps 1e-5.
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PROMPTS = ["speech", "sfx", "sfx-mix", "drums", "bass", "vocals", "other", "music-mix"]
ALIASES = {"sfxbg": "sfx-mix", "musicbg": "music-mix", "other-inst": "other"}


def default_config(latent_dim: int, codec_name: str, codec_sha256: str, **overrides) -> dict:
    """The default masker size (D 128, 4 heads, FFN 256, 2 + 2 layers, window 64) for a codec latent width."""
    config = {"latent_dim": int(latent_dim), "d_model": 128, "heads": 4, "ffn": 256, "joint_layers": 2,
              "film_layers": 2, "window": 64, "prompts": list(PROMPTS), "max_prompts": 8,
              "codec": {"name": codec_name, "sha256": codec_sha256}}
    config.update(overrides)
    return config


def canonical(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def rope_tables(head_dim: int, start: int, count: int):
    """cos, sin (count, head_dim/2) for positions start..start+count-1; frequencies and angles in float64."""
    half = head_dim // 2
    theta = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float64) * 2 / head_dim))
    angle = torch.arange(start, start + count, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.cos(angle).float(), torch.sin(angle).float()


def rotate(x, cos, sin):
    """Rotates interleaved pairs (2p, 2p+1) of x (..., T, H, dh) by the angles of (T, dh/2) tables."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((a * c - b * s, b * c + a * s), dim=-1).flatten(-2)


def window_mask(count: int, window: int, device=None):
    """allowed[i, j]: frame j is in frame i's causal window (i-W < j <= i)."""
    i = torch.arange(count, device=device)[:, None]
    j = torch.arange(count, device=device)[None, :]
    return (j <= i) & (j > i - window)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.ModuleDict({"in": nn.Linear(dim, ffn), "out": nn.Linear(ffn, dim)})

    def _split(self, x):
        b, t, d = x.shape
        h = self.attn.heads
        q, k, v = self.attn.qkv(self.attn_norm(x)).split(d, dim=-1)
        return [y.view(b, t, h, d // h) for y in (q, k, v)]

    def forward(self, prefix, frames, cos, sin, allowed):
        """prefix (B, P, D) or None (FiLM stage); frames (B, T, D); allowed (T, T) window mask."""
        b, t, d = frames.shape
        h = self.attn.heads
        dh = d // h
        scale = 1.0 / math.sqrt(dh)
        qf, kf, vf = self._split(frames)
        qr, kr = rotate(qf, cos, sin), rotate(kf, cos, sin)
        frame_scores = torch.einsum("bthe,bshe->bhts", qr, kr) * scale
        frame_scores = frame_scores.masked_fill(~allowed, float("-inf"))
        if prefix is not None:
            qp, kp, vp = self._split(prefix)
            prompt_scores = torch.einsum("bphe,bqhe->bhpq", qp, kp) * scale
            prompt_out = torch.einsum("bhpq,bqhe->bphe", prompt_scores.softmax(-1), vp).reshape(b, -1, d)
            cross = torch.einsum("bthe,bphe->bhtp", qf, kp) * scale          # unrotated queries vs prompts
            weights = torch.cat((cross, frame_scores), dim=-1).softmax(-1)
            p = prefix.shape[1]
            frame_out = (torch.einsum("bhtp,bphe->bthe", weights[..., :p], vp)
                         + torch.einsum("bhts,bshe->bthe", weights[..., p:], vf)).reshape(b, t, d)
            prefix = prefix + self.attn.out(prompt_out)
            prefix = prefix + self.ffn["out"](F.silu(self.ffn["in"](self.ffn_norm(prefix))))
        else:
            frame_out = torch.einsum("bhts,bshe->bthe", frame_scores.softmax(-1), vf).reshape(b, t, d)
        frames = frames + self.attn.out(frame_out)
        frames = frames + self.ffn["out"](F.silu(self.ffn["in"](self.ffn_norm(frames))))
        return prefix, frames


class LatentMasker(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        c, d = config["latent_dim"], config["d_model"]
        self.input_proj = nn.Linear(c, d)
        if config.get("lookahead", 0) > 0:
            # Why: the codec's encoder is not causal, so a source's latent at frame t depends on audio that only the
            # mixture's next few latent frames describe; a causal masker has to guess it. Starts at zero, so a masker
            # grown with it computes exactly what it did before.
            self.input_ahead = nn.Linear(c * config["lookahead"], d, bias=False)
            nn.init.zeros_(self.input_ahead.weight)
        self.start_token = nn.Parameter(torch.randn(d) * 0.02)
        self.prompt_embed = nn.Embedding(len(config["prompts"]), d)
        self.slot_embed = nn.Embedding(config["max_prompts"], d)
        nn.init.normal_(self.prompt_embed.weight, std=0.02)
        nn.init.normal_(self.slot_embed.weight, std=0.02)
        self.joint = nn.ModuleList(Layer(d, config["heads"], config["ffn"]) for _ in range(config["joint_layers"]))
        self.joint_norm = nn.LayerNorm(d)
        self.film = nn.ModuleList(nn.Linear(d, 2 * d) for _ in range(config["film_layers"]))
        self.film_stage = nn.ModuleList(Layer(d, config["heads"], config["ffn"]) for _ in range(config["film_layers"]))
        self.out_norm = nn.LayerNorm(d)
        self.mask_head = nn.Linear(d, c)
        # FiLM starts as the identity; the mask starts near 1/2 (the right share for two sources).
        for f in self.film:
            nn.init.zeros_(f.weight)
            nn.init.zeros_(f.bias)
        nn.init.normal_(self.mask_head.weight, std=0.01)
        nn.init.constant_(self.mask_head.bias, 0.5)
        if config.get("additive"):
            # Starts at zero: a masker grown with it computes exactly what it did before.
            self.add_head = nn.Linear(d, c)
            nn.init.zeros_(self.add_head.weight)
            nn.init.zeros_(self.add_head.bias)

        self.centre = None

    def set_centre(self, centre):
        """Masks around `centre` (C,), the latent the codec gives silence, instead of around zero (training only).

        Why: the codec's latent is far from zero for silence (its norm per frame is ~3/4 of a typical mixture's), so a
        mask around zero must learn the ratio centre/z to output silence, and every partial mask also shrinks the
        offset, which leaves latents the decoder never saw (the session-23 diagnosis in docs/masker.md). Around the
        centre, mask 0 is silence and mask 1 the mixture. `export` folds it into the additive head, which represents
        it exactly: c + m * (z - c) = z * m + (c - c * m), and c * m is linear in the features m is."""
        self.centre = None if centre is None else torch.as_tensor(centre, dtype=torch.float32).detach().clone()

    def prompt_rows(self, prompts):
        names = self.config["prompts"]
        return [[names.index(canonical(p)) for p in plist] for plist in prompts]

    def masks(self, latent, prompts, start: int = 0):
        """latent (B, C, T); prompts: B lists of N names -> masks (B, N, C, T)."""
        return self.heads(latent, prompts, start)[0]

    def heads(self, latent, prompts, start: int = 0):
        """(masks, additive terms or None), each (B, N, C, T)."""
        return self.heads_from(self.features(latent, prompts, start), latent.shape[0], len(prompts[0]))

    def heads_from(self, h, b: int, n: int):
        """The heads on features h (B * N, T, D) from `features`."""
        t = h.shape[1]
        mask = self.mask_head(h).view(b, n, t, -1).transpose(2, 3)               # (B, N, C, T)
        if not self.config.get("additive"):
            return mask, None
        return mask, self.add_head(h).view(b, n, t, -1).transpose(2, 3)

    def features(self, latent, prompts, start: int = 0):
        """The per-prompt frame features the heads read: out_norm of the FiLM stage's output, (B * N, T, D)."""
        b, _, t = latent.shape
        n = len(prompts[0])
        if any(len(p) != n for p in prompts):
            raise ValueError("every item of a batch needs the same number of prompts")
        if not 1 <= n <= self.config["max_prompts"]:
            raise ValueError(f"{n} prompts; pass 1 to {self.config['max_prompts']}")
        d = self.config["d_model"]
        rows = torch.tensor(self.prompt_rows(prompts), device=latent.device)
        tokens = self.prompt_embed(rows) + self.slot_embed.weight[:n][None]
        prefix = torch.cat((self.start_token.expand(b, 1, d), tokens), dim=1)
        frames = self.input_proj(latent.transpose(1, 2))
        ahead = self.config.get("lookahead", 0)
        if ahead > 0:
            padded = F.pad(latent, (0, ahead))                                       # zero past the end
            later = [padded[..., k:k + t] for k in range(1, ahead + 1)]              # z_{t+k}
            frames = frames + self.input_ahead(torch.cat(later, dim=1).transpose(1, 2))
        cos, sin = rope_tables(d // self.config["heads"], start, t)
        allowed = window_mask(t, self.config["window"], latent.device)
        for layer in self.joint:
            prefix, frames = layer(prefix, frames, cos, sin, allowed)
        prefix, frames = self.joint_norm(prefix), self.joint_norm(frames)
        outputs = prefix[:, 1:]                                                    # (B, N, D)
        g = frames[:, None].expand(b, n, t, d).reshape(b * n, t, d)
        for film, layer in zip(self.film, self.film_stage):
            gamma, beta = film(outputs).reshape(b * n, 1, 2 * d).split(d, dim=-1)
            g = g * (1 + gamma) + beta
            _, g = layer(None, g, cos, sin, allowed)
        return self.out_norm(g)

    def forward(self, latent, prompts, start: int = 0):
        """Masked latents (B, N, C, T), one per prompt, in prompt order."""
        mask, add = self.heads(latent, prompts, start)
        if self.centre is not None:
            c = self.centre.to(latent.dtype)[None, None, :, None]
            out = c + (latent[:, None] - c) * mask
        else:
            out = latent[:, None] * mask
        return out if add is None else out + add


def grow_from(model: LatentMasker, donor: LatentMasker) -> list[str]:
    """Loads a donor with the same widths but no more joint or FiLM layers than `model` so that `model` computes
    exactly the donor's function: the donor's layers fill the first slots of each stack, and every extra layer is made
    an identity (attention and FFN output projections zero, so both residual branches add nothing; its FiLM linear
    zero, so gamma = beta = 0). Training then grows the extra layers from there instead of from random weights.
    Returns the names of the parameters the donor did not provide. Raises ValueError on any other shape mismatch."""
    same = ("latent_dim", "d_model", "heads", "ffn", "window", "prompts", "max_prompts")
    if any(model.config[k] != donor.config[k] for k in same):
        raise ValueError("the donor differs in " + ", ".join(k for k in same if model.config[k] != donor.config[k]))
    if donor.config.get("lookahead", 0) not in (0, model.config.get("lookahead", 0)):
        raise ValueError(f"the donor looks {donor.config['lookahead']} frames ahead, this model "
                         f"{model.config.get('lookahead', 0)}")
    for key in ("joint_layers", "film_layers"):
        if donor.config[key] > model.config[key]:
            raise ValueError(f"the donor has {donor.config[key]} {key}, more than this model's {model.config[key]}")
    from growth import load_grown  # Training/ is on sys.path for every entry point

    outputs = ("attn.out.weight", "attn.out.bias", "ffn.out.weight", "ffn.out.bias")
    fresh = ("film.", "add_head.", "input_ahead.")
    return load_grown(model, donor, lambda name: name.endswith(outputs) or name.startswith(fresh))


def widen(donor: LatentMasker, factor: int, seed: int = 0) -> LatentMasker:
    """The masker `factor` times as wide (D, heads and FFN) that computes the donor's function (to float32 rounding of
    the split weights).

    Every width-D vector of the wide masker holds `factor` copies of the donor's (each hidden unit and each attention
    head is repeated; the head size stays), which LayerNorm keeps as they are (copies leave the mean and variance
    unchanged). A weight that reads copied units splits the donor's weight among the copies with random shares that
    sum to one, so every output is unchanged, while the copies downstream receive different gradients and can grow
    apart in training (equal halves would keep them identical forever).
    Why: to test whether width limits the masker (docs/results.md, session 28) without a wider one started from
    scratch spending a session relearning what the donor knows.
    """
    if factor < 1:
        raise ValueError(f"widen by a factor of at least 1, not {factor}")
    cfg = donor.config
    config = dict(cfg, d_model=cfg["d_model"] * factor, heads=cfg["heads"] * factor, ffn=cfg["ffn"] * factor)
    model = LatentMasker(config)
    gen = torch.Generator().manual_seed(seed)
    d, f = cfg["d_model"], cfg["ffn"]

    def rows(w, block: int):
        """Repeats each block of `block` rows `factor` times (a [q | k | v] or [gamma | beta] layout keeps its parts)."""
        parts = w.split(block, dim=0)
        return torch.cat([p.repeat((factor,) + (1,) * (w.dim() - 1)) for p in parts], dim=0)

    def cols(w):
        """Reads copied inputs: the donor's weight split among the copies with random shares summing to one."""
        shares = torch.rand((factor,) + tuple(w.shape), generator=gen, dtype=torch.float64) + 0.5
        shares = shares / shares.sum(0, keepdim=True)
        return torch.cat([(w.double() * shares[k]).float() for k in range(factor)], dim=-1)

    state = {}
    for name, w in donor.state_dict().items():
        w = w.detach()
        leaf = name.rsplit(".", 1)[-1]
        if name in ("start_token",) or name.endswith(("norm.weight", "norm.bias")):
            state[name] = w.repeat(factor)
        elif name in ("prompt_embed.weight", "slot_embed.weight"):
            state[name] = w.repeat(1, factor)
        elif name.startswith(("input_proj.", "input_ahead.")):
            state[name] = rows(w, d)
        elif name.startswith(("mask_head.", "add_head.")):
            state[name] = cols(w) if leaf == "weight" else w.clone()
        elif name.endswith(("attn.qkv.weight", "attn.qkv.bias")) or name.startswith("film."):
            state[name] = cols(rows(w, d)) if leaf == "weight" else rows(w, d)
        elif name.endswith(("attn.out.weight", "attn.out.bias", "ffn.in.weight", "ffn.in.bias")):
            state[name] = cols(rows(w, w.shape[0])) if leaf == "weight" else rows(w, w.shape[0])
        elif name.endswith(("ffn.out.weight", "ffn.out.bias")):
            state[name] = cols(rows(w, d)) if leaf == "weight" else rows(w, d)
        else:
            raise ValueError(f"widen does not know how to widen {name}")
    model.load_state_dict(state, strict=True)
    model.set_centre(donor.centre)
    return model


def centre_fold(centre, mask_weight, mask_bias):
    """The additive head (weight, bias; float64) that carries a centre c: c + m * (z - c) = z * m + (c - c * m), and
    with m = W h + b the extra term is (-diag(c) W) h + c (1 - b). `export` adds it, `unfold_centre` takes it out."""
    c = torch.as_tensor(centre).detach().double()
    return -c[:, None] * mask_weight.detach().double(), c * (1 - mask_bias.detach().double())


def export(model: LatentMasker, path, extra: dict | None = None):
    """Writes the one-file masker read by the Swift engine (float32 tensors, config JSON in the metadata)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    config = dict(model.config)
    if model.centre is not None:
        fold_w, fold_b = centre_fold(model.centre, tensors["mask_head.weight"], tensors["mask_head.bias"])
        add_w = tensors.get("add_head.weight", torch.zeros_like(tensors["mask_head.weight"])).double()
        add_b = tensors.get("add_head.bias", torch.zeros_like(tensors["mask_head.bias"])).double()
        tensors["add_head.weight"] = (add_w + fold_w).float().contiguous()
        tensors["add_head.bias"] = (add_b + fold_b).float().contiguous()
        config["additive"] = True
    meta = {"tuss-codec.kind": "masker", "tuss-codec.format": "1",
            "tuss-codec.config": json.dumps(config, sort_keys=True)}
    for k, v in (extra or {}).items():
        meta[f"tuss-codec.{k}"] = str(v)
    save_file(tensors, str(path), metadata=meta)


def unfold_centre(donor: LatentMasker, centre, tolerance: float = 1e-4, keep_additive: bool = False) -> LatentMasker:
    """The centred masker whose export `donor` is: the same weights with the centre taken out of the additive head.

    Why: a centred run's export holds its centre folded into the additive head (see `export`), and continuing it as
    an additive masker trains a different parametrisation (the mask and the folded term then move independently).
    With `keep_additive` the returned masker keeps an additive head holding what remains (the head minus the fold),
    so any additive donor keeps its function exactly. Without it the head is dropped, and ValueError is raised when it
    is not that fold for this centre (relative error above `tolerance`): then the donor had an additive term of its
    own, was not a centred export, or was centred on another codec's silence."""
    if not donor.config.get("additive"):
        raise ValueError("the donor has no additive head, so nothing is folded into it")
    c = torch.as_tensor(centre, dtype=torch.float64)
    want_w, want_b = centre_fold(c, donor.mask_head.weight, donor.mask_head.bias)
    got_w, got_b = donor.add_head.weight.detach().double(), donor.add_head.bias.detach().double()
    config = dict(donor.config)
    if keep_additive:
        state = donor.state_dict()
        state["add_head.weight"] = (got_w - want_w).float()
        state["add_head.bias"] = (got_b - want_b).float()
    else:
        error = float(((got_w - want_w).pow(2).sum() + (got_b - want_b).pow(2).sum()).sqrt()
                      / (want_w.pow(2).sum() + want_b.pow(2).sum()).sqrt().clamp_min(1e-12))
        if error > tolerance:
            raise ValueError(f"its additive head is not the centre folded into its mask (relative error {error:.2e})")
        config.pop("additive")
        state = {k: v for k, v in donor.state_dict().items() if not k.startswith("add_head.")}
    model = LatentMasker(config)
    model.load_state_dict(state, strict=True)
    model.set_centre(c.float())
    return model


def load_exported(path) -> LatentMasker:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    if meta.get("tuss-codec.kind") != "masker":
        raise ValueError(f"{path} is not a masker file (tuss-codec.kind = {meta.get('tuss-codec.kind')})")
    model = LatentMasker(json.loads(meta["tuss-codec.config"]))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()
