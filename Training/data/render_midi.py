#!/usr/bin/env python3
"""Render multi-stem songs (drums / bass / vocals / other) from MIDI files shipped in Debian packages.

Every note of a MIDI file is routed to exactly one stem:
  * drums  - MIDI channel 10 (index 9);
  * bass   - notes played while the channel's General MIDI program is 32-39 (the bass family) or 43
             (contrabass), plus channels that clearly play a bass line with another program (mean pitch
             <= A2, mostly monophonic; see ``pick_bass_lines``);
  * vocals - the song's lead melody line (the most singable monophonic channel, see ``pick_melody``),
             re-voiced with GM program 53 "Voice Oohs" (a sampled human voice); songs without such a line
             get their most prominent mid-range part re-voiced as GM 52 "Choir Aahs" (``pick_choir``).
             This stem is *synthetic* (flagged in the index);
  * other  - everything else.
Controllers, pitch bends, tempo and other meta events are kept in every stem file, so each note is
rendered exactly as in the full arrangement; a note-off always goes to the stem of its note-on. Each stem
is rendered separately by fluidsynth with the FluidR3 GM soundfont (fluid-soundfont-gm) at 16 kHz, and
the song's mix is defined as the sum of its stems (so the stems sum exactly to the mix).

A tiny MIDI reader/writer is implemented here (no third-party MIDI library needed).
"""
from __future__ import annotations

import glob
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

SR = 16000
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
VOICE_PROGRAM = 53  # GM "Voice Oohs" (0-based)
CHOIR_PROGRAM = 52  # GM "Choir Aahs"
STEMS = ("drums", "bass", "vocals", "other")
MIDI_SOURCES = [
    # (package, glob, licence)
    ("openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx/*.mid", "GPL-2"),
    ("planetblupi-music-midi", "/usr/share/planetblupi/music/*.mid", "GPL-3+"),
    ("freedink-data", "/usr/share/games/dink/dink/Sound/*.mid", None),  # per file, see midi_licence()
]


def midi_licence(pkg: str, path: str, default):
    if default:
        return default
    if pkg == "freedink-data":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from collect import freedink_licences  # noqa: E402
        return freedink_licences().get(os.path.basename(path).lower(), "Zlib")
    return "see /usr/share/doc/" + pkg + "/copyright"
RENDER_VERSION = "4"
MAX_SECONDS = 300.0  # some game MIDI files loop for ~28 minutes: render only their first 5 minutes


