#!/usr/bin/env python3
"""Collect real audio from installed Debian packages into a 16 kHz mono training cache.

Run after ``install_packages.sh``::

    nice -n 10 python3 Training/data/collect.py            # writes Training/data/cache/

What it does:
  1. scans the installed data packages (see ``SCANNERS``) and labels each file with one of the
     TUSS categories (speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix), a source
     package, a licence and a *group* id (speaker / song / recording: what must never be split
     across train/valid/eval);
  2. decodes every file (soundfile, or ffmpeg for G.722 and anything soundfile cannot read),
     converts it to 16 kHz mono float, trims leading/trailing silence, drops silent clips and clips
     shorter than 0.25 s, and drops exact duplicates;
  3. renders multi-stem songs from MIDI files (``render_midi.py``: drums / bass / vocals / other);
  4. assigns every group to a split (deterministic, by a hash of the group id, stratified per
     source family) and records it in ``Training/data/split.json`` (committed; existing entries are
     kept so the split never moves);
  5. writes one float16 array per category (``cache/<category>.npy``) and ``cache/index.json``.

Only numpy/scipy/soundfile and the ffmpeg / fluidsynth command line tools are needed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CACHE = os.path.join(HERE, "cache")
SPLIT_PATH = os.path.join(HERE, "split.json")
SR = 16000
MIN_SECONDS = 0.25
CATEGORIES = ["speech", "sfx", "sfx-mix", "drums", "bass", "vocals", "other", "music-mix"]
SPLITS = ("train", "valid", "eval")

# ---------------------------------------------------------------------------------------------
# Licences (checked by hand in /usr/share/doc/<pkg>/copyright; see LICENSES.md)
# ---------------------------------------------------------------------------------------------
LICENCE = {
    "tuxpaint-stamps-default": "GPL-2",
    "fillets-ng-data": "GPL-2",
    "fillets-ng-data-cs": "GPL-2",
    "asterisk-core-sounds-en-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-es-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-fr-g722": "CC-BY-SA-3.0",
    "asterisk-core-sounds-ru-g722": "CC-BY-3.0",
    "asterisk-core-sounds-it-g722": "CC-BY-3.0",
    "klettres-data": "GPL-2+",
    "hedgewars-data": "GPL-2",              # Data/Music falls under "Files: *"
    "hedgewars-data:sounds": "GFDL-1.3",    # Data/Sounds/* (voices and effects)
    "hedgewars-data:droplet": "CC-BY-SA-3.0",
    "asterisk-moh-opsound-g722": "CC-BY-SA-3.0",
    "wesnoth-1.16-music": "GPL-2+",
    "wesnoth-1.16-data": "GPL-2+",
    "fretsonfire-songs-muldjord": "CC-BY-SA-3.0",
    "fretsonfire-songs-sectoid": "MIT",
    "sonic-pi-samples": "MIT",              # files listed individually in the copyright are CC0
    "bucklespring-data": "GPL-2+",
    "openttd-openmsx": "GPL-2",
    "planetblupi-music-midi": "GPL-3+",
    "freedink-data": "Zlib",                # original Dink files; replacements: see freedink_licences()
    "lincity-ng-data": "GPL-2+",            # sound effects dual GPL / CC-BY-SA-2.0, Debian uses the GPL
    "pingus-data": "GPL-3+",
    "warzone2100-data": "GPL-2+",
}


def sonic_pi_cc0() -> set:
    """Sample names that sonic-pi-samples' copyright lists individually as CC0."""
    out, current = set(), None
    try:
        with open("/usr/share/doc/sonic-pi-samples/copyright", encoding="utf-8") as f:
            for line in f:
                if line.startswith("Files:"):
                    current = line.split(":", 1)[1].strip()
                elif line.startswith("License:") and current:
                    if line.split(":", 1)[1].strip().upper().startswith("CC0"):
                        out.add(os.path.basename(current))
                    current = None
    except OSError:
        pass
    return out


# ---------------------------------------------------------------------------------------------
# Scanners: each returns a list of source dicts
#   path, category, package, group, licence, [synthetic], [song], [note]
# ---------------------------------------------------------------------------------------------
def _src(path, category, package, group, licence=None, **kw):
    d = dict(path=path, category=category, package=package, group=group,
             licence=licence or LICENCE[package], synthetic=False, rendered=False)
    d.update(kw)
    return d


