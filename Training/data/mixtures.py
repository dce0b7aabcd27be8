"""On-the-fly TUSS training mixtures from the Debian audio cache (``collect.py``).

Usage (with ``Training/`` on ``sys.path``)::

    from data.mixtures import MixtureSampler, MixtureDataset, collate_mixtures
    s = MixtureSampler("Training/data/cache/index.json", "train", seconds=4.0, seed=0)
    mixture, prompts, sources = s.sample(123)      # deterministic for (seed, 123)
    # mixture: float32 [L]; prompts: list[str] of length N; sources: float32 [N, L]; sum(sources) == mixture

Mixing recipe (TUSS paper, Sec. IV-A): N ~ U{2, 3, 4} prompts from the 8 categories; <sfx> and <sfx-mix>
never together, <music-mix> never together with drums/bass/vocals/other; only speech and sfx may
repeat (distinct speakers / recordings). Each source is a random crop (short clips are joined with short
gaps or zero-padded at a random offset), RMS-normalised and scaled by a random gain (-10..0 dB, or
-20..0 dB for the *-mix categories). sfx-mix and music-mix are sometimes built on the fly as sums of
several sfx clips / all stems of one song. Instrument stems in one mixture come from the same song and
the same time offset. The mixture is the sum of the sources; the whole example is then scaled to a
random level with the mixture peak <= 0.9.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import numpy as np

CATEGORIES = ("speech", "sfx", "sfx-mix", "drums", "bass", "vocals", "other", "music-mix")
INSTRUMENTS = ("drums", "bass", "vocals", "other")
MIX_CATEGORIES = ("sfx-mix", "music-mix")
REPEATABLE = ("speech", "sfx")
TASKS = ("se", "ss", "uss", "mss", "cass")
GAIN_DB = {c: ((-20.0, 0.0) if c in MIX_CATEGORIES else (-10.0, 0.0)) for c in CATEGORIES}

# Relative weights of the categories when drawing prompts freely.
DEFAULT_PROMPT_WEIGHTS = {"speech": 3.0, "sfx": 2.0, "sfx-mix": 1.5, "drums": 1.0, "bass": 1.0,
                          "vocals": 0.7, "other": 1.0, "music-mix": 1.5}
# Probability of drawing a mixture from one of the task templates below instead of freely.
# Realistic combinations (e.g. drums + bass) are then drawn more often, as in the paper.
DEFAULT_TEMPLATE_PROB = 0.5
TEMPLATES = (
    # (weight, prompts)
    (2.0, ("speech", "sfx-mix")),
    (1.0, ("speech", "speech")),
    (1.0, ("speech", "speech", "sfx-mix")),
    (0.5, ("speech", "speech", "speech")),
    (1.0, ("sfx", "sfx")),
    (0.7, ("sfx", "sfx", "sfx")),
    (0.5, ("sfx", "sfx", "sfx", "sfx")),
    (1.5, ("drums", "bass", "vocals", "other")),
    (0.7, ("drums", "bass", "other")),
    (0.5, ("drums", "bass")),
    (0.5, ("vocals", "other")),
    (1.5, ("speech", "music-mix", "sfx-mix")),
    (0.7, ("speech", "music-mix")),
    (0.5, ("music-mix", "sfx-mix")),
    (0.5, ("speech", "sfx", "sfx")),
    (0.3, ("speech", "drums", "bass", "other")),
)


def parse_template_weights(spec: str) -> dict:
    """Parses ``"speech+sfx-mix=6,speech+speech=3"`` into ``{("speech", "sfx-mix"): 6.0, ...}``.

    Each key must name one of TEMPLATES exactly (prompts in the order written there), so a typo cannot add a template
    silently; a weight of 0 removes one.
    """
    known = {t for _, t in TEMPLATES}
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        key = tuple(name.strip().split("+"))
        if not sep or key not in known:
            names = ", ".join("+".join(t) for _, t in TEMPLATES)
            raise ValueError(f"template weight {part!r}: expected <template>=<weight> with a template among {names}")
        weight = float(value)
        if not weight >= 0:
            raise ValueError(f"template weight {part!r}: the weight must be 0 or more")
        out[key] = weight
    return out


_ARRAY_CACHE: dict = {}
_BLOCK = 4000  # 0.25 s at 16 kHz: granularity of the stem-activity map


def _load_array(path: str, preload: bool) -> np.ndarray:
    key = (os.path.realpath(path), preload)
    arr = _ARRAY_CACHE.get(key)
    if arr is None:
        arr = np.load(path, mmap_mode=None if preload else "r")
        _ARRAY_CACHE[key] = arr
    return arr


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.dot(x, x) / max(1, x.shape[-1])))


class _Pool:
    """Clips of one category in one split, with per-group lists (for joining same-speaker clips)."""

    def __init__(self, clips: list, seconds: float, sr: int):
        self.clips = clips
        self.start = np.array([c["start"] for c in clips], dtype=np.int64)
        self.length = np.array([c["length"] for c in clips], dtype=np.int64)
        dur = self.length / sr
        w = np.maximum(dur, seconds)             # long files: uniform in time; short clips: per clip
        self.p = w / w.sum() if len(w) else w
        groups: dict = {}
        for i, c in enumerate(clips):
            groups.setdefault(c["group"], []).append(i)
        self.group_names = sorted(groups)
        self.group_of = np.array([self.group_names.index(c["group"]) for c in clips]) if clips else np.zeros(0, int)
        self.group_members = [np.array(groups[g], dtype=np.int64) for g in self.group_names]

    def __len__(self):
        return len(self.clips)


class MixtureSampler:
    """Deterministic TUSS mixture generator over one split of the cache.

    Args:
        index_path: path of ``cache/index.json`` written by ``collect.py``.
        split: "train", "valid" or "eval".
        sample_rate: must equal the cache rate (16000).
        seconds: segment length.
        seed: base seed; ``sample(i)`` uses ``np.random.default_rng([seed, i])``.
        preload: load the category arrays fully into memory (default) instead of memory-mapping them.
        prompt_weights / template_prob: control how prompts are drawn (see module constants).
        template_weights: replaces the weights of some TEMPLATES (``parse_template_weights``), e.g. to draw the
            speech tasks more often in a fine-tune.
        onfly_sfx_mix_prob / onfly_music_mix_prob: chance that an sfx-mix / music-mix source is built
            on the fly from several sfx clips / all stems of a song rather than taken from a recording.
        loose_stem_prob: chance that a lone instrument prompt uses a stem clip that has no song (e.g. the
            sung Hedgewars "Singer" clips for vocals) instead of a song stem.
    """

    def __init__(self, index_path: str, split: str, sample_rate: int = 16000, seconds: float = 4.0, seed: int = 0,
                 preload: bool = True, prompt_weights: dict | None = None, template_prob: float = DEFAULT_TEMPLATE_PROB,
                 template_weights: dict | None = None, onfly_sfx_mix_prob: float = 0.7,
                 onfly_music_mix_prob: float = 0.3, loose_stem_prob: float = 0.3):
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        if int(index["sample_rate"]) != int(sample_rate):
            raise ValueError(f"cache is {index['sample_rate']} Hz, asked for {sample_rate} Hz")
        if split not in ("train", "valid", "eval"):
            raise ValueError(f"unknown split {split!r}")
        self.index_path = index_path
        self.split = split
        self.sr = int(sample_rate)
        self.seconds = float(seconds)
        self.L = int(round(self.seconds * self.sr))
        self.seed = int(seed)
        self.template_prob = float(template_prob)
        self.onfly_sfx_mix_prob = float(onfly_sfx_mix_prob)
        self.onfly_music_mix_prob = float(onfly_music_mix_prob)
        self.loose_stem_prob = float(loose_stem_prob)
        root = os.path.dirname(os.path.abspath(index_path))
        self.arrays = {c: _load_array(os.path.join(root, index["files"][c]), preload) for c in CATEGORIES
                       if c in index["files"]}
        clips = [c for c in index["clips"] if c["split"] == split]
        self.clips = clips
        # Instrument stems that belong to a song are drawn jointly; loose stems (no song) only alone.
        self.pools = {}
        for cat in CATEGORIES:
            cl = [c for c in clips if c["category"] == cat and not (cat in INSTRUMENTS and c.get("song"))]
            self.pools[cat] = _Pool(cl, self.seconds, self.sr)
        songs: dict = {}
        for c in clips:
            if c["category"] in INSTRUMENTS and c.get("song"):
                songs.setdefault(c["song"], {})[c["category"]] = c
        self.songs = [(name, stems) for name, stems in sorted(songs.items())]
        self.song_len = np.array([min(s["length"] for s in st.values()) for _, st in self.songs], dtype=np.int64)
        self.song_sets = [frozenset(st) for _, st in self.songs]
        w = dict(DEFAULT_PROMPT_WEIGHTS)
        if prompt_weights:
            w.update(prompt_weights)
        self.prompt_weights = w
        chosen = dict(template_weights or {})
        unknown = set(chosen) - {t for _, t in TEMPLATES}
        if unknown:
            raise ValueError(f"unknown templates {sorted(unknown)}")
        self._templates = [(chosen.get(t, wt), t) for wt, t in TEMPLATES
                           if chosen.get(t, wt) > 0 and self._feasible(t)]
        self._trace = None
        self._activity: dict = {}

    # ------------------------------------------------------------------ availability
    def _has_stems(self, cats: Iterable[str]) -> bool:
        need = frozenset(cats)
        if not need:
            return True
        if any(need <= s for s in self.song_sets):
            return True
        return len(need) == 1 and len(self.pools[next(iter(need))]) > 0

    def available(self, category: str) -> bool:
        if category in INSTRUMENTS:
            return self._has_stems([category])
        if category == "music-mix":
            return len(self.pools["music-mix"]) > 0 or any(len(s) >= 2 for s in self.song_sets)
        if category == "sfx-mix":
            return len(self.pools["sfx-mix"]) > 0 or len(self.pools["sfx"]) > 0
        return len(self.pools[category]) > 0

    def _feasible(self, prompts: Sequence[str]) -> bool:
        cnt = {c: prompts.count(c) for c in set(prompts)}
        if not all(self.available(c) for c in cnt):
            return False
        if cnt.get("speech", 0) > len(self.pools["speech"].group_names):
            return False
        return self._has_stems([c for c in cnt if c in INSTRUMENTS])

    # ------------------------------------------------------------------ prompts
    def _allowed(self, chosen: list, cat: str) -> bool:
        if cat in chosen and cat not in REPEATABLE:
            return False
        if (cat == "sfx" and "sfx-mix" in chosen) or (cat == "sfx-mix" and "sfx" in chosen):
            return False
        if cat == "music-mix" and any(c in INSTRUMENTS for c in chosen):
            return False
        if cat in INSTRUMENTS and "music-mix" in chosen:
            return False
        if cat in INSTRUMENTS and not self._has_stems([c for c in chosen if c in INSTRUMENTS] + [cat]):
            return False
        if cat == "speech" and chosen.count("speech") >= len(self.pools["speech"].group_names):
            return False
        return self.available(cat)

    def sample_prompts(self, rng: np.random.Generator) -> list:
        if self._templates and rng.random() < self.template_prob:
            w = np.array([t[0] for t in self._templates])
            t = self._templates[rng.choice(len(w), p=w / w.sum())][1]
            prompts = list(t)
        else:
            n = int(rng.integers(2, 5))
            prompts = []
            for _ in range(n):
                cats = [c for c in CATEGORIES if self._allowed(prompts, c)]
                if not cats:
                    break
                w = np.array([self.prompt_weights[c] for c in cats])
                prompts.append(cats[rng.choice(len(cats), p=w / w.sum())])
            if len(prompts) < 2:
                prompts = ["speech", "sfx-mix"]
        order = rng.permutation(len(prompts))
        return [prompts[i] for i in order]

    # ------------------------------------------------------------------ sources
    def _read(self, cat: str, start: int, n: int) -> np.ndarray:
        return self.arrays[cat][start:start + n].astype(np.float32)

    def _crop_clip(self, pool: _Pool, cat: str, i: int, rng, out: np.ndarray, join: bool):
        """Write clip i (cropped, padded, or joined with other clips of its group) into ``out``."""
        L = out.shape[0]
        n = int(pool.length[i])
        self._note(pool.clips[i])
        if n >= L:
            off = int(rng.integers(0, n - L + 1))
            out[:] = self._read(cat, int(pool.start[i]) + off, L)
            return
        if not join:
            pos = int(rng.integers(0, L - n + 1))
            out[pos:pos + n] = self._read(cat, int(pool.start[i]), n)
            return
        # join clips of the same group (same speaker / recording) with short gaps
        members = pool.group_members[pool.group_of[i]]
        pos = int(rng.integers(0, int(0.3 * self.sr) + 1))
        # start with a random tail of the first clip so segment boundaries vary
        first = True
        while pos < L:
            n = int(pool.length[i])
            a = int(rng.integers(0, max(1, n // 2))) if first else 0
            first = False
            take = min(n - a, L - pos)
            out[pos:pos + take] = self._read(cat, int(pool.start[i]) + a, take)
            pos += take + int(rng.integers(int(0.05 * self.sr), int(0.4 * self.sr)))
            i = int(members[rng.integers(0, len(members))])
            if pos < L:
                self._note(pool.clips[i])

    def _note(self, clip: dict):
        if self._trace is not None:
            self._trace.append(clip)

    def _single(self, cat: str, rng, L: int, exclude_groups=(), tries: int = 4) -> tuple:
        pool = self.pools[cat]
        out = np.zeros(L, np.float32)
        g = -1
        mark = len(self._trace) if self._trace is not None else 0
        p = pool.p
        if exclude_groups and len(pool.group_names) > len(exclude_groups):
            # another speaker / recording than the ones already in this mixture
            p = np.where(np.isin(pool.group_of, list(exclude_groups)), 0.0, pool.p)
            p = p / p.sum()
        for _ in range(tries):
            i = int(rng.choice(len(pool), p=p))
            g = int(pool.group_of[i])
            if self._trace is not None:
                del self._trace[mark:]   # forget the clips of a rejected (silent) attempt
            out[:] = 0.0
            self._crop_clip(pool, cat, i, rng, out, join=cat in ("speech", "vocals") or
                            (cat in ("sfx-mix", "music-mix") and rng.random() < 0.5))
            if _rms(out) > 1e-4:
                break
        return out, g

    def _song_stems(self, cats: Sequence[str], rng, L: int, tries: int = 6) -> dict:
        need = frozenset(cats)
        cand = [k for k, s in enumerate(self.song_sets) if need <= s]
        loose = len(need) == 1 and len(self.pools[next(iter(need))]) > 0
        if not cand or (loose and rng.random() < self.loose_stem_prob):  # a single loose stem category
            (cat,) = tuple(need)
            return {cat: self._single(cat, rng, L)[0]}
        w = np.maximum(self.song_len[cand], L).astype(np.float64)
        k = cand[int(rng.choice(len(cand), p=w / w.sum()))]
        stems = self.songs[k][1]
        for c in cats:
            self._note(stems[c])
        n = int(self.song_len[k])
        out = {c: np.zeros(L, np.float32) for c in cats}
        starts = self._active_starts(k, cats, L) if n >= L else None
        for _ in range(tries):
            if n >= L:
                if starts is not None and len(starts):
                    off = int(starts[rng.integers(0, len(starts))]) * _BLOCK + int(rng.integers(0, _BLOCK))
                    off = min(off, n - L)
                else:
                    off = int(rng.integers(0, n - L + 1))
                pos, take = 0, L
            else:
                off, pos, take = 0, int(rng.integers(0, L - n + 1)), n
            for c in cats:
                out[c][:] = 0.0
                out[c][pos:pos + take] = self._read(c, int(stems[c]["start"]) + off, take)
            if all(_rms(out[c]) > 1e-4 for c in cats):
                break
        return out

    def _song_activity(self, k: int) -> dict:
        """Per stem of song k: which 0.25 s blocks are active (block RMS > -60 dBFS). Memoised."""
        act = self._activity.get(k)
        if act is None:
            act = {}
            n = int(self.song_len[k]) // _BLOCK
            for c, clip in self.songs[k][1].items():
                x = self.arrays[c][clip["start"]:clip["start"] + n * _BLOCK].astype(np.float32).reshape(n, _BLOCK)
                act[c] = (x * x).mean(axis=1) > 1e-6
            self._activity[k] = act
        return act

    def _active_starts(self, k: int, cats: Sequence[str], L: int) -> np.ndarray:
        """Start blocks of windows of length L in which every requested stem is active in >= 1/4 of
        the blocks (so a drawn stem is rarely silent)."""
        act = self._song_activity(k)
        W = -(-L // _BLOCK)
        nb = len(next(iter(act.values())))
        if nb < W:
            return np.zeros(0, np.int64)
        ok = np.ones(nb - W + 1, bool)
        for c in cats:
            cs = np.concatenate([[0], np.cumsum(act[c])])
            ok &= (cs[W:] - cs[:-W]) >= max(1, W // 4)
        return np.nonzero(ok)[0]

    def _onfly_sfx_mix(self, rng, L: int) -> np.ndarray:
        k = int(rng.integers(2, 6))
        out = np.zeros(L, np.float32)
        pool = self.pools["sfx"]
        for _ in range(k):
            x = np.zeros(L, np.float32)
            i = int(rng.choice(len(pool), p=pool.p))
            self._crop_clip(pool, "sfx", i, rng, x, join=rng.random() < 0.3)
            r = _rms(x)
            if r > 1e-5:
                out += x * (10 ** (rng.uniform(-10, 0) / 20) / r)
        return out

    def _onfly_music_mix(self, rng, L: int) -> np.ndarray:
        cand = [k for k, s in enumerate(self.song_sets) if len(s) >= 2]
        k = cand[int(rng.integers(0, len(cand)))]
        # all stems of one song, same offset (the song's own balance is kept)
        name, st = self.songs[k]
        n = int(self.song_len[k])
        out = np.zeros(L, np.float32)
        if n >= L:
            off, pos, take = int(rng.integers(0, n - L + 1)), 0, L
        else:
            off, pos, take = 0, int(rng.integers(0, L - n + 1)), n
        for c, clip in st.items():
            self._note(clip)
            out[pos:pos + take] += self._read(c, int(clip["start"]) + off, take)
        return out

    def _make_source(self, cat: str, rng, used_groups: dict, L: int) -> np.ndarray:
        if cat == "sfx-mix" and (len(self.pools["sfx-mix"]) == 0 or
                                 (len(self.pools["sfx"]) > 0 and rng.random() < self.onfly_sfx_mix_prob)):
            return self._onfly_sfx_mix(rng, L)
        if cat == "music-mix" and any(len(s) >= 2 for s in self.song_sets) and (
                len(self.pools["music-mix"]) == 0 or rng.random() < self.onfly_music_mix_prob):
            return self._onfly_music_mix(rng, L)
        x, g = self._single(cat, rng, L, exclude_groups=used_groups.setdefault(cat, set()))
        used_groups[cat].add(g)
        return x

    def build(self, prompts: Sequence[str], rng: np.random.Generator, level: bool = True,
              seconds: float | None = None, trace: list | None = None):
        """Sources for a given prompt list -> (mixture [L], list(prompts), sources [N, L]).
        ``seconds`` overrides the segment length; if ``trace`` is a list, it receives one list per
        source with the index entries (clips) that source was made from."""
        prompts = list(prompts)
        L = self.L if seconds is None else int(round(seconds * self.sr))
        srcs = np.zeros((len(prompts), L), np.float32)
        inst = [c for c in prompts if c in INSTRUMENTS]
        per_source = [[] for _ in prompts]
        self._trace = [] if trace is not None else None
        stems = self._song_stems(inst, rng, L) if inst else {}
        stem_clips = list(self._trace) if trace is not None else []
        used: dict = {}
        for j, c in enumerate(prompts):
            if c in INSTRUMENTS:
                srcs[j] = stems[c]
                per_source[j] = [x for x in stem_clips if x["category"] == c] or list(stem_clips)
            else:
                if trace is not None:
                    self._trace = []
                srcs[j] = self._make_source(c, rng, used, L)
                if trace is not None:
                    per_source[j] = list(self._trace)
        self._trace = None
        if trace is not None:
            trace.extend(per_source)
        # RMS-normalise and apply the category gain
        for j, c in enumerate(prompts):
            r = _rms(srcs[j])
            lo, hi = GAIN_DB[c]
            if r > 1e-6:
                srcs[j] *= 10 ** (rng.uniform(lo, hi) / 20) / r
        mix = srcs.sum(axis=0)
        if level:
            # random overall level (mixture RMS -30..-15 dBFS), peak <= 0.9
            r = _rms(mix)
            g = 10 ** (rng.uniform(-30, -15) / 20) / max(r, 1e-8)
            peak = float(np.abs(mix).max()) * g
            if peak > 0.9:
                g *= 0.9 / peak
        else:
            peak = float(np.abs(mix).max())
            g = 0.9 / peak if peak > 0.9 else 1.0
        srcs *= g
        mix = srcs.sum(axis=0)   # exact sum of the scaled sources
        peak = float(np.abs(mix).max())
        if peak > 0.9:           # float rounding of the scaling above
            srcs *= 0.9 / peak * (1.0 - 1e-6)
            mix = srcs.sum(axis=0)
        return mix.astype(np.float32), prompts, srcs

    def _rng(self, rng_or_index) -> np.random.Generator:
        if isinstance(rng_or_index, np.random.Generator):
            return rng_or_index
        return np.random.default_rng([self.seed, int(rng_or_index)])

    def sample(self, rng_or_index):
        """One training example: (mixture float32 [L], prompts list[str], sources float32 [N, L])."""
        rng = self._rng(rng_or_index)
        return self.build(self.sample_prompts(rng), rng)

    def task_prompts(self, task: str, rng: np.random.Generator) -> list:
        if task == "se":
            return ["speech", "sfx-mix"]
        if task == "ss":
            return ["speech", "speech"] + (["sfx-mix"] if rng.random() < 0.5 else [])
        if task == "uss":
            return ["sfx"] * int(rng.integers(2, 5))
        if task == "mss":
            return ["drums", "bass", "vocals", "other"]
        if task == "cass":
            return ["speech", "music-mix", "sfx-mix"]
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")

    def sample_task(self, task: str, rng_or_index, seconds: float | None = None, trace: list | None = None):
        """One example of an evaluation task (se, ss, uss, mss, cass)."""
        rng = self._rng(rng_or_index)
        return self.build(self.task_prompts(task, rng), rng, seconds=seconds, trace=trace)

    def __repr__(self):
        return (f"MixtureSampler(split={self.split!r}, clips={len(self.clips)}, songs={len(self.songs)}, "
                f"seconds={self.seconds}, seed={self.seed})")


_DEFAULT_SAMPLERS: dict = {}


def default_index_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache", "index.json")


def sample_task(task: str, rng, sampler: MixtureSampler | None = None, split: str = "eval", seconds: float = 4.0):
    """Build one example of an evaluation task kind: 'se' (speech + sfx-mix), 'ss' (speech x2,
    sometimes + sfx-mix), 'uss' (sfx x2-4), 'mss' (drums, bass, vocals, other from one song),
    'cass' (speech, music-mix, sfx-mix). ``rng`` is a numpy Generator or an int index.
    Without ``sampler`` a (cached) sampler over ``split`` of the default cache is used."""
    if sampler is None:
        key = (split, float(seconds))
        if key not in _DEFAULT_SAMPLERS:
            _DEFAULT_SAMPLERS[key] = MixtureSampler(default_index_path(), split, seconds=seconds)
        sampler = _DEFAULT_SAMPLERS[key]
    return sampler.sample_task(task, rng)


# ---------------------------------------------------------------------------------------------
# torch wrappers
# ---------------------------------------------------------------------------------------------
try:
    import torch
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - torch is optional for the numpy sampler
    torch = None
    Dataset = IterableDataset = object


class MixtureDataset(Dataset):
    """Map-style dataset of ``length`` mixtures; item i of epoch e is ``sampler.sample`` with index
    ``e * length + i`` (call ``set_epoch`` to get fresh mixtures each epoch). Items are dicts
    ``{"mixture": [L], "sources": [N, L], "prompts": list[str]}``; use ``collate_mixtures`` in a DataLoader
    (N varies between items)."""

    def __init__(self, index_path: str, split: str = "train", length: int = 10000, sample_rate: int = 16000,
                 seconds: float = 4.0, seed: int = 0, task: str | None = None, **sampler_kw):
        self.sampler = MixtureSampler(index_path, split, sample_rate=sample_rate, seconds=seconds, seed=seed,
                                      **sampler_kw)
        self.length = int(length)
        self.task = task
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self):
        return self.length

    def __getitem__(self, i: int):
        idx = self.epoch * self.length + int(i)
        if self.task:
            mix, prompts, srcs = self.sampler.sample_task(self.task, idx)
        else:
            mix, prompts, srcs = self.sampler.sample(idx)
        return {"mixture": torch.from_numpy(mix), "sources": torch.from_numpy(srcs), "prompts": prompts}


class MixtureIterableDataset(IterableDataset):
    """Endless stream of mixtures; each DataLoader worker draws a disjoint index sequence."""

    def __init__(self, index_path: str, split: str = "train", sample_rate: int = 16000, seconds: float = 4.0,
                 seed: int = 0, start: int = 0, **sampler_kw):
        self.args = (index_path, split, sample_rate, seconds, seed, sampler_kw)
        self.start = int(start)
        self._sampler = None

    def __iter__(self):
        index_path, split, sr, seconds, seed, kw = self.args
        if self._sampler is None:
            self._sampler = MixtureSampler(index_path, split, sample_rate=sr, seconds=seconds, seed=seed, **kw)
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        i = self.start + wid
        while True:
            mix, prompts, srcs = self._sampler.sample(i)
            yield {"mixture": torch.from_numpy(mix), "sources": torch.from_numpy(srcs), "prompts": prompts}
            i += nw


def collate_mixtures(batch: list) -> dict:
    """Pad a list of items to the largest N: ``mixture`` [B, L], ``sources`` [B, Nmax, L] (zeros where
    absent), ``mask`` [B, Nmax] bool, ``prompts`` list of lists."""
    nmax = max(b["sources"].shape[0] for b in batch)
    L = batch[0]["mixture"].shape[-1]
    srcs = torch.zeros(len(batch), nmax, L)
    mask = torch.zeros(len(batch), nmax, dtype=torch.bool)
    for k, b in enumerate(batch):
        n = b["sources"].shape[0]
        srcs[k, :n] = b["sources"]
        mask[k, :n] = True
    return {"mixture": torch.stack([b["mixture"] for b in batch]), "sources": srcs, "mask": mask,
            "prompts": [b["prompts"] for b in batch]}


__all__ = ["MixtureSampler", "MixtureDataset", "MixtureIterableDataset", "collate_mixtures", "sample_task",
           "parse_template_weights", "CATEGORIES", "INSTRUMENTS", "TASKS"]
