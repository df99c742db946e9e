"""Small vectorised DSP building blocks for the synthetic generator (numpy + scipy.signal).

Every function is pure: explicit parameters in, a new float64 array out; nothing loops over
samples in Python.  Mono signals are ``(n,)``; stereo ones ``(n, 2)`` (the soundfile layout).
Functions that need randomness take a ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

# --------------------------------------------------------------------------------------------
# pitch helpers


def midi_to_hz(midi) -> np.ndarray | float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _phase(freq, n: int, sr: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Phase in [0, 1) and per-sample increment for a constant or per-sample ``freq`` (n,)."""
    dt = np.broadcast_to(np.asarray(freq, dtype=np.float64) / sr, (n,))
    ph = (phase + np.cumsum(dt) - dt) % 1.0
    return ph, dt


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
# filters and effects (x may be (n,) or (n, channels); filtering runs along axis 0)


def _sos(kind: str, cutoff, sr: int, order: int):
    nyq = 0.5 * sr
    if kind == "bandpass":
        lo, hi = (float(np.clip(c, 10.0, 0.95 * nyq)) for c in cutoff)
        return signal.butter(order, [lo, max(hi, lo * 1.05)], btype="bandpass", fs=sr, output="sos")
    return signal.butter(order, float(np.clip(cutoff, 10.0, 0.95 * nyq)), btype=kind, fs=sr, output="sos")


def lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(_sos("lowpass", cutoff, sr, order), x, axis=0)


def highpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(_sos("highpass", cutoff, sr, order), x, axis=0)


