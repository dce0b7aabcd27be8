"""BSS Eval source criteria (SDR, SIR, SAR; 512-tap distortion filters) for the training recipes' validation.

The same computation as the engine's `BSSEval` (Sources/TussAudio/BSSEval.swift), so a recipe's validation SIR and
`tuss-codec eval`'s agree: each reference scaled to unit energy, the Gram matrix of every reference's delays 0 … L−1
from FFT correlations in float64, a Cholesky factor with a diagonal load of 1e-10 of its mean diagonal, and the
criteria from the energies of the nested projections (never forming them). The definitions are mir_eval's
`bss_eval_sources`; Training/tests/test_bss_eval.py checks the committed fixture made with it.

Where the engine returns nil (every reference silent, references shorter than the filter, a Gram matrix that stays
indefinite), this raises ValueError; it has no length limit (the recipes score seconds, not songs).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

CAP = 100.0


def _ratio(num: float, den: float) -> float:
    if num <= 0:
        return -CAP
    if den <= 0:
        return CAP
    return float(np.clip(10 * np.log10(num / den), -CAP, CAP))


def _cholesky(gram: np.ndarray):
    mean = float(np.trace(gram)) / len(gram)
    load = 1e-10
    while load <= 1e-6:
        try:
            return cho_factor(gram + load * mean * np.eye(len(gram)), lower=True)
        except np.linalg.LinAlgError:
            load *= 100
    return None


class BSSEval:
    """Scores estimates against fixed references; `criteria(estimate)` gives one (sdr, sir, sar) per reference."""

    def __init__(self, references, filter_length: int = 512):
        n = min(len(r) for r in references)                      # the shortest sets the length, as in the engine
        refs = np.stack([np.asarray(r, dtype=np.float64)[:n] for r in references])
        self.n = n
        self.length = filter_length
        if self.n < filter_length:
            raise ValueError(f"references of {self.n} samples are shorter than the {filter_length}-tap filter")
        self.fft = 1 << int(np.ceil(np.log2(self.n + filter_length - 1)))
        energy = (refs**2).sum(1)
        self.slot = []
        spectra = []
        for r, e in zip(refs, energy):
            self.slot.append(len(spectra) if e > 1e-20 else None)
            if e > 1e-20:
                spectra.append(np.fft.rfft(r / np.sqrt(e), self.fft))
        if not spectra:
            raise ValueError("every reference is silent")
        self.spectra = spectra
        k, l = len(spectra), filter_length
        gram = np.zeros((k * l, k * l))
        lags = np.arange(l)
        for a in range(k):
            for b in range(a, k):
                c = self._correlation(spectra[a], spectra[b])          # c[k + l - 1] = sum_u s_a(u + k) s_b(u)
                block = c[(lags[None, :] - lags[:, None]) + l - 1]       # [tau, sigma] = c_ab(sigma - tau)
                gram[a * l:(a + 1) * l, b * l:(b + 1) * l] = block
                gram[b * l:(b + 1) * l, a * l:(a + 1) * l] = block.T
        self.all = _cholesky(gram)
        self.own = [_cholesky(gram[a * l:(a + 1) * l, a * l:(a + 1) * l]) for a in range(k)]
        if self.all is None or any(f is None for f in self.own):
            raise ValueError("the references' Gram matrix is not positive definite even with a diagonal load")

    def _correlation(self, x, y):
        full = np.fft.irfft(x * np.conj(y), self.fft)
        l = self.length
        return np.concatenate([full[-(l - 1):], full[:l]]) if l > 1 else full[:1]

    def criteria(self, estimate):
        """[(sdr, sir, sar) or None per reference]: None for a silent reference; a silent estimate scores
        (-100, None, None); SIR is None when only one reference is audible."""
        est = np.zeros(self.n)
        given = np.asarray(estimate, dtype=np.float64)[: self.n]
        est[: len(given)] = given
        energy = float((est**2).sum())
        if not np.isfinite(energy) or energy <= 1e-20:          # NaN scores as silent, as in the engine
            return [None if s is None else (-CAP, None, None) for s in self.slot]
        e = np.fft.rfft(est, self.fft)
        l, k = self.length, len(self.spectra)
        rhs = np.concatenate([self._correlation(e, s)[l - 1:] for s in self.spectra])
        spanned = float(np.clip(rhs @ cho_solve(self.all, rhs), 0, energy))
        out = []
        for s in self.slot:
            if s is None:
                out.append(None)
                continue
            part = rhs[s * l:(s + 1) * l]
            projected = float(np.clip(part @ cho_solve(self.own[s], part), 0, spanned))
            out.append((_ratio(projected, energy - projected),
                        _ratio(projected, spanned - projected) if k > 1 else None,
                        _ratio(spanned, energy - spanned)))
        return out
