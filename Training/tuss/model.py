"""PyTorch implementation of the TUSS separation model (task-aware unified source separation).

Written from the architecture description in shared/docs/reference-models.md (section A). The module tree
reproduces the official state-dict key names (without the Lightning prefix ``model.``), e.g.

    separator.sos_token
    separator.cross_prompt_module.<i>.<freq_path|frame_path>.ffn.<j>.conv1d.weight
    separator.cond_tse_module.<i>.<...>.attn.rope.freqs
    separator.band_split_module.band_split_module.<b>.<0|1>.{weight,bias}
    separator.band_split_module.bandwise_decoding_module.<b>.<0|1|3|5>.{weight,bias}
    separator.prompts.<name>

so official checkpoints load with ``strict=True``.

The model is built from a config dict with the official ``hparams.yaml`` schema (``encoder_conf``, ``decoder_conf``,
``model_conf``, ``variance_normalization``). Extension for non-48 kHz models: ``model_conf.band_edges`` is an explicit
list of FFT-bin edges ``[0, ..., n_fft/2+1]``; without it the official 48 kHz band rule is used.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

OFFICIAL_PROMPTS = ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"]

# Aliases used by the data pipeline (category names of the paper) -> official prompt keys.
PROMPT_ALIASES = {"sfx-mix": "sfxbg", "music-mix": "musicbg", "sfx_mix": "sfxbg", "music_mix": "musicbg",
                  "other-inst": "other"}


def canonical_prompt(name: str) -> str:
    return PROMPT_ALIASES.get(name, name)


# ---------------------------------------------------------------------------------------------------------------------
# Band layout
# ---------------------------------------------------------------------------------------------------------------------


def official_band_edges(sample_rate: int, n_fft: int) -> List[int]:
    """Band edges (FFT-bin indices) from the official band rule (BS-RoFormer style).

    For each frequency range the number of bands is ceil(range / (bins_per_band * Hz_per_bin)), with
    Hz_per_bin = (sample_rate // 2) / n_freq (n_freq = n_fft/2 + 1). The remaining bins are split into 4 bands
    at 48 kHz (the last one taking the remainder) and into 2 bands otherwise.
    """
    n_freq = n_fft // 2 + 1
    hz_per_bin = (sample_rate // 2) / n_freq
    rules = [(0, 1000, 2), (1000, 2000, 4), (2000, 4000, 12), (4000, 8000, 24), (8000, 16000, 48)]
    widths: List[int] = []
    for lo, hi, bins in rules:
        n_bands = math.ceil((hi - lo) / (bins * hz_per_bin))
        widths += [bins] * n_bands
    rest = n_freq - sum(widths)
    if rest < 0:
        raise ValueError(f"official band rule does not fit sample_rate={sample_rate}, n_fft={n_fft}; give band_edges")
    if sample_rate == 48000:
        widths += [rest // 4, rest // 4, rest // 4, rest // 4 + rest % 4]
    else:
        widths += [rest // 2, rest - rest // 2]
    widths = [w for w in widths if w > 0]
    edges = [0]
    for w in widths:
        edges.append(edges[-1] + w)
    return edges


def band_edges_from_config(config: dict) -> List[int]:
    mc = config["model_conf"]
    n_fft = int(config["encoder_conf"]["fft_size"])
    if mc.get("band_edges") is not None:
        edges = [int(e) for e in mc["band_edges"]]
    else:
        edges = official_band_edges(int(mc["sample_rate"]), int(mc.get("stft_size", n_fft)))
    n_freq = n_fft // 2 + 1
    if edges[0] != 0 or edges[-1] != n_freq or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"band_edges must increase strictly from 0 to {n_freq}: {edges}")
    return edges


# ---------------------------------------------------------------------------------------------------------------------
# STFT front end (variance normalisation, sqrt periodic Hann, official padding)
# ---------------------------------------------------------------------------------------------------------------------


class STFTFrontEnd:
    """STFT / iSTFT with the official padding, generalised to any n_fft / hop.

    Padding: n_fft/2 zeros in front, n_fft/2 + ((-L) mod hop) zeros at the end, then frames without centering:
    T = ceil(L / hop) + 1 frames. iSTFT: windowed overlap-add divided by the summed squared window, dropping
    n_fft/2 samples at both ends, giving hop * (T - 1) = hop * ceil(L / hop) samples.
    """

    def __init__(self, n_fft: int, hop: int, win_length: Optional[int] = None):
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.win_length = int(win_length or n_fft)
        if self.win_length != self.n_fft:
            raise ValueError("only window_length == fft_size is supported")
        self._window_cache: Dict[tuple, torch.Tensor] = {}

    def window(self, device, dtype) -> torch.Tensor:
        key = (str(device), dtype)
        w = self._window_cache.get(key)
        if w is None:
            w = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).sqrt().to(device=device, dtype=dtype)
            self._window_cache[key] = w
        return w

    def pad_amount(self, length: int):
        half = self.n_fft // 2
        return half, half + ((-length) % self.hop)

    def num_frames(self, length: int) -> int:
        return -(-length // self.hop) + 1

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L) real -> (B, T, F) complex."""
        front, back = self.pad_amount(x.shape[-1])
        xp = F.pad(x, (front, back))
        spec = torch.stft(
            xp,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.n_fft,
            window=self.window(x.device, x.dtype),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # (B, F, T)
        return spec.transpose(-1, -2)

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        """spec (..., T, F) complex -> (..., hop * (T - 1)) real."""
        lead = spec.shape[:-2]
        s = spec.reshape((-1,) + spec.shape[-2:]).transpose(-1, -2)  # (B', F, T)
        real_dtype = torch.float64 if s.dtype == torch.complex128 else torch.float32
        y = torch.istft(
            s,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.n_fft,
            window=self.window(s.device, real_dtype),
            center=True,
            normalized=False,
            onesided=True,
        )
        return y.reshape(lead + y.shape[-1:])


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------------


class RMSGroupNorm(nn.Module):
    """Group-wise RMS normalisation over the last axis; eps is added to the RMS (outside the sqrt); no bias."""

    def __init__(self, num_groups: int, dim: int, eps: float = 1e-5):
        super().__init__()
        if dim % num_groups != 0:
            raise ValueError(f"dim {dim} not divisible by num_groups {num_groups}")
        self.num_groups = num_groups
        self.dim = dim
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        shape = x32.shape
        xg = x32.reshape(shape[:-1] + (self.num_groups, self.dim // self.num_groups))
        rms = xg.pow(2).mean(dim=-1, keepdim=True).sqrt()
        y = (xg / (rms + self.eps)).reshape(shape) * self.gamma
        return y.to(dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding with interleaved pairs (dims 2p, 2p+1), theta_p = 10000^(-2p/dim)."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.register_buffer("freqs", freqs)
        self._cache: Dict[tuple, tuple] = {}

    def cos_sin(self, length: int, device, dtype):
        key = (length, str(device), dtype, self.freqs.data_ptr(), self.freqs._version)
        hit = self._cache.get(key)
        if hit is None:
            pos = torch.arange(length, device=device, dtype=torch.float32)
            ang = pos[:, None] * self.freqs.float()[None, :]  # (L, dim/2)
            ang = ang.repeat_interleave(2, dim=-1)  # (L, dim): a0 a0 a1 a1 ...
            hit = (ang.cos().to(dtype), ang.sin().to(dtype))
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., L, dim): rotate each interleaved pair by pos * theta_p."""
        cos, sin = self.cos_sin(x.shape[-2], x.device, x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + rot * sin


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, emb_dim: int, attention_dim: int, n_heads: int):
        super().__init__()
        if attention_dim % n_heads != 0:
            raise ValueError("attention_dim must be divisible by n_heads")
        self.n_heads = n_heads
        self.head_dim = attention_dim // n_heads
        self.attention_dim = attention_dim
        self.rope = RotaryEmbedding(self.head_dim)
        self.qkv = nn.Linear(emb_dim, 3 * attention_dim, bias=False)
        self.aggregate_heads = nn.Sequential(nn.Linear(attention_dim, emb_dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) -> (B, L, D)."""
        b, length, _ = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, L, dh)
        q = self.rope(q)
        k = self.rope(k)
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.transpose(1, 2).reshape(b, length, self.attention_dim)
        return self.aggregate_heads(y)


class SwiGLUConvDeconv1d(nn.Module):
    """Conv1d -> SwiGLU -> ConvTranspose1d along the sequence; pads k-1 on both sides and crops back."""

    def __init__(self, dim: int, dim_inner: int, conv1d_kernel: int = 4, conv1d_shift: int = 1):
        super().__init__()
        if conv1d_shift != 1:
            raise ValueError("only conv1d_shift == 1 is supported")
        self.kernel = conv1d_kernel
        self.diff = conv1d_kernel - conv1d_shift
        self.conv1d = nn.Conv1d(dim, dim_inner * 2, conv1d_kernel, stride=conv1d_shift)
        self.deconv1d = nn.ConvTranspose1d(dim_inner, dim, conv1d_kernel, stride=conv1d_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) -> (B, L, D).

        Computed channels-last as GEMMs (same arithmetic as pad(k-1) -> Conv1d -> SwiGLU -> ConvTranspose1d ->
        crop [k-1, k-1+L)): h[j] = b1 + sum_m W1[:, :, m] x[j+m-(k-1)] for j in [0, L+k-1) (unfolded input);
        y[t] = b2 + sum_kappa W2[:, :, kappa]^T g[t+k-1-kappa] for t in [0, L) (project once, then shift-add).
        """
        k = self.kernel
        w1 = self.conv1d.weight  # (2Hd, D, k)
        w2 = self.deconv1d.weight  # (Hd, D, k)
        if k == 1:
            h = F.linear(x, w1[:, :, 0], self.conv1d.bias)
            u, g = h.chunk(2, dim=-1)
            return F.linear(u * F.silu(g), w2[:, :, 0].t(), self.deconv1d.bias)
        b, length, d = x.shape
        xp = F.pad(x, (0, 0, k - 1, k - 1))  # (B, L+2(k-1), D)
        xw = xp.unfold(1, k, 1)  # (B, L+k-1, D, k) window m = 0..k-1
        h = F.linear(xw.reshape(b, length + k - 1, d * k), w1.reshape(w1.shape[0], d * k), self.conv1d.bias)
        u, g = h.chunk(2, dim=-1)
        g = u * F.silu(g)  # (B, L+k-1, Hd)
        proj = torch.matmul(g, w2.reshape(w2.shape[0], d * k)).view(b, length + k - 1, d, k)
        y = proj[:, k - 1 : k - 1 + length, :, 0]
        for kappa in range(1, k):
            y = y + proj[:, k - 1 - kappa : k - 1 - kappa + length, :, kappa]
        return y + self.deconv1d.bias


class LocoformerBlock(nn.Module):
    """Macaron block along the last-but-one axis: x + FFN[1], x + MHSA, x + FFN[0] (pre-norm, no final norm)."""

    def __init__(self, emb_dim, attention_dim, n_heads, num_groups, ffn_config, eps=1e-5):
        super().__init__()
        confs = list(reversed(ffn_config))  # official: ModuleLists are built from the reversed config list
        self.ffn_norm = nn.ModuleList([RMSGroupNorm(num_groups, emb_dim, eps) for _ in confs])
        self.ffn = nn.ModuleList([SwiGLUConvDeconv1d(emb_dim, **c["conf"]) for c in confs])
        self.attn_norm = RMSGroupNorm(num_groups, emb_dim, eps)
        self.attn = MultiHeadSelfAttention(emb_dim, attention_dim, n_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, S1, S2, D), sequence axis S2."""
        b, s1, s2, d = x.shape
        h = x.reshape(b * s1, s2, d)
        h = h + self.ffn[1](self.ffn_norm[1](h))
        h = h + self.attn(self.attn_norm(h))
        h = h + self.ffn[0](self.ffn_norm[0](h))
        return h.view(b, s1, s2, d)


class TFLocoformerBlock(nn.Module):
    def __init__(self, conf: dict, eps: float = 1e-5):
        super().__init__()
        if conf.get("tf_order", "ft") != "ft":
            raise ValueError("only tf_order 'ft' is supported")
        common = dict(
            emb_dim=conf["emb_dim"],
            attention_dim=conf["attention_dim"],
            n_heads=conf["n_heads"],
            num_groups=conf["num_groups"],
            eps=eps,
        )
        self.freq_path = LocoformerBlock(ffn_config=conf["freq_ffn_config"], **common)
        self.frame_path = LocoformerBlock(ffn_config=conf["frame_ffn_config"], **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last x (B, S, K, D) -> (B, S, K, D): frequency path (over K) then frame path (over S).

        (The official tensor layout is (B, D, S, K); only the memory order differs.)
        """
        h = self.freq_path(x)
        h = self.frame_path(h.transpose(1, 2).contiguous())  # (B, K, S, D)
        return h.transpose(1, 2).contiguous()


def _group_norm_cl(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """GroupNorm(1) per band on channels-last x (B, T, nb, C): stats over (T, C) for each (B, band)."""
    mu = x.mean(dim=(1, 3), keepdim=True)
    xc = x - mu
    var = xc.pow(2).mean(dim=(1, 3), keepdim=True)
    return xc * torch.rsqrt(var + eps) * weight + bias  # weight/bias (nb, C)


class BandSplitModule(nn.Module):
    """Band-split encoder (GroupNorm(1) + 1x1 conv per band) and band-wise mask decoder.

    Parameters live in per-band nn.Sequential modules (official key names); the forward pass stacks them and
    runs equal-width bands together as batched matmuls (identical arithmetic, far fewer kernel launches).
    """

    def __init__(self, band_edges: Sequence[int], emb_dim: int, hidden_mult: int = 4, eps: float = 1e-5):
        super().__init__()
        self.band_edges = [int(e) for e in band_edges]
        widths = [b - a for a, b in zip(self.band_edges, self.band_edges[1:])]
        self.widths = widths
        self.eps = eps
        d = emb_dim
        self.band_split_module = nn.ModuleList(
            [nn.Sequential(nn.GroupNorm(1, 2 * w, eps=eps), nn.Conv1d(2 * w, d, 1)) for w in widths]
        )
        self.bandwise_decoding_module = nn.ModuleList(
            [
                nn.Sequential(
                    nn.GroupNorm(1, d, eps=eps),
                    nn.Conv1d(d, hidden_mult * d, 1),
                    nn.Tanh(),
                    nn.Conv1d(hidden_mult * d, hidden_mult * d, 1),
                    nn.Tanh(),
                    nn.Conv1d(hidden_mult * d, 4 * w, 1),
                    nn.GLU(dim=1),
                )
                for w in widths
            ]
        )
        # runs of consecutive bands with equal width: (first band, last band + 1, width, first bin)
        self.groups = []
        k = 0
        while k < len(widths):
            j = k
            while j < len(widths) and widths[j] == widths[k]:
                j += 1
            self.groups.append((k, j, widths[k], self.band_edges[k]))
            k = j

    def encode(self, spec_ri: torch.Tensor) -> torch.Tensor:
        """spec_ri (B, T, F, 2) -> channels-last (B, T, K, D). Band channel layout c = 2*i + r (interleaved Re/Im)."""
        b, t = spec_ri.shape[:2]
        outs = []
        for k0, k1, w, lo in self.groups:
            nb = k1 - k0
            x = spec_ri[:, :, lo : lo + nb * w, :].reshape(b, t, nb, 2 * w)
            mods = self.band_split_module[k0:k1]
            gw = torch.stack([m[0].weight for m in mods])  # (nb, 2w)
            gb = torch.stack([m[0].bias for m in mods])
            x = _group_norm_cl(x, gw, gb, self.eps)
            cw = torch.stack([m[1].weight[:, :, 0] for m in mods])  # (nb, D, 2w)
            cb = torch.stack([m[1].bias for m in mods])  # (nb, D)
            outs.append(torch.einsum("btkc,kdc->btkd", x, cw) + cb)
        return torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z channels-last (B', T, K, D) -> mask (B', T, F, 2) [Re, Im]; band output channel layout c = r*n_b + i."""
        mods = self.bandwise_decoding_module
        nw = torch.stack([m[0].weight for m in mods])  # (K, D)
        nbias = torch.stack([m[0].bias for m in mods])
        h = _group_norm_cl(z, nw, nbias, self.eps)
        w1 = torch.stack([m[1].weight[:, :, 0] for m in mods])  # (K, 4D, D)
        b1 = torch.stack([m[1].bias for m in mods])
        h = torch.tanh(torch.einsum("btkd,kod->btko", h, w1) + b1)
        w3 = torch.stack([m[3].weight[:, :, 0] for m in mods])
        b3 = torch.stack([m[3].bias for m in mods])
        h = torch.tanh(torch.einsum("btkd,kod->btko", h, w3) + b3)
        bp, t = h.shape[:2]
        outs = []
        for k0, k1, w, _ in self.groups:
            sub = mods[k0:k1]
            w5 = torch.stack([m[5].weight[:, :, 0] for m in sub])  # (nb, 4w, 4D)
            b5 = torch.stack([m[5].bias for m in sub])
            o = torch.einsum("btkd,kod->btko", h[:, :, k0:k1], w5) + b5  # (B', T, nb, 4w)
            o = F.glu(o, dim=-1)  # (B', T, nb, 2w): [Re bins | Im bins]
            outs.append(o.unflatten(-1, (2, w)).transpose(-1, -2).reshape(bp, t, (k1 - k0) * w, 2))
        return torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]


class TussModel(nn.Module):
    def __init__(self, model_conf: dict, band_edges: Sequence[int], eps: float = 1e-5):
        super().__init__()
        cp_conf = model_conf["conf_cross_prompt_module"]
        tse_conf = model_conf["conf_cond_tse_module"]
        d = int(cp_conf["emb_dim"])
        if int(tse_conf["emb_dim"]) != d:
            raise ValueError("cross-prompt and cond-TSE emb_dim must match")
        self.emb_dim = d
        self.use_sos_token = bool(model_conf.get("use_sos_token", True))
        if not self.use_sos_token:
            raise ValueError("use_sos_token false is not supported")
        # registration order follows the official state dict
        self.sos_token = nn.Parameter(torch.randn(d, 1, 1))
        self.cross_prompt_module = nn.ModuleList(
            [TFLocoformerBlock(cp_conf, eps) for _ in range(int(model_conf["nblocks_cross_prompt_module"]))]
        )
        self.cond_tse_module = nn.ModuleList(
            [TFLocoformerBlock(tse_conf, eps) for _ in range(int(model_conf["nblocks_cond_tse_module"]))]
        )
        self.band_split_module = BandSplitModule(band_edges, d, eps=eps)
        self.prompts = nn.ParameterDict({name: nn.Parameter(torch.randn(d, 1, 1)) for name in model_conf["prompts"]})

    def prompt_tokens(self, prompts: List[List[str]], k: int) -> torch.Tensor:
        """-> channels-last (B, N, K, D)."""
        rows = [torch.stack([self.prompts[canonical_prompt(p)].view(-1) for p in plist]) for plist in prompts]
        return torch.stack(rows, 0)[:, :, None, :].expand(-1, -1, k, -1)

    def forward(self, spec: torch.Tensor, prompts: List[List[str]], intermediates: Optional[dict] = None):
        """spec (B, T, F) complex -> separated spectra (B, N, T, F) complex.

        intermediates (optional dict) receives official-layout tensors: bandsplit (B, D, T, K), cross_out
        (B, D, N+1+T, K), tse_out (B*N, D, T, K), mask (B, N, T, F) complex.
        """
        b, t, _ = spec.shape
        n = len(prompts[0])
        if any(len(p) != n for p in prompts):
            raise ValueError("all batch items need the same number of prompts")
        z = self.band_split_module.encode(torch.view_as_real(spec))  # (B, T, K, D)
        k = z.shape[2]
        if intermediates is not None:
            intermediates["bandsplit"] = z.permute(0, 3, 1, 2)
        p = self.prompt_tokens(prompts, k)
        sos = self.sos_token.view(1, 1, 1, -1).expand(b, 1, k, -1)
        h = torch.cat([p, sos, z], dim=1)  # (B, N+1+T, K, D)
        for block in self.cross_prompt_module:
            h = block(h)
        if intermediates is not None:
            intermediates["cross_out"] = h.permute(0, 3, 1, 2)
        pv = h[:, :n].unsqueeze(2)  # (B, N, 1, K, D)
        feats = h[:, n + 1 :].unsqueeze(1)  # (B, 1, T, K, D)
        h = (feats * pv).reshape(b * n, t, k, self.emb_dim)
        for block in self.cond_tse_module:
            h = block(h)
        if intermediates is not None:
            intermediates["tse_out"] = h.permute(0, 3, 1, 2)
        m = self.band_split_module.decode(h).float()  # (B*N, T, F, 2)
        mask = torch.view_as_complex(m.contiguous()).view(b, n, t, -1)
        if intermediates is not None:
            intermediates["mask"] = mask
        return mask * spec.unsqueeze(1)


class SeparationModel(nn.Module):
    """Waveform-in / waveform-out wrapper: variance normalisation, STFT, TUSS separator, iSTFT."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = normalize_config(config)
        enc = self.config["encoder_conf"]
        dec = self.config["decoder_conf"]
        if enc["fft_size"] != dec["fft_size"] or enc["hop_length"] != dec["hop_length"]:
            raise ValueError("encoder and decoder STFT settings must match")
        if enc.get("window_type", "sqrt_hann") != "sqrt_hann" or enc.get("normalize") not in (None, False):
            raise ValueError("only the sqrt_hann window without normalisation is supported")
        self.stft_frontend = STFTFrontEnd(enc["fft_size"], enc["hop_length"], enc.get("window_length"))
        self.variance_normalization = bool(self.config.get("variance_normalization", True))
        self.band_edges = band_edges_from_config(self.config)
        self.separator = TussModel(self.config["model_conf"], self.band_edges)

    @property
    def sample_rate(self) -> int:
        return int(self.config["model_conf"]["sample_rate"])

    @property
    def prompt_names(self) -> List[str]:
        return list(self.config["model_conf"]["prompts"])

    def forward(
        self,
        mixture: torch.Tensor,
        prompts: Union[List[str], List[List[str]]],
        trim: bool = True,
        intermediates: Optional[dict] = None,
    ) -> torch.Tensor:
        """mixture (B, L) or (L,); prompts: list of names (shared) or one list per batch item.

        Returns (B, N, L) when trim (our convention) or (B, N, hop*ceil(L/hop)) when not (official length).
        """
        squeeze = mixture.dim() == 1
        x = mixture[None] if squeeze else mixture
        if len(prompts) > 0 and isinstance(prompts[0], str):
            prompts = [list(prompts)] * x.shape[0]
        length = x.shape[-1]
        if self.variance_normalization:
            std = x.std(dim=-1, keepdim=True) + 1e-8
            x = x / std
        spec = self.stft_frontend.stft(x)
        if intermediates is not None:
            intermediates["stft"] = spec
        y_spec = self.separator(spec, prompts, intermediates)
        y = self.stft_frontend.istft(y_spec)  # (B, N, L')
        if self.variance_normalization:
            y = y * std.unsqueeze(1)
        if trim:
            y = y[..., :length]
        return y[0] if squeeze else y


# ---------------------------------------------------------------------------------------------------------------------
# Config helpers
# ---------------------------------------------------------------------------------------------------------------------


def normalize_config(config: dict) -> dict:
    """Deep copy with the keys the model uses; fills band_edges when absent (so exports are self-contained)."""
    cfg = copy.deepcopy(config)
    for key in ("encoder_conf", "decoder_conf", "model_conf"):
        if key not in cfg:
            raise ValueError(f"config lacks {key}")
    cfg.setdefault("variance_normalization", True)
    mc = cfg["model_conf"]
    mc.setdefault("use_sos_token", True)
    mc.setdefault("stft_size", cfg["encoder_conf"]["fft_size"])
    return cfg


def config_with_band_edges(config: dict) -> dict:
    cfg = normalize_config(config)
    cfg["model_conf"]["band_edges"] = band_edges_from_config(cfg)
    return cfg


def load_yaml_config(path) -> dict:
    import yaml

    with open(path) as f:
        raw = yaml.safe_load(f)
    keep = ("encoder_name", "encoder_conf", "decoder_name", "decoder_conf", "model_name", "model_conf",
            "variance_normalization", "css_conf")
    return {k: raw[k] for k in keep if k in raw}


def strip_prefix(state: dict, prefix: str = "model.") -> dict:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_official_checkpoint(model: SeparationModel, path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model.load_state_dict(strip_prefix(state), strict=True)


def load_exported(path, device="cpu") -> SeparationModel:
    """Load a one-file model written by export.py."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("tuss-codec.kind") != "tuss":
        raise ValueError(f"{path}: not a tuss-codec TUSS model (kind={meta.get('tuss-codec.kind')})")
    config = json.loads(meta["tuss-codec.config"])
    model = SeparationModel(config)
    model.load_state_dict(load_file(str(path), device=device), strict=True)
    return model.eval()


def grow_from(model: SeparationModel, donor: SeparationModel) -> list[str]:
    """Loads a donor that differs only by having fewer cross-prompt or cond-TSE blocks, so that `model` computes
    exactly the donor's function.

    The donor's blocks fill the first slots of each stack; every extra block becomes an identity: the output
    projections of its attention (`attn.aggregate_heads.0`) and of both FFNs (`ffn.<j>.deconv1d`) are zero, so each
    of its residual branches adds nothing. Training then grows the new blocks from there, which keeps everything the
    donor learned instead of starting a larger model from scratch (the 2-core budget cannot afford that).
    Returns the names of the parameters the donor did not provide. Raises ValueError on any other difference.
    """
    def without_depth(config: dict) -> dict:
        c = copy.deepcopy(config)
        for key in ("nblocks_cross_prompt_module", "nblocks_cond_tse_module"):
            c["model_conf"].pop(key, None)
        return c

    if without_depth(model.config) != without_depth(donor.config):
        raise ValueError("the donor's config differs in more than the number of blocks")
    for key in ("nblocks_cross_prompt_module", "nblocks_cond_tse_module"):
        if int(donor.config["model_conf"][key]) > int(model.config["model_conf"][key]):
            raise ValueError(f"the donor has more blocks ({key} = {donor.config['model_conf'][key]}) than this model")
    from growth import load_grown  # Training/ is on sys.path for every entry point

    return load_grown(model, donor, lambda name: ".attn.aggregate_heads." in name or ".deconv1d." in name)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