def _files(pattern):
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def _sfx_group(package, path, root):
    """Group sfx variants (foo-1.ogg, foo-2.ogg, foo_03.ogg) of one recording together."""
    rel = os.path.relpath(path, root)
    stem = re.sub(r"\.[^.]+$", "", rel)
    stem = re.sub(r"[-_ ]?\d+$", "", stem)
    return f"{package}:{stem.lower()}"


TUX_LANGS = {"fr", "ru", "ro", "ca", "bg", "es", "be", "el", "da", "lt", "nl", "pt_BR", "ml", "de",
             "it", "ja", "zh", "zh_CN", "zh_TW", "eu", "gl", "fi", "sv", "pl", "hu", "pt", "tr", "uk",
             "ko", "he", "ar", "cs", "sk", "sq", "nb", "nn", "en", "en_GB", "et", "hr", "sr", "ta"}


def scan_tuxpaint():
    pkg, root = "tuxpaint-stamps-default", "/usr/share/tuxpaint/stamps"
    out = []
    for p in _files(root + "/**/*.ogg") + _files(root + "/**/*.wav"):
        rel = os.path.relpath(p, root)
        name = os.path.basename(p)
        base = re.sub(r"(\.ogg|\.wav)+$", "", name)
        if rel.startswith("symbols/faces") or "hanukkah/dreydl" in rel:
            continue  # possibly vocal / spoken letters: ambiguous, excluded
        spoken = "_desc" in base or rel.startswith("symbols/math") or rel.startswith("symbols/alphabets")
        if spoken:
            m = re.search(r"_([a-z]{2}(?:_[A-Z]{2})?)$", base)
            lang = m.group(1) if (m and m.group(1) in TUX_LANGS) else "en"
            out.append(_src(p, "speech", pkg, f"spk:tuxpaint-{lang}", lang=lang))
        elif rel.startswith("hobbies/music/"):
            continue  # musical instrument sounds (cello, drum kit, ...) are not sfx (cf. TUSS's FSD50K filter)
        else:
            out.append(_src(p, "sfx", pkg, _sfx_group(pkg, p, root)))
    return out


def scan_fillets():
    out = []
    root = "/usr/share/games/fillets-ng"
    for p in _files(root + "/sound/*/*/*.ogg"):
        lang = os.path.basename(os.path.dirname(p))
        if len(lang) != 2:
            continue
        pkg = "fillets-ng-data-cs" if lang == "cs" else "fillets-ng-data"
        parts = os.path.basename(p).split("-")
        speaker = parts[1] if len(parts) >= 3 else "x"
        out.append(_src(p, "speech", pkg, f"spk:fillets-{lang}-{speaker}", lang=lang))
    for p in _files(root + "/sound/share/*.ogg"):
        out.append(_src(p, "sfx", "fillets-ng-data", _sfx_group("fillets-ng-data", p, root)))
    for p in _files(root + "/music/*.ogg"):
        out.append(_src(p, "music-mix", "fillets-ng-data", f"song:fillets-{os.path.basename(p)[:-4]}"))
    return out


ASTERISK_SPEAKER = {"en_US_f_Allison": "allison", "es_MX_f_Allison": "allison", "fr_CA_f_June": "june",
                    "it_IT_m_Carlo": "carlo", "ru_RU_f_IvrvoiceRU": "ivrvoice-ru"}
ASTERISK_PKG = {"en_US_f_Allison": "en", "es_MX_f_Allison": "es", "fr_CA_f_June": "fr",
                "it_IT_m_Carlo": "it", "ru_RU_f_IvrvoiceRU": "ru"}


def scan_asterisk():
    out = []
    for voice, spk in ASTERISK_SPEAKER.items():
        pkg = f"asterisk-core-sounds-{ASTERISK_PKG[voice]}-g722"
        for p in _files(f"/usr/share/asterisk/sounds/{voice}/**/*.g722"):
            rel = os.path.relpath(p, f"/usr/share/asterisk/sounds/{voice}")
            if rel.startswith("silence") or re.search(r"(tone|beep)", rel):
                continue
            out.append(_src(p, "speech", pkg, f"spk:asterisk-{spk}", lang=voice[:2]))
    for p in _files("/usr/share/asterisk/moh/*.g722"):
        out.append(_src(p, "music-mix", "asterisk-moh-opsound-g722", f"song:moh-{os.path.basename(p)[:-5]}"))
    return out