# ---------------------------------------------------------------------------------------------
# MIDI reading / writing
# ---------------------------------------------------------------------------------------------
def _read_varlen(data: bytes, pos: int):
    value = 0
    while True:
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def read_midi(path: str):
    """Returns (format, division, tracks); a track is a list of (abs_tick, kind, payload) where kind is
    'ch' (payload = status byte + data bytes, running status expanded), 'meta' or 'sysex' (raw bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"MThd":
        # RIFF-wrapped MIDI (RMID)
        k = data.find(b"MThd")
        if k < 0:
            raise ValueError(f"{path}: not a MIDI file")
        data = data[k:]
    hlen = struct.unpack(">I", data[4:8])[0]
    fmt, ntrk, division = struct.unpack(">HHH", data[8:14])
    pos = 8 + hlen
    tracks = []
    while pos + 8 <= len(data) and len(tracks) < ntrk:
        cid, clen = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        pos += 8
        chunk = data[pos:pos + clen]
        pos += clen
        if cid != b"MTrk":
            continue
        ev, p, tick, status = [], 0, 0, 0
        while p < len(chunk):
            delta, p = _read_varlen(chunk, p)
            tick += delta
            b = chunk[p]
            if b == 0xFF:
                mtype = chunk[p + 1]
                ln, q = _read_varlen(chunk, p + 2)
                ev.append((tick, "meta", bytes(chunk[p:q + ln])))
                p = q + ln
                if mtype == 0x2F:
                    break
                continue
            if b in (0xF0, 0xF7):
                ln, q = _read_varlen(chunk, p + 1)
                ev.append((tick, "sysex", bytes(chunk[p:q + ln])))
                p = q + ln
                continue
            if b & 0x80:
                status = b
                p += 1
            nd = 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
            ev.append((tick, "ch", bytes([status]) + bytes(chunk[p:p + nd])))
            p += nd
        tracks.append(ev)
    return fmt, division, tracks


def write_midi(path: str, fmt: int, division: int, tracks) -> None:
    out = [b"MThd", struct.pack(">IHHH", 6, fmt if len(tracks) > 1 else 0, len(tracks), division)]
    for ev in tracks:
        body, last = bytearray(), 0
        has_end = False
        for tick, kind, payload in ev:
            body += _varlen(max(0, tick - last))
            last = tick
            if kind == "sysex":
                body += payload
            else:
                body += payload
            if kind == "meta" and payload[1] == 0x2F:
                has_end = True
                break
        if not has_end:
            body += b"\x00\xff\x2f\x00"
        out += [b"MTrk", struct.pack(">I", len(body)), bytes(body)]
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---------------------------------------------------------------------------------------------
# Routing notes to stems
# ---------------------------------------------------------------------------------------------
def _merged(tracks):
    """All events of all tracks in time order as (tick, track_no, order, kind, payload)."""
    allev = []
    for t, ev in enumerate(tracks):
        for k, (tick, kind, payload) in enumerate(ev):
            allev.append((tick, t, k, kind, payload))
    allev.sort(key=lambda e: (e[0], e[1], e[2]))
    return allev


def is_bass_program(program: int) -> bool:
    """GM bass family (32-39: acoustic/electric/fretless/slap/synth bass) plus 43 (contrabass)."""
    return 32 <= program <= 39 or program == 43


def channel_stats(tracks):
    """Per channel: note count, mean pitch, monophony ratio, sounding ticks, bass-program note share."""
    prog = [0] * 16
    active = [dict() for _ in range(16)]
    st = {c: dict(n=0, pitch=0.0, mono=0, bassn=0, on_ticks=0, poly_ticks=0, last=0, sounding=0) for c in range(16)}
    for tick, _, _, kind, p in _merged(tracks):
        if kind != "ch":
            continue
        s, ch = p[0] & 0xF0, p[0] & 0x0F
        d = st[ch]
        if d["sounding"] > 0:
            d["on_ticks"] += tick - d["last"]
        if d["sounding"] > 1:
            d["poly_ticks"] += tick - d["last"]
        d["last"] = tick
        if s == 0xC0:
            prog[ch] = p[1]
        elif s == 0x90 and p[2] > 0:
            d["n"] += 1
            d["pitch"] += p[1]
            d["mono"] += d["sounding"] == 0
            d["bassn"] += is_bass_program(prog[ch])
            active[ch][p[1]] = active[ch].get(p[1], 0) + 1
            d["sounding"] += 1
        elif s == 0x80 or (s == 0x90 and p[2] == 0):
            if active[ch].get(p[1], 0) > 0:
                active[ch][p[1]] -= 1
                d["sounding"] -= 1
    for d in st.values():
        if d["n"]:
            d["pitch"] /= d["n"]
            d["mono"] /= d["n"]
    return st


def pick_melody(tracks, total_ticks: int):
    """The lead melody channel: mostly monophonic (two or more notes sound together for at most 35 %
    of its sounding time), in a singable range (mean pitch 55-84), sounding for >= 15 % of the song,
    not drums, not bass. Highest coverage wins, then higher pitch. Returns a channel index or None."""
    st = channel_stats(tracks)
    best, best_key = None, None
    for ch, d in st.items():
        if ch == 9 or d["n"] < 24 or d["bassn"] > d["n"] / 2 or d["pitch"] <= 45:
            continue
        cover = d["on_ticks"] / max(1, total_ticks)
        poly = d["poly_ticks"] / max(1, d["on_ticks"])
        if poly > 0.35 or not (55 <= d["pitch"] <= 84) or cover < 0.15:
            continue
        key = (round(cover, 1), d["pitch"])
        if best_key is None or key > best_key:
            best, best_key = ch, key
    return best


def pick_choir(tracks, total_ticks: int):
    """Fallback when no monophonic melody exists: the non-drum, non-bass channel in the vocal range
    (mean pitch 55-84) with the most sounding time (>= 10 %), polyphony allowed (<= 80 %); it is
    re-voiced as a choir (GM 52 "Choir Aahs")."""
    best, best_key = None, None
    for ch, d in channel_stats(tracks).items():
        if ch == 9 or d["n"] < 24 or d["bassn"] > d["n"] / 2 or not (55 <= d["pitch"] <= 84):
            continue
        cover = d["on_ticks"] / max(1, total_ticks)
        poly = d["poly_ticks"] / max(1, d["on_ticks"])
        if cover < 0.10 or poly > 0.8:
            continue
        key = (round(cover, 1), -poly)
        if best_key is None or key > best_key:
            best, best_key = ch, key
    return best


def pick_bass_lines(tracks):
    """Channels that play a bass line with a non-bass program (e.g. tuba, piano left hand): not drums,
    mean pitch <= 45 (A2), mostly monophonic (<= 25 % polyphonic time), >= 24 notes."""
    out = set()
    for ch, d in channel_stats(tracks).items():
        poly = d["poly_ticks"] / max(1, d["on_ticks"])
        if ch != 9 and d["n"] >= 24 and d["pitch"] <= 45 and poly <= 0.25:
            out.add(ch)
    return out


def split_stems(tracks, melody_ch, bass_channels=(), voice_program=VOICE_PROGRAM):
    """Return {stem: tracks} where every note (on+off) appears in exactly one stem."""
    prog = [0] * 16
    owner = {}
    out = {s: [[] for _ in tracks] for s in STEMS}
    for tick, t, _, kind, p in _merged(tracks):
        if kind != "ch":
            for s in STEMS:
                out[s][t].append((tick, kind, p))
            continue
        st, ch = p[0] & 0xF0, p[0] & 0x0F
        if st == 0xC0:
            prog[ch] = p[1]
        if st in (0x80, 0x90):
            note_on = st == 0x90 and p[2] > 0
            if note_on:
                if ch == 9:
                    stem = "drums"
                elif ch == melody_ch:
                    stem = "vocals"
                elif is_bass_program(prog[ch]) or ch in bass_channels:
                    stem = "bass"
                else:
                    stem = "other"
                owner.setdefault((ch, p[1]), []).append(stem)
            else:
                stack = owner.get((ch, p[1]))
                stem = stack.pop(0) if stack else None
                if stem is None:
                    continue
            out[stem][t].append((tick, kind, p))
            continue
        if ch == melody_ch and st == 0xC0:
            # re-voice the melody channel in the vocals stem; keep the original elsewhere
            for s in STEMS:
                out[s][t].append((tick, kind, bytes([p[0], voice_program]) if s == "vocals" else p))
            continue
        for s in STEMS:
            out[s][t].append((tick, kind, p))
    if melody_ch is not None:
        # make sure the voice program is set before the first note even without a program change
        out["vocals"][0].insert(0, (0, "ch", bytes([0xC0 | melody_ch, voice_program])))
    return out


def count_notes(tracks) -> int:
    return sum(1 for ev in tracks for _, k, p in ev if k == "ch" and (p[0] & 0xF0) == 0x90 and p[2] > 0)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def fluidsynth_render(mid_path: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as td:
        raw = os.path.join(td, "out.raw")
        cmd = ["fluidsynth", "-ni", "-q", "-F", raw, "-T", "raw", "-O", "float", "-E", "little", "-r", str(SR),
               "-g", "0.5", "-o", "synth.cpu-cores=1", SOUNDFONT, mid_path]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        x = np.fromfile(raw, dtype="<f4")
    x = x[: len(x) // 2 * 2].reshape(-1, 2).mean(axis=1)
    return x.astype(np.float32)


def tick_at_seconds(tracks, division: int, seconds: float) -> int | None:
    """The tick reached after ``seconds`` (tempo map from all tracks), or None if the song is shorter.
    SMPTE divisions are not handled (None)."""
    if division & 0x8000:
        return None
    ev = sorted((t, p) for trk in tracks for (t, k, p) in trk if k == "meta" and p[1] == 0x51)
    tempo, last_t, sec = 500000, 0, 0.0
    for t, p in ev:
        dt = (t - last_t) * tempo / 1e6 / division
        if sec + dt >= seconds:
            break
        sec += dt
        last_t, tempo = t, int.from_bytes(p[3:6], "big")
    tick = last_t + int((seconds - sec) * 1e6 / tempo * division)
    end = max((trk[-1][0] for trk in tracks if trk), default=0)
    return tick if tick < end else None


def truncate(tracks, limit: int):
    """Drop everything after tick ``limit``; notes still sounding are released at ``limit``."""
    out = []
    for trk in tracks:
        t2 = []
        for tick, kind, p in trk:
            if tick <= limit:
                t2.append((tick, kind, p))
            elif kind == "ch" and ((p[0] & 0xF0) == 0x80 or ((p[0] & 0xF0) == 0x90 and p[2] == 0)):
                t2.append((limit, kind, p))
        out.append(t2)
    return out


def render_song(mid_path: str, cache_dir: str, max_seconds: float = MAX_SECONDS):
    """Render one MIDI file (its first ``max_seconds``) to stems; cached as ``cache_dir/midi-<sha1>.npz``.
    Returns (stems dict, melody_ch)."""
    fmt, div, tracks = read_midi(mid_path)
    limit = tick_at_seconds(tracks, div, max_seconds)
    with open(mid_path, "rb") as f:
        key = f.read() + RENDER_VERSION.encode() + (f"|{max_seconds}".encode() if limit is not None else b"")
    h = hashlib.sha1(key).hexdigest()[:16]
    cpath = os.path.join(cache_dir, f"midi-{h}.npz")
    if os.path.exists(cpath):
        z = np.load(cpath)
        return {k: z[k] for k in z.files if k in STEMS}, int(z["melody"])
    if limit is not None:
        tracks = truncate(tracks, limit)
    total = max((ev[-1][0] for ev in tracks if ev), default=0)
    bass = pick_bass_lines(tracks)
    mel, prog = pick_melody(tracks, total), VOICE_PROGRAM
    if mel is None:
        mel, prog = pick_choir(tracks, total), CHOIR_PROGRAM
    if mel in bass:
        mel = None
    parts = split_stems(tracks, mel, bass, prog)
    stems = {}
    with tempfile.TemporaryDirectory() as td:
        for s in STEMS:
            if count_notes(parts[s]) == 0:
                continue
            p = os.path.join(td, f"{s}.mid")
            write_midi(p, fmt, div, parts[s])
            stems[s] = fluidsynth_render(p)
    if stems:
        n = max(len(x) for x in stems.values())
        stems = {k: np.pad(v, (0, n - len(v))) for k, v in stems.items()}
        # trim the common trailing silence
        tot = np.abs(np.stack(list(stems.values()))).max(axis=0)
        nz = np.nonzero(tot > 1e-4)[0]
        end = min(n, int(nz[-1]) + SR // 10) if len(nz) else 0
        stems = {k: v[:end].astype(np.float16) for k, v in stems.items()}
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(cpath, melody=np.int64(-1 if mel is None else mel), **stems)
    return stems, (-1 if mel is None else mel)


def render_all(cache_dir: str, verbose: bool = True, jobs: int = 1):
    """Yield (source dict, audio) for each non-silent stem of each MIDI song (collect.py format).
    ``jobs`` > 1 renders several songs at once (fluidsynth runs as a subprocess per stem)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = [(pkg, path, lic) for pkg, pattern, lic in MIDI_SOURCES for path in sorted(glob.glob(pattern))]

    def work(item):
        try:
            return render_song(item[1], cache_dir)
        except Exception as e:  # noqa: BLE001
            print(f"[midi] {item[1]}: {e}", file=sys.stderr)
            return None

    with ThreadPoolExecutor(max(1, jobs)) as ex:
        results = list(ex.map(work, todo))
    for (pkg, path, lic), r in zip(todo, results):
        if r is None:
            continue
        stems, mel = r
        name = os.path.splitext(os.path.basename(path))[0].lower()
        song = f"song:midi-{pkg}-{name}"
        if not stems or len(stems[next(iter(stems))]) < SR:
            continue
        keep = {k: v for k, v in stems.items()
                if float(np.sqrt(np.mean(v.astype(np.float32) ** 2))) > 1e-4}
        if verbose:
            dur = len(next(iter(stems.values()))) / SR
            print(f"[midi] {pkg} {name}: {dur:.0f}s stems={sorted(keep)} melody_ch={mel}", flush=True)
        fam = "midi-songs-4stem" if set(keep) >= set(STEMS) else "midi-songs"
        lic = midi_licence(pkg, path, lic)
        for s, x in keep.items():
            src = dict(path=path, category=s, package=pkg, group=song, song=song, stem=s, licence=lic,
                       synthetic=(s == "vocals"), rendered=True, family=fam,
                       note="rendered with fluidsynth + FluidR3_GM" + (" (lead line re-voiced as a sampled voice)"
                                                                         if s == "vocals" else ""))
            yield src, x


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("midi", nargs="*")
    ap.add_argument("--out", default="/tmp/midi_render_test")
    a = ap.parse_args()
    import soundfile as sf

    for m in a.midi:
        stems, mel = render_song(m, a.out)
        base = os.path.join(a.out, os.path.splitext(os.path.basename(m))[0])
        for k, v in stems.items():
            sf.write(f"{base}_{k}.wav", v.astype(np.float32), SR)
        print(m, "melody", mel, {k: len(v) / SR for k, v in stems.items()})