def bandpass(x: np.ndarray, low: float, high: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(_sos("bandpass", (low, high), sr, order), x, axis=0)


def tilt_eq(x: np.ndarray, sr: int, low_db: float, high_db: float, low_hz: float = 200.0, high_hz: float = 4000.0) -> np.ndarray:
    """Gentle shelf-like EQ: adds ``low_db``/``high_db`` of gain below ``low_hz``/above ``high_hz``
    (first-order filters in parallel with the dry signal)."""
    y = x + (10 ** (low_db / 20) - 1) * lowpass(x, low_hz, sr, order=1)
    return y + (10 ** (high_db / 20) - 1) * highpass(x, high_hz, sr, order=1)


def waveshape(x: np.ndarray, drive: float) -> np.ndarray:
    """tanh soft clipping normalised so that a full-scale input stays near full scale."""
    drive = max(float(drive), 1e-3)
    return np.tanh(drive * x) / np.tanh(drive)


def bitcrush(x: np.ndarray, bits: float, downsample: int = 1) -> np.ndarray:
    """Quantise to ``bits`` and sample-and-hold every ``downsample`` samples."""
    levels = 2.0 ** (bits - 1)
    y = np.round(x * levels) / levels
    if downsample > 1:
        idx = (np.arange(len(y)) // downsample) * downsample
        y = y[idx]
    return y


def flanger(x: np.ndarray, sr: int, depth_ms: float = 3.0, rate_hz: float = 0.3, mix: float = 0.5,
            base_ms: float = 1.0) -> np.ndarray:
    """Sweeping short delay mixed with the dry signal (comb-filter sweep); delay read by np.interp."""
    n = x.shape[0]
    t = np.arange(n, dtype=np.float64)
    delay = (base_ms + depth_ms * 0.5 * (1 + np.sin(2 * np.pi * rate_hz * t / sr))) * sr / 1000.0
    pos = t - delay
    if x.ndim == 1:
        return (1 - mix * 0.5) * x + mix * 0.5 * np.interp(pos, t, x, left=0.0)
    return np.stack([(1 - mix * 0.5) * x[:, c] + mix * 0.5 * np.interp(pos, t, x[:, c], left=0.0)
                     for c in range(x.shape[1])], axis=1)


def reverb_ir(sr: int, seconds: float, rng: np.random.Generator, damping_hz: float = 6000.0,
              predelay: float = 0.01) -> np.ndarray:
    """Stereo impulse response (m, 2): decorrelated exponentially decaying noise (RT60 = ``seconds``)."""
    m = int(seconds * sr)
    t = np.arange(m) / sr
    env = 10 ** (-3 * t / seconds)  # -60 dB at t = seconds
    ir = rng.standard_normal((m, 2)) * env[:, None]
    ir = lowpass(ir, damping_hz, sr, order=1)
    ir = np.concatenate([np.zeros((int(predelay * sr), 2)), ir])
    return ir / np.sqrt(np.sum(ir**2, axis=0, keepdims=True) + 1e-12)


def circular_convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Circular convolution of a loop x (n, 2) (or (n,) → both channels) with ir (m, 2): the tail
    wraps around, which is the steady state of a repeating loop.  Linear FFT convolution at a fast
    length (scipy.signal.fftconvolve), then the part past n folded back onto the start."""
    n = x.shape[0]
    if x.ndim == 1:
        x = np.repeat(x[:, None], ir.shape[1], axis=1)
    y = signal.fftconvolve(x, ir, axes=0)
    k = -(-y.shape[0] // n)
    return np.pad(y, ((0, k * n - y.shape[0]), (0, 0))).reshape(k, n, y.shape[1]).sum(axis=0)


def convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Linear convolution (n, 2) * (m, 2) → (n + m - 1, 2) with scipy.signal.oaconvolve."""
    if x.ndim == 1:
        x = np.repeat(x[:, None], ir.shape[1], axis=1)
    return signal.oaconvolve(x, ir, axes=0)


def pan(x: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of a mono (n,) signal to (n, 2); position −1 (left) … 1 (right)."""
    a = (position + 1) * np.pi / 4
    return np.stack([x * np.cos(a), x * np.sin(a)], axis=1)


def formant_filter(x: np.ndarray, sr: int, formants: tuple[float, ...], q: float = 8.0) -> np.ndarray:
    """Sum of band-passes at vowel ``formants`` (Hz): turns a buzzy source into a vowel-like 'voice'."""
    y = np.zeros_like(x)
    for k, f in enumerate(formants):
        bw = f / q
        y = y + bandpass(x, f - bw, f + bw, sr, order=2) / (k + 1)
    return y


# --------------------------------------------------------------------------------------------
# physical-ish and additive instruments


def karplus_strong(freq: float, n: int, sr: int, rng: np.random.Generator, decay: float = 0.996,
                   brightness: float = 0.5) -> np.ndarray:
    """Plucked string (n,): a low-passed noise burst through the lossy comb
    y[t] = x[t] + decay * (y[t-L] + y[t-L-1]) / 2  (L = sr / freq samples).

    Every y[t] of a block of L samples depends only on earlier blocks, so the recursion runs one
    whole block per numpy step (n / L steps); it equals
    ``scipy.signal.lfilter([1], [1, 0, …, -decay/2, -decay/2], x)`` up to float rounding."""
    period = max(2, int(round(sr / freq)))
    burst = lowpass(rng.uniform(-1.0, 1.0, period), 500 + brightness * 9000, sr, order=1)
    y = np.zeros(n + period + 1)  # y[period + 1 + t] holds sample t; the front is the zero history
    off = period + 1
    y[off: off + min(period, n)] = burst[: min(period, n)]
    for start in range(period, n, period):
        stop = min(start + period, n)
        t = np.arange(start, stop) + off
        y[t] += 0.5 * decay * (y[t - period] + y[t - period - 1])
    out = y[off:]
    return out / (np.max(np.abs(out)) + 1e-9)


def additive_piano(freq: float, n: int, sr: int, partials: int = 12, inharmonicity: float = 4e-4,
                   decay: float = 1.2, brightness: float = 1.0) -> np.ndarray:
    """Piano-like tone (n,): stretched partials f_k = k f sqrt(1 + B k^2), upper ones decaying faster,
    plus a short hammer thump.  Vectorised over (partials, n)."""
    k = np.arange(1, partials + 1, dtype=np.float32)[:, None]
    fk = k * np.float32(freq) * np.sqrt(1 + np.float32(inharmonicity) * k**2)
    keep = fk[:, 0] < 0.45 * sr
    k, fk = k[keep], fk[keep]
    t = (np.arange(n, dtype=np.float32) / np.float32(sr))[None, :]
    amp = (1.0 / k**1.2) * np.float32(brightness) ** (k - 1)
    env = np.exp(-t * k / np.float32(decay)) * np.minimum(np.float32(1.0), t / np.float32(0.002))
    # float32: the (partials, n) matrix dominates the cost
    y = (amp * env * np.sin(np.float32(2 * np.pi) * fk * t + k)).sum(axis=0).astype(np.float64)
    return y / (np.max(np.abs(y)) + 1e-9)


# --------------------------------------------------------------------------------------------
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
    return waveshape(y, drive)


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
    prog = np.linspace(0.0, 1.0, n)
    noise = rng.standard_normal(n)
    centres = np.geomspace(start_hz, end_hz, 4)
    pos = prog * (len(centres) - 1)
    mono = np.zeros(n)
    for k, c in enumerate(centres):
        w = np.clip(1.0 - np.abs(pos - k), 0.0, 1.0)
        mono += w * bandpass(noise, c / 1.6, c * 1.6, sr)
    # width: the right channel is the left one delayed by 7 ms (cheap decorrelation)
    d = int(0.007 * sr)
    y = np.stack([mono, np.concatenate([mono[n - d:] * 0, mono[: n - d]]) if n > d else mono], axis=1)
    y /= np.max(np.abs(y)) + 1e-9
    if pitch is not None:
        f = np.geomspace(pitch[0], pitch[1], n)
        y += 0.35 * supersaw(f, n, sr, rng, voices=3, detune_cents=20)
    return y * (prog**2)[:, None]