def scan_klettres():
    out = []
    for p in _files("/usr/share/klettres/*/*/*.ogg"):
        lang = p.split("/")[4]
        out.append(_src(p, "speech", "klettres-data", f"spk:klettres-{lang}", lang=lang))
    return out


def scan_hedgewars():
    out = []
    root = "/usr/share/games/hedgewars/Data"
    for d in sorted(glob.glob(root + "/Sounds/voices/*")):
        voice = os.path.basename(d)
        if voice in ASTERISK_SPEAKER:
            group = f"spk:asterisk-{ASTERISK_SPEAKER[voice]}"
        else:
            group = f"spk:hedgewars-{voice.lower()}"
        # The "Singer" pack is sung; everything else is spoken (shouted) game voice lines.
        cat = "vocals" if voice == "Singer" else "speech"
        for p in _files(d + "/*.ogg"):
            out.append(_src(p, cat, "hedgewars-data", group, licence=LICENCE["hedgewars-data:sounds"]))
    for p in _files(root + "/Sounds/*.ogg"):
        name = os.path.basename(p)
        if name.startswith("ride_of_the_valkyries") or re.match(r"^\d[A-G]\.ogg$", name):
            continue  # music snippet / piano notes, not sfx
        lic = LICENCE["hedgewars-data:droplet"] if name.startswith("Droplet") else LICENCE["hedgewars-data:sounds"]
        out.append(_src(p, "sfx", "hedgewars-data", _sfx_group("hedgewars-data", p, root), licence=lic))
    for p in _files(root + "/Music/*.ogg"):
        out.append(_src(p, "music-mix", "hedgewars-data", f"song:hedgewars-{os.path.basename(p)[:-4].lower()}"))
    return out


def scan_wesnoth():
    out = []
    root = "/usr/share/games/wesnoth/1.16"
    for p in _files(root + "/data/core/music/*.ogg"):
        out.append(_src(p, "music-mix", "wesnoth-1.16-music", f"song:wesnoth-{os.path.basename(p)[:-4]}"))
    for p in _files(root + "/data/core/sounds/**/*.ogg") + _files(root + "/data/core/sounds/**/*.wav") \
            + _files(root + "/sounds/*.wav") + _files(root + "/sounds/*.ogg") \
            + _files(root + "/data/campaigns/*/sounds/*.ogg"):
        cat = "sfx-mix" if "/sounds/ambient/" in p else "sfx"
        out.append(_src(p, cat, "wesnoth-1.16-data", _sfx_group("wesnoth-1.16-data", p, root)))
    return out


def scan_fretsonfire():
    """Two-stem songs: guitar.ogg (lead guitar = 'other') + song.ogg (the rest of the band).
    The full mix (guitar + rest) is stored as music-mix; the guitar alone as an 'other' stem."""
    out = []
    for pkg in ("fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid"):
        who = pkg.rsplit("-", 1)[1]
        for d in sorted(glob.glob(f"/usr/share/games/fretsonfire/data/songs/{who}/*/")):
            g, s = os.path.join(d, "guitar.ogg"), os.path.join(d, "song.ogg")
            if not (os.path.exists(g) and os.path.exists(s)):
                continue
            song = f"song:fof-{who}-{os.path.basename(d.rstrip('/')).lower().replace(' ', '_')}"
            out.append(_src(g, "other", pkg, song, song=song, stem="other"))
            out.append(_src(s, "music-mix", pkg, song, song=song, add=g, note="guitar.ogg + song.ogg"))
    return out


