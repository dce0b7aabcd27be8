"""PyTorch implementation of the DAC neural audio codec (conv encoder, residual VQ, conv decoder).

Written from shared/docs/reference-models.md section C. Module names reproduce the official state-dict keys
(``encoder.block.<n>...``, ``quantizer.quantizers.<i>.{in_proj,out_proj,codebook}``, ``decoder.model.<n>...``) with
old-style weight norm (``weight_g``, ``weight_v``, ``bias``), so official ``weights.pth`` files load with strict=True.

Config = the official ``metadata.kwargs``: encoder_dim, encoder_rates, latent_dim, decoder_dim, decoder_rates,
n_codebooks, codebook_size, codebook_dim, quantizer_dropout, sample_rate.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class _WNConvBase(nn.Module):
    """Weight-normed convolution: W = g * v / ||v|| with the norm over every axis but 0 (no eps)."""

    def __init__(self, v_shape, g_len, bias_len):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(g_len, 1, 1))
        self.weight_v = nn.Parameter(torch.empty(v_shape))
        self.bias = nn.Parameter(torch.zeros(bias_len))

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        norm = v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
        return self.weight_g * v / norm

    def _init(self, fan_in):
        # PyTorch's default conv init, then g = ||v|| (what weight_norm does on wrapping)
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt())


class WNConv1d(_WNConvBase):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__((cout, cin, kernel_size), cout, cout)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self._init(cin * kernel_size)

    def forward(self, x):
        return F.conv1d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(_WNConvBase):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__((cin, cout, kernel_size), cin, cout)
        self.stride, self.padding = stride, padding
        self._init(cout * kernel_size)

    def forward(self, x):
        return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding)


class Snake1d(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x):
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


class ResidualUnit(nn.Module):
    def __init__(self, dim, dilation=1):
        super().__init__()
        pad = ((7 - 1) * dilation) // 2
        self.block = nn.Sequential(
            Snake1d(dim), WNConv1d(dim, dim, 7, dilation=dilation, padding=pad), Snake1d(dim), WNConv1d(dim, dim, 1)
        )

    def forward(self, x):
        y = self.block(x)
        trim = (x.shape[-1] - y.shape[-1]) // 2
        if trim > 0:
            x = x[..., trim:-trim]
        return x + y


class EncoderBlock(nn.Module):
    def __init__(self, dim, stride):
        super().__init__()
        half = dim // 2
        self.block = nn.Sequential(
            ResidualUnit(half, 1), ResidualUnit(half, 3), ResidualUnit(half, 9), Snake1d(half),
            WNConv1d(half, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x):
        return self.block(x)


class Encoder(nn.Module):
    def __init__(self, d_model, strides, latent_dim):
        super().__init__()
        layers: List[nn.Module] = [WNConv1d(1, d_model, 7, padding=3)]
        for s in strides:
            d_model *= 2
            layers.append(EncoderBlock(d_model, s))
        layers += [Snake1d(d_model), WNConv1d(d_model, latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(cin), WNConvTranspose1d(cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            ResidualUnit(cout, 1), ResidualUnit(cout, 3), ResidualUnit(cout, 9),
        )

    def forward(self, x):
        return self.block(x)


class Decoder(nn.Module):
    def __init__(self, latent_dim, channels, rates):
        super().__init__()
        layers: List[nn.Module] = [WNConv1d(latent_dim, channels, 7, padding=3)]
        for i, r in enumerate(rates):
            layers.append(DecoderBlock(channels // 2 ** i, channels // 2 ** (i + 1), r))
        out = channels // 2 ** len(rates)
        layers += [Snake1d(out), WNConv1d(out, 1, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class VectorQuantize(nn.Module):
    """Factorised VQ: project to codebook_dim, cosine-similarity lookup, project back (raw codeword)."""

    def __init__(self, input_dim, codebook_size, codebook_dim):
        super().__init__()
        self.in_proj = WNConv1d(input_dim, codebook_dim, 1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)
        # Training-only switch (not part of the state dict, off by default as in DAC): compute the commitment and
        # codebook losses between L2-normalised vectors, the space the lookup works in. Tried against codebook
        # collapse; the cause there was the bias initialisation (train_codec.zero_biases), not these losses.
        self.normalized_losses = False

    def lookup(self, z_e):
        """z_e (B, d, T) -> codes (B, T) by max cosine similarity."""
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]), dim=1)
        cb = F.normalize(self.codebook.weight, dim=1)
        dist = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ cb.t() + cb.pow(2).sum(1, keepdim=True).t()
        return (-dist).argmax(1).view(z_e.shape[0], z_e.shape[2])

    def decode_code(self, codes):
        return self.codebook(codes).transpose(1, 2)  # (B, d, T)

    def forward(self, z):
        z_e = self.in_proj(z)
        codes = self.lookup(z_e)
        z_q = self.decode_code(codes)
        a, b = (F.normalize(z_e, dim=1), F.normalize(z_q, dim=1)) if self.normalized_losses else (z_e, z_q)
        commitment = F.mse_loss(a, b.detach(), reduction="none").mean([1, 2])
        codebook_loss = F.mse_loss(b, a.detach(), reduction="none").mean([1, 2])
        z_q = z_e + (z_q - z_e).detach()  # straight-through
        return self.out_proj(z_q), commitment, codebook_loss, codes, z_e


class ResidualVectorQuantize(nn.Module):
    def __init__(self, input_dim, n_codebooks, codebook_size, codebook_dim, quantizer_dropout=0.0):
        super().__init__()
        self.n_codebooks = n_codebooks
        self.codebook_dim = codebook_dim
        self.codebook_size = codebook_size
        self.quantizer_dropout = float(quantizer_dropout)
        self.quantizers = nn.ModuleList(
            [VectorQuantize(input_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)]
        )

    def forward(self, z, n_quantizers: Optional[int] = None):
        """Returns z_q, codes (B, nq, T), latents (B, nq*d, T), commitment loss, codebook loss."""
        b = z.shape[0]
        nq_total = self.n_codebooks
        if n_quantizers is None:
            n_quantizers = nq_total
        if self.training and self.quantizer_dropout > 0:
            per_item = torch.full((b,), nq_total, device=z.device)
            dropout = torch.randint(1, nq_total + 1, (b,), device=z.device)
            k = int(b * self.quantizer_dropout)
            per_item[:k] = dropout[:k]
        else:
            per_item = torch.full((b,), n_quantizers, device=z.device)
        z_q = torch.zeros_like(z)
        residual = z
        commitment = z.new_zeros(())
        codebook_loss = z.new_zeros(())
        codes, latents = [], []
        for i, q in enumerate(self.quantizers):
            if not self.training and i >= n_quantizers:
                break
            zq_i, c_l, cb_l, codes_i, z_e_i = q(residual)
            mask = (i < per_item).to(z.dtype)
            z_q = z_q + zq_i * mask[:, None, None]
            residual = residual - zq_i
            commitment = commitment + (c_l * mask).mean()
            codebook_loss = codebook_loss + (cb_l * mask).mean()
            codes.append(codes_i)
            latents.append(z_e_i)
        return z_q, torch.stack(codes, 1), torch.cat(latents, 1), commitment, codebook_loss

    def from_codes(self, codes):
        """codes (B, nq, T) -> z_q = sum_i out_proj_i(codebook_i[codes_i])."""
        z_q = 0.0
        for i in range(codes.shape[1]):
            q = self.quantizers[i]
            z_q = z_q + q.out_proj(q.decode_code(codes[:, i]))
        return z_q


class DAC(nn.Module):
    def __init__(self, encoder_dim=64, encoder_rates=(2, 4, 8, 8), latent_dim=None, decoder_dim=1536,
                 decoder_rates=(8, 8, 4, 2), n_codebooks=9, codebook_size=1024, codebook_dim=8,
                 quantizer_dropout=False, sample_rate=44100):
        super().__init__()
        if latent_dim is None:
            latent_dim = encoder_dim * 2 ** len(encoder_rates)
        self.kwargs = dict(encoder_dim=encoder_dim, encoder_rates=list(encoder_rates), latent_dim=latent_dim,
                           decoder_dim=decoder_dim, decoder_rates=list(decoder_rates), n_codebooks=n_codebooks,
                           codebook_size=codebook_size, codebook_dim=codebook_dim,
                           quantizer_dropout=quantizer_dropout, sample_rate=sample_rate)
        self.sample_rate = sample_rate
        self.hop_length = int(math.prod(encoder_rates))
        self.encoder = Encoder(encoder_dim, encoder_rates, latent_dim)
        self.quantizer = ResidualVectorQuantize(latent_dim, n_codebooks, codebook_size, codebook_dim,
                                                float(quantizer_dropout))
        self.decoder = Decoder(latent_dim, decoder_dim, decoder_rates)

    def preprocess(self, audio):
        """(B, 1, L) -> right-padded to a multiple of the hop."""
        pad = (-audio.shape[-1]) % self.hop_length
        return F.pad(audio, (0, pad))

    def encode(self, audio, n_quantizers: Optional[int] = None):
        z = self.encoder(self.preprocess(audio))
        z_q, codes, latents, commitment, codebook_loss = self.quantizer(z, n_quantizers)
        return z, z_q, codes, latents, commitment, codebook_loss

    def decode(self, z):
        return self.decoder(z)

    def forward(self, audio, n_quantizers: Optional[int] = None):
        length = audio.shape[-1]
        z, z_q, codes, latents, commitment, codebook_loss = self.encode(audio, n_quantizers)
        y = self.decode(z_q)[..., :length]
        return {"audio": y, "z": z, "z_q": z_q, "codes": codes, "latents": latents,
                "vq/commitment_loss": commitment, "vq/codebook_loss": codebook_loss}


def load_official(path) -> DAC:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = DAC(**ckpt["metadata"]["kwargs"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
