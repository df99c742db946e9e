"""Rendering a track: every part synthesised (or played by a sampled instrument) once as a 4-bar
loop (one chord per bar) from its sound kind's table entry (:mod:`.voices`), produced (distortion,
echo, reverb: pedalboard), mixed per section kind, mastered (:mod:`.master`) and tiled into the
arrangement."""

from __future__ import annotations

import numpy as np

from . import dsp, master
from .loop import Loop
from .notes import HAT_PATTERNS
from .plan import TrackPlan
from .voices import BASSES, CHORDS, CLAPS, KICKS, LEADS, ORGANIC, sound

SAMPLE_RATE = 44100


def _norm(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = max(float(x.max()), -float(x.min()))
    return x * np.float32(peak / m) if m > 0 else x


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
        stems["bass"] = _norm(dsp.waveshape(_norm(b), 1 + 0.6 * (distortion - 1), sr))

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

    # --- distortion: drive, bit-crush, flanger on the lead; a dotted-eighth echo (pedalboard)
    if "lead" in stems:
        y = _norm(stems["lead"])
        if distortion >= 3.0:
            y = dsp.waveshape(y, 1 + (distortion - 2.5) * 1.5, sr)
        if lead.crushed or (distortion >= 4.0 and rng.random() < 0.5):
            y = dsp.bitcrush(y, sr, bits=float(rng.uniform(5, 9)), downsample=int(rng.integers(2, 5)))
        if distortion >= 3.0 and rng.random() < 0.5:
            y = dsp.flanger_loop(y, sr, depth=rng.uniform(0.2, 0.8), rate_hz=rng.uniform(0.1, 0.5), mix=0.7)
        if p["delay_mix"] > 0:
            y = dsp.delay_loop(y, sr, 0.75 * lp.beat / sr, feedback=0.35, mix=p["delay_mix"])
        stems["lead"] = y

    # --- space: reverb on the melodic parts (the loop's steady state)
    for name in ("lead", "chords", "organic"):
        if name in stems:
            stems[name] = dsp.reverb_loop(_norm(stems[name]), sr, room_size=0.3 + 0.65 * p["space"],
                                          damping=p["reverb_damping"], wet=0.05 + 0.6 * p["space"])

    # --- mix levels (genre-independent; the track's tilt EQ is on the master bus)
    for name in list(stems):
        stems[name] = _norm(stems[name]) * np.float32(10 ** ((p["levels_db"][name] + _BASE_LEVEL_DB[name]) / 20))
    stems["sidechain"] = dsp.sidechain_envelope(n, sr, lp.beat, depth=0.12 + 0.19 * (groove - 1),
                                                release=(0.25 + 0.12 * groove) * lp.beat / sr, shape=1 + groove / 2)[:, None].astype(np.float32)
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


def _section_loop(kind: str, stems: dict[str, np.ndarray], cache: dict[str, np.ndarray], sr: int) -> np.ndarray:
    """The mix of one section kind as a loop (n, 2): its stems, filtered/side-chained as listed
    (each processed version of a stem is made once per track, in ``cache``)."""
    mix = np.zeros_like(stems["kick"])
    recipe = _SECTION_STEMS[kind]
    if kind == "breakdown" and not any(s in stems for s in ("chords", "organic", "lead")):
        recipe = ("hats", "perc", "|~bass")  # minimal tracks (no melodic part) keep a groove
    for spec in recipe:
        stem = spec.strip("|~")
        if stem not in stems:
            continue
        ducked = not spec.startswith("|") and stem in ("bass", "lead", "chords", "organic")
        key = ("~" if "~" in spec else "") + ("*" if ducked else "") + stem
        if key not in cache:
            loop = stems[stem]
            if "~" in spec:
                loop = dsp.synth_filter(loop, sr, 700.0 if stem != "chords" else 1200.0)
            cache[key] = loop * stems["sidechain"] if ducked else loop
        mix += cache[key]
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
    """The track of ``plan`` as float32 (samples, 2), mastered: its drops at the plan's
    ``drop_lufs``, every sample under the limiter's ceiling (:data:`master.CEILING_DB`).

    Sections other than build-ups are periodic in the 4-bar loop, so they are mixed, levelled and
    mastered at loop length (in the effects' steady state) and only copied (tiled) into the track."""
    lp, stems = _render_parts(plan, sr)
    rng = np.random.default_rng([plan.seed, plan.index, 7])
    p = plan.params
    total = int(round(plan.duration * sr))
    bar = lp.n / 4
    processed: dict[str, np.ndarray] = {}
    mixes = {kind: _section_loop(kind, stems, processed, sr) for kind in _SECTION_STEMS}
    drop_rms = _rms(mixes["drop"])
    # loudness contrast: every other section sits ``contrast_db`` (or more) under the drops
    target = drop_rms * 10 ** (-p["contrast_db"] / 20)
    noise = (rng.standard_normal((lp.n, 2)) * drop_rms * 10 ** (p["noise_floor_db"] / 20)).astype(np.float32)
    # the pre-master pieces: a section kind's loop (levelled, once per kind) or a whole build-up
    loops = {kind: mixes[kind] * np.float32(1.0 if kind == "drop" else min(1.0, target / _rms(mixes[kind]))) + noise
             for kind in _SECTION_STEMS if kind != "build"}
    pieces = []  # (a, b, key, signal, is_loop)
    for name, start, bars in plan.sections:
        a = int(round(start * bar))
        b = total if name == "outro" else min(total, int(round((start + bars) * bar)))
        if b <= a:
            continue
        kind = name.rstrip("12")
        if kind == "build":
            seg = np.empty((b - a, 2), dtype=np.float32)
            _tile_into(seg, 0, b - a, mixes["build"])
            seg *= np.linspace(0.3, 1.0, b - a, dtype=np.float32)[:, None]  # crescendo into the drop
            seg += _build_fx(b - a, lp, sr, rng, p)
            seg *= np.float32(min(1.0, target / _rms(seg[-(b - a) // 4:])))
            seg += np.resize(noise, seg.shape)
            pieces.append((a, b, name, seg, False))
        else:
            pieces.append((a, b, kind, loops[kind], True))
    # --- mastering: tilt EQ + bus compressor, then the drive into the limiter that puts the drop
    # loop at the plan's loudness; every distinct piece goes through the chain once
    peak = np.float32(max(float(np.max(np.abs(x))) for *_, x, _ in pieces) + 1e-12)
    drop_bus = master.process(loops["drop"] / peak, sr, master.bus_plugins(p), loop=True)  # searched, then limited
    drive = master.find_drive(drop_bus, sr, p, p["drop_lufs"])

    def mastered(key: str, x: np.ndarray, is_loop: bool) -> np.ndarray:
        if key == "drop":
            return master.process(drop_bus, sr, master.limiter_plugins(p, drive), loop=True)
        return master.process(x / peak, sr, master.bus_plugins(p) + master.limiter_plugins(p, drive), is_loop)

    out = np.zeros((total, 2), dtype=np.float32)
    done: dict[str, np.ndarray] = {}
    for a, b, key, x, is_loop in pieces:
        if key not in done:
            done[key] = mastered(key, x, is_loop)
        if is_loop:
            _tile_into(out, a, b, done[key])
        else:
            out[a:b] = done[key]
    fade_in, fade_out = int(0.05 * sr), min(total // 4, int(2.0 * sr))
    out[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)[:, None]
    out[total - fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32)[:, None]
    return out


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
