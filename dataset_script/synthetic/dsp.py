"""DSP building blocks of the synthetic generator: oscillators, envelopes and drum voices written
here (vectorised numpy: no library makes these), production effects from Spotify's ``pedalboard``
(filters, EQ, distortion, bit-crush, flanger, delay, reverb; JUCE, float32).

Every function is pure: explicit parameters in, a new array out; nothing loops over samples in
Python.  Mono signals are ``(n,)``; stereo ones ``(n, 2)`` (the soundfile layout).  Functions that
need randomness take a ``numpy.random.Generator``.  The sampled instruments are in :mod:`.sampled`,
the mastering chain in :mod:`.master`.
"""

from __future__ import annotations

import numpy as np
import pedalboard

# --------------------------------------------------------------------------------------------
# pitch helpers


def midi_to_hz(midi) -> np.ndarray | float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _phase(freq, n: int, sr: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Phase in [0, 1) and per-sample increment for a constant or per-sample ``freq`` (n,)."""
    f = np.asarray(freq, dtype=np.float64)
    dt = np.broadcast_to(f / sr, (n,))
    # x - floor(x): the fractional part, several times cheaper than np.mod on floats
    ph = phase + np.arange(n) * (float(f) / sr) if f.ndim == 0 else phase + np.cumsum(dt) - dt  # constant pitch: no running sum
    return ph - np.floor(ph), dt


def _polyblep(ph: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """PolyBLEP residual that removes most aliasing from a saw's discontinuity."""
    out = np.zeros_like(ph)
    m = ph < dt
    x = ph[m] / dt[m]
    out[m] = x + x - x * x - 1.0
    m = ph > 1.0 - dt
    x = (ph[m] - 1.0) / dt[m]
    out[m] = x * x + x + x + 1.0
    return out


# --------------------------------------------------------------------------------------------
# oscillators (all return (n,) in about [-1, 1])


def sine(freq, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    ph, _ = _phase(freq, n, sr, phase)
    return np.sin(2 * np.pi * ph)


def saw(freq, n: int, sr: int, phase: float = 0.0, bandlimit: bool = True) -> np.ndarray:
    """Rising sawtooth; ``bandlimit`` applies PolyBLEP (band-limited-ish)."""
    ph, dt = _phase(freq, n, sr, phase)
    y = 2.0 * ph - 1.0
    return y - _polyblep(ph, dt) if bandlimit else y


def square(freq, n: int, sr: int, duty: float = 0.5, phase: float = 0.0, bandlimit: bool = True) -> np.ndarray:
    """Pulse wave of duty cycle ``duty`` as the difference of two PolyBLEP saws."""
    ph, dt = _phase(freq, n, sr, phase)
    ph2 = (ph + (1.0 - duty)) % 1.0
    a = 2.0 * ph - 1.0
    b = 2.0 * ph2 - 1.0
    if bandlimit:
        a = a - _polyblep(ph, dt)
        b = b - _polyblep(ph2, dt)
    y = a - b
    return y - y.mean() if n else y


def supersaw(freq, n: int, sr: int, rng: np.random.Generator, voices: int = 7, detune_cents: float = 25.0,
             stereo: bool = True) -> np.ndarray:
    """Detuned saw stack (n, 2): voices alternate left/right, random phases; centre voice band-limited."""
    out = np.zeros((n, 2))
    offsets = np.linspace(-1.0, 1.0, voices) * detune_cents
    phases = rng.random(voices)
    for v, (cents, ph) in enumerate(zip(offsets, phases)):
        centre = v == voices // 2
        y = saw(np.asarray(freq) * 2.0 ** (cents / 1200.0), n, sr, ph, bandlimit=centre)
        if centre or not stereo:
            out += y[:, None]
        else:
            out[:, v % 2] += y * 1.4
    return out / np.sqrt(voices)


def fm(freq, n: int, sr: int, ratio: float, index, phase: float = 0.0) -> np.ndarray:
    """Two-operator FM: sin(carrier + index * sin(ratio * carrier)); ``index`` may be (n,)."""
    ph_m, _ = _phase(np.asarray(freq) * ratio, n, sr)
    ph_c, _ = _phase(freq, n, sr, phase)
    return np.sin(2 * np.pi * ph_c + np.asarray(index) * np.sin(2 * np.pi * ph_m))


# --------------------------------------------------------------------------------------------
# envelopes


def adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float, gate: int,
         curve: float = 1.0) -> np.ndarray:
    """Piecewise-linear ADSR of length ``n`` samples, note held for ``gate`` samples; ``curve`` > 1 makes
    the decay/release exponential-looking (the linear shape raised to that power)."""
    a, d, r = (max(1.0, x * sr) for x in (attack, decay, release))
    g = float(max(gate, 1))
    t = np.arange(n, dtype=np.float64)
    knots_t = [0.0, a, a + d, max(g, a + d), max(g, a + d) + r]
    env = np.interp(t, knots_t, [0.0, 1.0, sustain, sustain, 0.0])
    if curve != 1.0:
        env = env ** curve
    return env


def exp_decay(n: int, sr: int, tau: float, attack: float = 0.001) -> np.ndarray:
    """exp(-t/tau) with a short linear attack; (n,)."""
    t = np.arange(n) / sr
    return np.exp(-t / max(tau, 1e-4)) * np.minimum(1.0, t / max(attack, 1e-5))


def sidechain_envelope(n: int, sr: int, beat_samples: float, depth: float, release: float, shape: float = 2.0) -> np.ndarray:
    """Gain curve (n,) that ducks by ``depth`` on every beat and recovers over ``release`` seconds.

    ``shape`` > 1 recovers slowly then fast (the pumping sound of heavy side-chaining)."""
    t = (np.arange(n) % beat_samples) / sr
    x = np.clip(t / max(release, 1e-3), 0.0, 1.0)
    return 1.0 - depth * (1.0 - x) ** shape


# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# effects: Spotify's pedalboard (JUCE, float32).  x may be (n,) or (n, channels); the result keeps
# the layout.  Effects with memory (reverb, delay, flanger) have a ``*_loop`` form that returns the
# steady state of a repeating loop: the loop's own tail is played into it first.


def effects(x: np.ndarray, sr: int, plugins: list) -> np.ndarray:
    """Run ``plugins`` (fresh instances: their state starts empty) in series over x, float32 out.

    Every other sample gets +2e-20 (-394 dBFS: DC plus Nyquist, which no filter removes both of):
    over exact silence, IIR states otherwise decay into denormal floats, which made the filters
    5-8 times slower."""
    y = np.array(x, dtype=np.float32)
    y[::2] += np.float32(2e-20)
    return pedalboard.Pedalboard(plugins).process(y, float(sr), reset=False)


def _hz(f: float, sr: int) -> float:
    return float(np.clip(f, 10.0, 0.45 * sr))


def lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    """``order`` first-order low-passes in series (6 dB/octave each)."""
    return effects(x, sr, [pedalboard.LowpassFilter(_hz(cutoff, sr)) for _ in range(order)])


def highpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    return effects(x, sr, [pedalboard.HighpassFilter(_hz(cutoff, sr)) for _ in range(order)])


def bandpass(x: np.ndarray, low: float, high: float, sr: int, order: int = 2) -> np.ndarray:
    hi = max(_hz(high, sr), _hz(low, sr) * 1.05)
    return effects(x, sr, [pedalboard.HighpassFilter(_hz(low, sr)) for _ in range(order)]
                  + [pedalboard.LowpassFilter(hi) for _ in range(order)])


def synth_filter(x: np.ndarray, sr: int, cutoff: float, resonance: float = 0.0, poles: int = 2) -> np.ndarray:
    """Resonant low-pass of a synth part: ``poles`` first-order low-passes in series and, for
    ``resonance`` > 0, a peak at the cutoff (up to +12 dB), the bump of an analogue filter."""
    f = _hz(cutoff, sr)
    plugins = [pedalboard.LowpassFilter(f) for _ in range(poles)]
    if resonance > 0:
        plugins.append(pedalboard.PeakFilter(f, gain_db=12.0 * float(resonance), q=0.7 + 4.0 * float(resonance)))
    return effects(x, sr, plugins)


def shelf_plugins(low_db: float, high_db: float, low_hz: float = 200.0, high_hz: float = 4000.0) -> list:
    """Low and high shelving EQ (``low_db`` below ``low_hz``, ``high_db`` above ``high_hz``)."""
    return [pedalboard.LowShelfFilter(low_hz, float(low_db)), pedalboard.HighShelfFilter(high_hz, float(high_db))]


def waveshape(x: np.ndarray, drive: float, sr: int = 44100) -> np.ndarray:
    """tanh distortion, scaled so that a full-scale input stays near full scale."""
    drive = max(float(drive), 1e-3)
    return effects(x, sr, [pedalboard.Distortion(drive_db=20 * np.log10(drive))]) / np.float32(np.tanh(drive))


def bitcrush(x: np.ndarray, sr: int, bits: float, downsample: int = 1) -> np.ndarray:
    """Quantise to ``bits`` and hold every ``downsample``-th sample (zero-order-hold resampling)."""
    plugins = [pedalboard.Bitcrush(bit_depth=float(bits))]
    if downsample > 1:
        plugins.append(pedalboard.Resample(sr / downsample, quality=pedalboard.Resample.Quality.ZeroOrderHold))
    y = effects(x, sr, plugins)
    # Resample may drop the last sample or two (rate not dividing the length); keep the loop's length
    return np.pad(y, [(0, x.shape[0] - y.shape[0])] + [(0, 0)] * (y.ndim - 1), mode="edge") if y.shape[0] < x.shape[0] else y[:x.shape[0]]


def loop_effects(x: np.ndarray, sr: int, plugins: list, tail_seconds: float) -> np.ndarray:
    """The output over loop x (n, ch) once the effect has heard the loop before (its tail wraps)."""
    n = x.shape[0]
    k = min(n, int(tail_seconds * sr))
    return effects(np.concatenate([x[n - k:], x]), sr, plugins)[k:]


def flanger_loop(x: np.ndarray, sr: int, depth: float = 0.5, rate_hz: float = 0.3, mix: float = 0.5,
                 delay_ms: float = 2.0, feedback: float = 0.5) -> np.ndarray:
    """Flanger: a chorus with a very short, fed-back delay."""
    return loop_effects(x, sr, [pedalboard.Chorus(rate_hz=float(rate_hz), depth=float(depth), centre_delay_ms=float(delay_ms),
                                                  feedback=float(feedback), mix=float(mix))], 1.0)


def reverb_loop(x: np.ndarray, sr: int, room_size: float, damping: float = 0.5, wet: float = 0.33, width: float = 1.0) -> np.ndarray:
    """Freeverb (wet and dry) over a loop, in its steady state."""
    return loop_effects(x, sr, [pedalboard.Reverb(room_size=float(room_size), damping=float(damping), wet_level=float(wet),
                                                  dry_level=1.0, width=float(width))], 2.5)


def delay_loop(x: np.ndarray, sr: int, seconds: float, feedback: float = 0.3, mix: float = 0.25) -> np.ndarray:
    """Echo (tempo-synced by the caller) over a loop, in its steady state."""
    return loop_effects(x, sr, [pedalboard.Delay(delay_seconds=float(seconds), feedback=float(feedback), mix=float(mix))],
                        min(3.0, seconds * 6))


def pan(x: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of a mono (n,) signal to (n, 2); position −1 (left) … 1 (right)."""
    a = (position + 1) * np.pi / 4
    return np.stack([x * np.cos(a), x * np.sin(a)], axis=1)


# drum voices (mono, (n,))


def kick(sr: int, length: float = 0.4, f_start: float = 180.0, f_end: float = 50.0, pitch_tau: float = 0.03,
         amp_tau: float = 0.15, click: float = 0.3, drive: float = 1.5, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sine kick with an exponential pitch drop; a long ``amp_tau`` and an ``f_end`` on the key's root
    make the pitched big-room kick that doubles as the bass."""
    n = int(length * sr)
    t = np.arange(n) / sr
    f = f_end + (f_start - f_end) * np.exp(-t / pitch_tau)
    y = np.sin(2 * np.pi * np.cumsum(f) / sr) * exp_decay(n, sr, amp_tau, attack=0.0005)
    y = y * np.minimum(1.0, (length - t) / 0.01)  # de-click the cut-off
    if click > 0:
        rng = rng or np.random.default_rng(0)
        c = highpass(rng.standard_normal(n), 2000, sr) * exp_decay(n, sr, 0.004)
        y = y + click * 0.5 * c
    return waveshape(y, drive, sr)


def clap(sr: int, rng: np.random.Generator, length: float = 0.3, tone_hz: float = 1200.0, tail: float = 0.08) -> np.ndarray:
    """Hand clap: three 10 ms noise bursts then a decaying tail, band-passed around ``tone_hz``."""
    n = int(length * sr)
    noise = bandpass(rng.standard_normal(n), tone_hz * 0.6, tone_hz * 2.2, sr)
    t = np.arange(n) / sr
    env = np.zeros(n)
    for k in range(3):
        env += np.where(t >= 0.01 * k, np.exp(-(t - 0.01 * k) / 0.006), 0.0) * (t < 0.01 * (k + 1))
    env += np.where(t >= 0.03, np.exp(-(t - 0.03) / tail), 0.0)
    y = noise * env
    return y / (np.max(np.abs(y)) + 1e-9)


def snare(sr: int, rng: np.random.Generator, length: float = 0.25, tone_hz: float = 190.0, snappy: float = 0.7) -> np.ndarray:
    """Snare: a short sine body plus high-passed noise."""
    n = int(length * sr)
    body = sine(tone_hz * (1 + 0.5 * exp_decay(n, sr, 0.01)), n, sr) * exp_decay(n, sr, 0.05)
    noise = highpass(rng.standard_normal(n), 1500, sr) * exp_decay(n, sr, 0.09)
    y = (1 - snappy) * body + snappy * noise
    return y / (np.max(np.abs(y)) + 1e-9)


def hat(sr: int, rng: np.random.Generator, length: float = 0.05, cutoff: float = 7000.0, metallic: float = 0.5) -> np.ndarray:
    """Closed (short ``length``) or open hi-hat: high-passed noise mixed with inharmonic square partials."""
    n = int(max(length, 0.01) * 1.5 * sr)
    noise = rng.standard_normal(n)
    metal = sum(square(f, n, sr, bandlimit=False) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)) / 6
    y = highpass((1 - metallic) * noise + metallic * 2 * metal, cutoff, sr, order=4)
    y = y * exp_decay(n, sr, length / 3, attack=0.0005)
    return y / (np.max(np.abs(y)) + 1e-9)


def riser(n: int, sr: int, rng: np.random.Generator, start_hz: float = 300.0, end_hz: float = 9000.0,
          pitch: tuple[float, float] | None = (200.0, 1600.0)) -> np.ndarray:
    """Build-up riser (n, 2): noise whose band climbs from ``start_hz`` to ``end_hz`` (crossfade of
    fixed band-passes) plus an optional saw sweeping over ``pitch``, swelling in volume."""
    prog = np.linspace(0.0, 1.0, n, dtype=np.float32)
    noise = rng.standard_normal(n, dtype=np.float32)
    centres = np.geomspace(start_hz, end_hz, 4)
    pos = prog * (len(centres) - 1)
    mono = np.zeros(n, dtype=np.float32)
    for k, c in enumerate(centres):  # band k sounds where |pos - k| < 1: filter only that stretch
        a, b = max(0, int((k - 1) / (len(centres) - 1) * n)), min(n, int((k + 1) / (len(centres) - 1) * n) + 1)
        w = np.clip(1.0 - np.abs(pos[a:b] - k), 0.0, 1.0)
        mono[a:b] += w * bandpass(noise[a:b], c / 1.6, c * 1.6, sr)
    # width: the right channel is the left one delayed by 7 ms (cheap decorrelation)
    d = int(0.007 * sr)
    y = np.stack([mono, np.concatenate([mono[n - d:] * 0, mono[: n - d]]) if n > d else mono], axis=1)
    y /= np.max(np.abs(y)) + 1e-9
    if pitch is not None:
        f = np.geomspace(pitch[0], pitch[1], n)
        y += 0.35 * supersaw(f, n, sr, rng, voices=3, detune_cents=20)
    return y * (prog**2)[:, None]