def scan_sonic_pi():
    out = []
    cc0 = sonic_pi_cc0()
    for p in _files("/usr/share/sonic-pi/samples/*.flac"):
        name = os.path.basename(p)
        prefix = name.split("_")[0]
        lic = "CC0" if name in cc0 else LICENCE["sonic-pi-samples"]
        if prefix in ("ambi", "misc", "vinyl", "glitch"):
            cat = "sfx"
        elif prefix == "loop" and re.search(r"(amen|break|compus|safari|tabla|industrial|garzul|mika|mehackit)", name):
            cat = "drums"  # drum loops: a one-stem 'song'
        else:
            continue  # single instrument hits (bd_, sn_, bass_, elec_, drum_, perc_, tabla_, guit_...)
        grp = f"sonic-pi:{name[:-5]}"
        kw = dict(song=grp, stem="drums") if cat == "drums" else {}
        out.append(_src(p, cat, "sonic-pi-samples", grp, licence=lic, **kw))
    return out


def scan_bucklespring():
    # One keyboard recorded in one session: a single group.
    return [_src(p, "sfx", "bucklespring-data", "bucklespring:keyboard")
            for p in _files("/usr/share/buckle/wav/*.wav")]


def freedink_licences() -> dict:
    """Per-file licences of FreeDink's free replacement files, from README-REPLACEMENTS.txt.gz: each
    entry starts with "- <file>"; the replacement's "+License:" line applies, else the entry's last
    "License:" line. Files in the "Files from Wesnoth" section are GPL-2+."""
    import gzip
    out, names, wesnoth, plus = {}, [], False, set()
    try:
        with gzip.open("/usr/share/doc/freedink-data/README-REPLACEMENTS.txt.gz", "rt", encoding="utf-8",
                       errors="replace") as f:
            for line in f:
                if line.startswith("Files from Wesnoth"):
                    wesnoth = True
                if line.startswith("- "):
                    names = [n.strip(" ,").lower() for n in line[2:].split("(")[0].split()]
                    for n in names:
                        out[n] = "GPL-2+" if wesnoth else out.get(n, "see README-REPLACEMENTS")
                    continue
                t = line.strip()
                if names and "License:" in t and not t.startswith("-"):
                    lic = t.split("License:", 1)[1].strip()
                    for n in names:
                        if t.startswith("+") or n not in plus:
                            out[n] = lic
                        if t.startswith("+"):
                            plus.add(n)
    except OSError:
        pass
    return out


def scan_freedink():
    """FreeDink: sound effects (wav/ogg). Its MIDI songs are rendered by render_midi.py."""
    out = []
    lic = freedink_licences()
    root = "/usr/share/games/dink/dink/Sound"
    for p in _files(root + "/*.wav"):
        name = os.path.basename(p).lower()
        out.append(_src(p, "sfx", "freedink-data", _sfx_group("freedink-data", p, root),
                        licence=lic.get(name, LICENCE["freedink-data"])))
    return out


def scan_lincity():
    out = []
    root = "/usr/share/games/lincity-ng"
    for p in _files(root + "/sounds/*.wav") + _files(root + "/sounds/*.ogg"):
        out.append(_src(p, "sfx", "lincity-ng-data", _sfx_group("lincity-ng-data", p, root)))
    for p in _files(root + "/music/*/*.ogg"):
        out.append(_src(p, "music-mix", "lincity-ng-data", f"song:lincity-{os.path.basename(p)[:-4].lower()}"))
    return out


def scan_pingus():
    root = "/usr/share/games/pingus/data/sounds"
    return [_src(p, "sfx", "pingus-data", _sfx_group("pingus-data", p, root)) for p in _files(root + "/*.wav")]


WZ_ARCHIVE = "/usr/share/games/warzone2100/base.wz"
WZ_SFX_DIRS = ("audio/sfx/", "audio/multi/", "audio/radclick/")


def scan_warzone():
    """Warzone 2100 base.wz (a zip): voice messages / tutorial / taunts (speech) and sound effects.
    Clips inside the archive are addressed as '<archive>!<member>'."""
    import zipfile
    out = []
    if not os.path.exists(WZ_ARCHIVE):
        return out
    with zipfile.ZipFile(WZ_ARCHIVE) as z:
        members = sorted(i.filename for i in z.infolist() if i.filename.lower().endswith((".ogg", ".wav")))
    for m in members:
        path = f"{WZ_ARCHIVE}!{m}"
        if m.startswith(WZ_SFX_DIRS):
            if m.endswith("silence.ogg"):
                continue
            out.append(_src(path, "sfx", "warzone2100-data", "warzone2100:" + re.sub(r"[-_]?\d*\.ogg$", "", m)))
        elif m.startswith("audio/nexus/"):
            continue  # processed robot voice + laughs: neither clean speech nor plain sfx
        else:
            m2 = re.match(r"audio/taunts/(taunt\d)/", m)
            group = f"spk:warzone2100-{m2.group(1)}" if m2 else "spk:warzone2100-voice"
            out.append(_src(path, "speech", "warzone2100-data", group))
    return out


