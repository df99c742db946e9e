"""Rendering a track: every part synthesised once as a 4-bar loop (one chord per bar) from its
sound kind's table entry (:mod:`.voices`), mixed per section kind and tiled into the arrangement."""

from __future__ import annotations

import numpy as np

from . import dsp
from .loop import Loop
from .notes import HAT_PATTERNS
from .plan import TrackPlan
from .voices import BASSES, CHORDS, CLAPS, KICKS, LEADS, ORGANIC, sound

SAMPLE_RATE = 44100


def _norm(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = np.max(np.abs(x))
    return x * (peak / m) if m > 0 else x


def _render_parts(plan: TrackPlan, sr: int) -> tuple[Loop, dict[str, np.ndarray]]:
    """All stems of a track as (n_loop, 2) loops: drums, bass, lead, chords, organic (dry),
    plus the groove's side-chain curve."""
    rng = np.random.default_rng([plan.seed, plan.index, plan.params["melody_seed"]])
    p = plan.params
    lp = Loop(plan, sr, rng)
    n = lp.n
    swing = p["swing"]
    groove, rhythm, distortion = p["groove"], p["rhythm"], p["distortion"]
    gate = 0.35 + 0.13 * groove  # low groove: short, staccato notes
    stems: dict[str, np.ndarray] = {}

    # --- drums
    bass_root_hz = float(dsp.midi_to_hz(28 + (plan.root - 4) % 12))  # the tonic between E1 and D#2: 41–78 Hz
    k = sound(KICKS, "kick", p["kick"])(lp, bass_root_hz)
    stems["kick"] = lp.place([(b, 0.5, 0, 1.0) for b in range(16)], lambda m, g: k)
    cl = sound(CLAPS, "clap", p["clap"])(lp)
    stems["clap"] = lp.place([(b, 0.5, 0, 1.0) for b in range(1, 16, 2)], lambda m, g: cl)
    closed = dsp.hat(sr, rng, 0.04, cutoff=rng.uniform(6000, 9000), metallic=rng.uniform(0.2, 0.8))
    opened = dsp.hat(sr, rng, 0.22, cutoff=rng.uniform(5000, 8000), metallic=rng.uniform(0.2, 0.8))
    hats = sound(HAT_PATTERNS, "hats", p["hats"])
    stems["hats"] = lp.place(hats.closed, lambda m, g: dsp.pan(closed, 0.25)) + lp.place(hats.open, lambda m, g: dsp.pan(opened, -0.15))
    if p["perc"] or hats.perc:
        rim = dsp.bandpass(dsp.exp_decay(int(0.06 * sr), sr, 0.01) * rng.standard_normal(int(0.06 * sr)), 600, 2500, sr)
        tom = dsp.sine(rng.uniform(180, 320), int(0.15 * sr), sr) * dsp.exp_decay(int(0.15 * sr), sr, 0.05)
        pos = rng.choice(64, size=int(rng.integers(4, 10)), replace=False)
        notes = [(s / 4, 0.25, s % 2, 0.7) for s in pos]
        stems["perc"] = lp.place(notes, lambda m, g: dsp.pan(_norm(rim if m else tom), rng.uniform(-0.6, 0.6)), swing)

    # --- bass (Bigroom: none; its pitched kick is the bass)
    if p["bass"]:
        bass = sound(BASSES, "bass", p["bass"])
        base = 36 + plan.root - (12 if plan.root > 7 else 0)
        b = bass.post(lp, lp.play(bass.notes(lp, base, rhythm, gate), bass.voice, swing))
        stems["bass"] = _norm(dsp.waveshape(b / (np.max(np.abs(b)) + 1e-9), 1 + 0.6 * (distortion - 1)))

    # --- lead
    lead = sound(LEADS, "lead", p["lead"]) if p["lead"] else None
    if lead:
        base = 60 + plan.root + 12 * (p["lead_octave"] + lead.octave)
        stems["lead"] = lead.post(lp, lp.play(lead.notes(lp, base, rhythm, gate), lead.voice, swing))

    # --- chords, and the organic layers (same register)
    base = 60 + plan.root - (12 if plan.root > 5 else 0)
    if p["chords"]:
        chords = sound(CHORDS, "chords", p["chords"])
        stems["chords"] = chords.post(lp, lp.play(chords.notes(lp, base, rhythm, gate), chords.voice))
    if p["organic"]:
        org = np.zeros((n, 2))
        for name in p["organic"]:
            layer = sound(ORGANIC, "organic", name)
            org += layer.gain * layer.post(lp, lp.play(layer.notes(lp, base, rhythm, gate), layer.voice))
        stems["organic"] = org

    # --- distortion: drive, bit-crush, flanger on lead (and chords for harsh settings)
    if "lead" in stems:
        y = _norm(stems["lead"])
        if distortion >= 3.0:
            y = dsp.waveshape(y, 1 + (distortion - 2.5) * 1.5)
        if lead.crushed or (distortion >= 4.0 and rng.random() < 0.5):
            y = dsp.bitcrush(y, bits=float(rng.uniform(5, 9)), downsample=int(rng.integers(2, 5)))
        if distortion >= 3.0 and rng.random() < 0.5:
            y = dsp.flanger(y, sr, depth_ms=rng.uniform(1, 4), rate_hz=rng.uniform(0.1, 0.5), mix=0.7)
        stems["lead"] = y

    # --- space: reverb send on melodic parts (circular: the loop's steady state)
    ir = dsp.reverb_ir(sr, 0.8 + 3.5 * p["space"], rng, damping_hz=rng.uniform(3000, 9000))
    for name in ("lead", "chords", "organic"):
        if name in stems:
            dry = _norm(stems[name])
            stems[name] = dry + p["space"] * 1.5 * _norm(dsp.circular_convolve(dry, ir))

    # --- per-track EQ tilt and mix levels (genre-independent)
    for name in list(stems):
        y = dsp.tilt_eq(_norm(stems[name]), sr, p["tilt_low_db"], p["tilt_high_db"])
        stems[name] = _norm(y) * 10 ** ((p["levels_db"][name] + _BASE_LEVEL_DB[name]) / 20)
    stems["sidechain"] = dsp.sidechain_envelope(n, sr, lp.beat, depth=0.12 + 0.19 * (groove - 1),
                                                release=(0.25 + 0.12 * groove) * lp.beat / sr, shape=1 + groove / 2)[:, None]
    return lp, stems


_BASE_LEVEL_DB = {"kick": 0.0, "clap": -8.0, "hats": -12.0, "perc": -14.0, "bass": -4.0, "lead": -5.0, "chords": -8.0, "organic": -9.0}

#: which stems play in which section; ``"~"`` = low-passed (filtered) version, ``"|"`` = not side-chained
_SECTION_STEMS = {
    "intro": ("kick", "hats", "perc", "~bass", "~chords"),
    "build": ("|~chords", "|~lead", "|organic", "hats"),
    "drop": ("kick", "clap", "hats", "perc", "bass", "lead", "chords", "organic"),
    "breakdown": ("|chords", "|organic", "|~lead"),
    "outro": ("kick", "hats", "perc", "~bass"),
}


def _section_loop(kind: str, stems: dict[str, np.ndarray], filtered: dict[str, np.ndarray], sr: int) -> np.ndarray:
    """The mix of one section kind as a loop (n, 2): its stems, filtered/side-chained as listed."""
    side = stems["sidechain"]
    mix = np.zeros_like(stems["kick"])
    recipe = _SECTION_STEMS[kind]
    if kind == "breakdown" and not any(s in stems for s in ("chords", "organic", "lead")):
        recipe = ("hats", "perc", "|~bass")  # minimal tracks (no melodic part) keep a groove
    for spec in recipe:
        plain, low = spec.startswith("|"), "~" in spec
        stem = spec.strip("|~")
        if stem not in stems:
            continue
        loop = stems[stem]
        if low:
            if stem not in filtered:
                filtered[stem] = dsp.lowpass(loop, 700.0 if stem != "chords" else 1200.0, sr)
            loop = filtered[stem]
        mix += loop if plain or stem not in ("bass", "lead", "chords", "organic") else loop * side
    return mix


def _tile_into(out: np.ndarray, a: int, b: int, loop: np.ndarray) -> None:
    """out[a:b] = the loop repeated from track time 0 (so loops stay on the bar grid)."""
    n, pos = loop.shape[0], a
    while pos < b:
        off = pos % n
        k = min(n - off, b - pos)
        out[pos:pos + k] = loop[off:off + k]
        pos += k


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def render_track(plan: TrackPlan, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The track of ``plan`` as float32 (samples, 2), peak-normalised to -0.3 dBFS.

    Sections other than build-ups are periodic in the 4-bar loop, so they are mixed, levelled and
    driven at loop length and only copied (tiled) into the track."""
    lp, stems = _render_parts(plan, sr)
    rng = np.random.default_rng([plan.seed, plan.index, 7])
    p = plan.params
    total = int(round(plan.duration * sr))
    bar = lp.n / 4
    filtered: dict[str, np.ndarray] = {}
    mixes = {kind: _section_loop(kind, stems, filtered, sr) for kind in _SECTION_STEMS}
    drop_rms = _rms(mixes["drop"])
    # loudness contrast: every other section sits ``contrast_db`` (or more) under the drops
    target = drop_rms * 10 ** (-p["contrast_db"] / 20)
    noise = rng.standard_normal((lp.n, 2)) * drop_rms * 10 ** (p["noise_floor_db"] / 20)
    pieces = []  # (a, b, signal, is_loop)
    for name, start, bars in plan.sections:
        a = int(round(start * bar))
        b = total if name == "outro" else min(total, int(round((start + bars) * bar)))
        if b <= a:
            continue
        kind = name.rstrip("12")
        if kind == "build":
            seg = np.empty((b - a, 2))
            _tile_into(seg, 0, b - a, mixes["build"] + 0.0)
            seg *= np.linspace(0.3, 1.0, b - a)[:, None]  # crescendo into the drop
            seg += _build_fx(b - a, lp, sr, rng, p)
            seg *= min(1.0, target / _rms(seg[-(b - a) // 4:]))
            seg += np.resize(noise, seg.shape)
            pieces.append((a, b, seg, False))
        else:
            gain = 1.0 if kind == "drop" else min(1.0, target / _rms(mixes[kind]))
            pieces.append((a, b, mixes[kind] * gain + noise, True))
    peak = max(float(np.max(np.abs(x))) for _, _, x, _ in pieces) + 1e-12
    out = np.zeros((total, 2), dtype=np.float32)
    driven: dict[int, np.ndarray] = {}
    for a, b, x, is_loop in pieces:
        key = id(x)
        if key not in driven:
            driven[key] = dsp.waveshape(x / peak, p["master_drive"]).astype(np.float32)
        if is_loop:
            _tile_into(out, a, b, driven[key])
        else:
            out[a:b] = driven[key]
    fade_in, fade_out = int(0.05 * sr), min(total // 4, int(2.0 * sr))
    out[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)[:, None]
    out[total - fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32)[:, None]
    return out * np.float32(10 ** (-0.3 / 20) / (np.max(np.abs(out)) + 1e-12))


def _build_fx(m: int, lp: Loop, sr: int, rng, p: dict) -> np.ndarray:
    """Riser plus an accelerating snare roll (1/4 → 1/8 → 1/16 → 1/32) over a build-up of m samples."""
    y = 0.5 * dsp.riser(m, sr, rng, start_hz=rng.uniform(200, 600), end_hz=rng.uniform(6000, 12000))
    hit = dsp.snare(sr, rng, length=0.12, tone_hz=rng.uniform(180, 240))
    beats = m / lp.beat
    times, t = [], 0.0
    while t < beats:
        frac = t / beats
        times.append(t)
        t += 1.0 if frac < 0.25 else 0.5 if frac < 0.5 else 0.25 if frac < 0.8 else 0.125
    roll = np.zeros(m)
    for t in times:
        s = int(t * lp.beat)
        k = min(len(hit), m - s)
        roll[s:s + k] += hit[:k] * (0.3 + 0.7 * t / beats)
    return y + 0.35 * roll[:, None]