SCANNERS = [scan_tuxpaint, scan_fillets, scan_asterisk, scan_klettres, scan_hedgewars, scan_wesnoth,
            scan_fretsonfire, scan_sonic_pi, scan_bucklespring, scan_freedink, scan_lincity, scan_pingus,
            scan_warzone]


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------
def _ffmpeg_decode(path: str) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if path.endswith(".g722"):
        cmd += ["-f", "g722"]
    cmd += ["-i", path, "-ac", "1", "-ar", str(SR), "-f", "f32le", "-"]
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


_PREDECODED: dict = {}


def batch_decode_g722(paths, batch: int = 100) -> None:
    """Decode many G.722 files with one ffmpeg process per ``batch`` files (one input and one output
    per file, so every file is decoded independently; spawning ffmpeg per file is far slower)."""
    import tempfile
    for b0 in range(0, len(paths), batch):
        part = paths[b0:b0 + batch]
        with tempfile.TemporaryDirectory() as td:
            cmd = ["ffmpeg", "-nostdin", "-v", "error"]
            for p in part:
                cmd += ["-f", "g722", "-i", p]
            for k in range(len(part)):
                cmd += ["-map", f"{k}:a", "-ac", "1", "-ar", str(SR), "-f", "f32le", os.path.join(td, f"{k}.raw")]
            subprocess.run(cmd, check=True)
            for k, p in enumerate(part):
                _PREDECODED[p] = np.fromfile(os.path.join(td, f"{k}.raw"), dtype="<f4").astype(np.float32)


def to_16k_mono(x: np.ndarray, sr: int) -> np.ndarray:
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = np.asarray(x, dtype=np.float32)
    if sr != SR:
        fr = Fraction(SR, sr)
        x = resample_poly(x, fr.numerator, fr.denominator).astype(np.float32)
    return x


def _read_member(path: str) -> bytes:
    import zipfile
    archive, member = path.split("!", 1)
    with zipfile.ZipFile(archive) as z:
        return z.read(member)


def decode(path: str) -> np.ndarray:
    if path in _PREDECODED:
        return _PREDECODED.pop(path)
    if "!" in path:  # a member of a zip archive
        import io
        x, sr = sf.read(io.BytesIO(_read_member(path)), dtype="float32", always_2d=False)
        return to_16k_mono(x, sr)
    if path.endswith(".g722"):
        return _ffmpeg_decode(path)
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=False)
    except Exception:
        return _ffmpeg_decode(path)
    return to_16k_mono(x, sr)


def trim_silence(x: np.ndarray, rel_db: float = 50.0, floor_db: float = -70.0, margin: float = 0.05):
    """Trim leading/trailing frames quieter than max(peak-frame - rel_db, floor_db)."""
    hop = SR // 100
    n = len(x) // hop
    if n < 2:
        return x
    e = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    db = 10 * np.log10(e + 1e-12)
    thr = max(db.max() - rel_db, floor_db)
    on = np.nonzero(db > thr)[0]
    if len(on) == 0:
        return x[:0]
    m = int(margin * SR)
    a = max(0, on[0] * hop - m)
    b = min(len(x), (on[-1] + 1) * hop + m)
    return x[a:b]


def is_silent(x: np.ndarray) -> bool:
    return len(x) == 0 or float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) < 1e-4 or float(np.abs(x).max()) < 1e-3


def load_source(src: dict):
    """Decode one source; returns (audio float32 or None, reason)."""
    try:
        x = decode(src["path"])
        if src.get("add"):
            y = decode(src["add"])
            n = max(len(x), len(y))
            x = np.pad(x, (0, n - len(x))) + np.pad(y, (0, n - len(y)))
    except Exception as e:  # noqa: BLE001 - report and skip undecodable files
        return None, f"decode error: {e}"
    x = np.nan_to_num(x)
    # stems of one song must stay sample-aligned: never trim them
    if not src.get("song"):
        x = trim_silence(x)
    if len(x) < MIN_SECONDS * SR:
        return None, "short"
    if is_silent(x):
        return None, "silent"
    return x, "ok"


def _load_worker(src):
    x, why = load_source(src)
    if x is not None:
        x = x.astype(np.float16)
    return x, why


# ---------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------
def _h(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8")).hexdigest()


def assign_splits(group_family: dict, group_dur: dict, existing: dict, eval_frac=0.1, valid_frac=0.1) -> dict:
    """Deterministic split by group. Groups already in ``existing`` (split.json) keep their split.
    New groups are visited in the order of sha1(group id) within their family (source package / kind);
    a group joins eval while eval holds less than ``eval_frac`` of the family's duration and the group
    does not push it over 1.5x that target, then valid likewise; the rest is train. A family of >= 3
    groups whose groups are all too large still gets its smallest group(s) in eval and valid."""
    out = {g: s for g, s in existing.items() if g in group_family}
    fams = {}
    for g, fam in group_family.items():
        fams.setdefault(fam, []).append(g)
    for fam, groups in sorted(fams.items()):
        new = sorted((g for g in groups if g not in out), key=_h)
        if not new:
            continue
        total = sum(group_dur[g] for g in groups)
        have = {sp: sum(group_dur[g] for g in groups if out.get(g) == sp) for sp in SPLITS}
        count = {sp: sum(out.get(g) == sp for g in groups) for sp in SPLITS}
        for sp, frac in (("eval", eval_frac), ("valid", valid_frac)):
            target = frac * total
            if len(groups) < 3:
                break
            for g in new:
                if g in out:
                    continue
                if have[sp] >= target:
                    break
                if have[sp] + group_dur[g] <= 1.5 * target:
                    out[g] = sp
                    have[sp] += group_dur[g]
                    count[sp] += 1
            if count[sp] == 0:
                rest = sorted((g for g in new if g not in out), key=lambda g: (group_dur[g], _h(g)))
                if len(rest) >= 2:
                    out[rest[0]] = sp
                    have[sp] += group_dur[rest[0]]
                    count[sp] += 1
        for g in new:
            out.setdefault(g, "train")
    return out


def family_of(src: dict) -> str:
    pkg = src["package"]
    if src.get("family"):
        return src["family"]
    if src["group"].startswith("spk:asterisk"):
        return "asterisk-speakers"
    if pkg.startswith("fillets-ng-data") and src["category"] == "speech":
        return "fillets-speech-" + src.get("lang", "")
    if pkg.startswith("fretsonfire"):
        return "fretsonfire"
    if src.get("rendered"):
        return "midi-songs"
    return f"{pkg}:{src['category']}"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def _reuse_key(src: dict):
    st = os.stat(src["path"].split("!", 1)[0])
    return (src["path"], src["category"], src.get("add") or "", int(st.st_size), int(st.st_mtime))


def previous_cache(cache_dir: str) -> dict:
    """Decoded audio of an existing cache, keyed like ``_reuse_key`` (files unchanged since)."""
    ip = os.path.join(cache_dir, "index.json")
    if not os.path.exists(ip):
        return {}
    with open(ip, encoding="utf-8") as f:
        index = json.load(f)
    if index.get("version") != 1 or "source_keys" not in index:
        return {}
    arrays = {c: np.load(os.path.join(cache_dir, fn), mmap_mode="r") for c, fn in index["files"].items()}
    out = {}
    for c, key in zip(index["clips"], index["source_keys"]):
        if c.get("rendered") or key is None:
            continue
        out[tuple(key)] = (np.array(arrays[c["category"]][c["start"]:c["start"] + c["length"]]), "ok")
    return out


def build(cache_dir: str, jobs: int, with_midi: bool, verbose: bool = True, reuse: bool = True):
    t0 = time.time()
    os.makedirs(cache_dir, exist_ok=True)
    sources = []
    for scan in SCANNERS:
        found = scan()
        if verbose:
            print(f"[scan] {scan.__name__}: {len(found)} files", flush=True)
        sources += found
    # the same file reached twice (symlinks) is read once
    seen, uniq = set(), []
    for s in sources:
        fs_path, _, member = s["path"].partition("!")
        rp = os.path.realpath(fs_path) + ("!" + member if member else "")
        if rp in seen or not os.path.exists(fs_path):
            continue
        seen.add(rp)
        uniq.append(s)
    sources = uniq
    if verbose:
        print(f"[scan] {len(sources)} unique files, decoding with {jobs} process(es)...", flush=True)

    audio, dropped = [], {}
    res = {}
    if reuse:
        old = previous_cache(cache_dir)
        for s in sources:
            k = _reuse_key(s)
            if k in old:
                res[id(s)] = old[k]
        if verbose and res:
            print(f"[decode] reusing {len(res)} clips from the previous cache", flush=True)
    todo = [s for s in sources if id(s) not in res]
    g722 = [s for s in todo if s["path"].endswith(".g722")]
    other = [s for s in todo if not s["path"].endswith(".g722")]
    batch_decode_g722([s["path"] for s in g722])
    res.update((id(s), _load_worker(s)) for s in g722)
    if verbose:
        print(f"[decode] {len(g722)} G.722 files decoded ({time.time() - t0:.0f}s)", flush=True)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            res.update(zip(map(id, other), ex.map(_load_worker, other, chunksize=16)))
    else:
        res.update((id(s), _load_worker(s)) for s in other)
    results = [res[id(s)] for s in sources]
    hashes = set()
    kept = []
    for s, (x, why) in zip(sources, results):
        if x is None:
            dropped[why.split(":")[0]] = dropped.get(why.split(":")[0], 0) + 1
            continue
        hsh = hashlib.md5(x.tobytes()).hexdigest()
        if hsh in hashes:
            dropped["duplicate"] = dropped.get("duplicate", 0) + 1
            continue
        hashes.add(hsh)
        kept.append(s)
        audio.append(x)
    if verbose:
        print(f"[decode] kept {len(kept)} clips, dropped {dropped} ({time.time() - t0:.0f}s)", flush=True)

    if with_midi:
        sys.path.insert(0, HERE)
        import render_midi  # noqa: E402
        for s, x in render_midi.render_all(os.path.join(cache_dir, "render"), verbose=verbose, jobs=jobs):
            kept.append(s)
            audio.append(x.astype(np.float16))

    # ---- split
    existing = {}
    if os.path.exists(SPLIT_PATH):
        with open(SPLIT_PATH, encoding="utf-8") as f:
            existing = json.load(f)["groups"]
    fam, gdur = {}, {}
    for s, x in zip(kept, audio):
        fam.setdefault(s["group"], family_of(s))
        if s["category"] not in ("music-mix",) or not s.get("song"):
            gdur[s["group"]] = gdur.get(s["group"], 0.0) + len(x) / SR
        else:
            gdur.setdefault(s["group"], 0.0)
    split = assign_splits(fam, gdur, existing)
    check_split_consistency(kept, split)

    # ---- write category arrays + index
    clips, offsets, source_keys = [], {c: 0 for c in CATEGORIES}, []
    per_cat = {c: [] for c in CATEGORIES}
    order = sorted(range(len(kept)), key=lambda i: (kept[i]["category"], kept[i]["group"], kept[i]["path"],
                                                    kept[i].get("stem", "")))
    for i in order:
        s, x = kept[i], audio[i]
        c = s["category"]
        clip = dict(id=len(clips), category=c, package=s["package"],
                    path=s["path"], group=s["group"], split=split[s["group"]],
                    start=offsets[c], length=int(len(x)), duration=round(len(x) / SR, 3),
                    licence=s["licence"], synthetic=bool(s.get("synthetic")), rendered=bool(s.get("rendered")))
        for k in ("song", "stem", "lang", "note"):
            if s.get(k):
                clip[k] = s[k]
        offsets[c] += len(x)
        per_cat[c].append(x)
        clips.append(clip)
        source_keys.append(None if s.get("rendered") else list(_reuse_key(s)))
    # Arrays get a fresh name per build and the index is replaced atomically afterwards, so a reader
    # never combines a new index with old arrays (or the reverse); old arrays are removed at the end.
    files, tag = {}, hashlib.sha1(json.dumps([c["path"] + c["category"] for c in clips]).encode()
                                  + str(time.time()).encode()).hexdigest()[:8]
    for c in CATEGORIES:
        arr = np.concatenate(per_cat[c]) if per_cat[c] else np.zeros(0, np.float16)
        fn = f"{c}-{tag}.npy"
        with open(os.path.join(cache_dir, fn + ".tmp"), "wb") as f:
            np.save(f, arr.astype(np.float16))
        os.replace(os.path.join(cache_dir, fn + ".tmp"), os.path.join(cache_dir, fn))
        files[c] = fn
    index = dict(version=1, sample_rate=SR, dtype="float16", files=files, categories=CATEGORIES,
                 clips=clips, source_keys=source_keys, created_by="Training/data/collect.py")
    tmp = os.path.join(cache_dir, "index.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=0)
    os.replace(tmp, os.path.join(cache_dir, "index.json"))
    for fn in os.listdir(cache_dir):
        if fn.endswith(".npy") and fn not in files.values():
            os.remove(os.path.join(cache_dir, fn))

    with open(SPLIT_PATH, "w", encoding="utf-8") as f:
        json.dump({"note": "group id -> split; written by Training/data/collect.py, entries are never moved",
                   "groups": dict(sorted(split.items()))}, f, indent=1)
        f.write("\n")
    if verbose:
        print(summary(clips))
        print(f"[done] {len(clips)} clips in {time.time() - t0:.0f}s -> {cache_dir}/index.json")
    return index


def check_split_consistency(clips, split):
    by_group = {}
    for s in clips:
        g = s["group"]
        if g not in split:
            raise AssertionError(f"group {g} has no split")
        if split[g] not in SPLITS:
            raise AssertionError(f"group {g}: bad split {split[g]}")
        by_group.setdefault(g, set()).add(split[g])
    bad = [g for g, ss in by_group.items() if len(ss) > 1]
    if bad:
        raise AssertionError(f"groups in several splits: {bad[:5]}")


def summary(clips) -> str:
    tab = {}
    for c in clips:
        k = (c["category"], c["split"])
        tab[k] = tab.get(k, 0.0) + c["duration"] / 3600
    lines = [f"{'category':10s} " + " ".join(f"{s:>8s}" for s in SPLITS) + "   total(h)"]
    for cat in CATEGORIES:
        row = [tab.get((cat, s), 0.0) for s in SPLITS]
        lines.append(f"{cat:10s} " + " ".join(f"{v:8.3f}" for v in row) + f"   {sum(row):8.3f}")
    return "\n".join(lines)


def package_table(clips) -> str:
    """Hours per source package and category (markdown)."""
    tab, pk = {}, set()
    for c in clips:
        tab[(c["package"], c["category"])] = tab.get((c["package"], c["category"]), 0.0) + c["duration"] / 3600
        pk.add(c["package"])
    lines = ["| package | " + " | ".join(CATEGORIES) + " | total |", "|---" * (len(CATEGORIES) + 2) + "|"]
    for p in sorted(pk):
        row = [tab.get((p, c), 0.0) for c in CATEGORIES]
        lines.append(f"| {p} | " + " | ".join(f"{v:.3f}" if v else "" for v in row) + f" | {sum(row):.3f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-midi", action="store_true", help="skip rendering MIDI songs into stems")
    ap.add_argument("--no-reuse", action="store_true", help="decode everything again (ignore the old cache)")
    ap.add_argument("--summary", action="store_true", help="print hours per category/split/package of the "
                    "existing cache and exit")
    args = ap.parse_args(argv)
    if args.summary:
        with open(os.path.join(args.cache, "index.json"), encoding="utf-8") as f:
            clips = json.load(f)["clips"]
        print(summary(clips))
        print()
        print(package_table(clips))
        return
    build(args.cache, args.jobs, with_midi=not args.no_midi, reuse=not args.no_reuse)


if __name__ == "__main__":
    main()
