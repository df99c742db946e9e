"""Bar-aligned cues of a DJ set for visuals and lighting: ``cues.json``, ``cues.mid``, OSC replay.

Lighting desks and VJ tools switch on bars, so every cue sits on a bar line:

* **beats**: librosa's dynamic-programming beat tracker (``librosa.beat.beat_track``) on a
  kick-band onset envelope (the lowest mel bands, up to ~400 Hz,
  at 11.025 kHz), with a time-varying tempo (the local tempogram
  estimate within ``TEMPO_RANGE``, every 8th frame, median-smoothed over 8 s), so a mix whose tracks have different
  tempi keeps its grid; the range (all eight genres play at 115-130 BPM) keeps the tracker off
  the 4/3 and 2x tempi a syncopated lead suggests;
* **bars**: every 4th beat; the downbeat phase is where the beat-synchronous spectrum and chroma
  change most (sections and chords change on bars).  The phase may change (between tracks, or
  where the tracker adds or drops a beat); the phase sequence is the best path of a 4-state
  Viterbi with a switch cost (``PHASE_SWITCH_COST``), so a switch sits on the beat where the
  evidence turns, not somewhere inside a smoothing window.  Time before the first downbeat is a
  lead-in bar (bar 0);
* **genres**: the set's ``Timeline`` (``housex.djset.timeline``): its segments with their
  boundaries moved to the nearest bar line, and per-bar probabilities (the smoothed window
  probabilities interpolated at each bar's centre, rows summing to 1);
* **drops**: ``detect_set_drops`` (the dataset's drop detector, each drop found relative to its own
  track's level: tracks of a set are mastered at different levels), snapped to bars.

Writers: ``SetCues.write_json`` (everything above), ``SetCues.write_midi`` (a type-1 standard MIDI
file written with ``mido``: one quarter note per detected beat in the tempo map, so MIDI time is
set time; a controller lane per genre, CC ``CC_BASE + id`` = probability × 127 at each bar; a note
``DROP_NOTE`` held over each drop and a note ``GENRE_NOTE_BASE + id`` held over each genre
segment; markers naming them), and ``replay_osc`` (``python-osc`` UDP messages in real time or
``speed`` times faster: ``/housex/bar <index> <bpm>``, ``/housex/segment <genre>``,
``/housex/drop <n>`` at a drop's start and ``/housex/drop 0`` at its end, then
``/housex/genre <name> <prob>`` for every genre at every bar).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BEAT_SR = 11025  # rate of the beat analysis: frames of 23 ms, as librosa's default 22.05 kHz / 512
BEAT_HOP = 256
BEAT_MELS = 40  # ~66 Hz per band below 1 kHz
KICK_BANDS = 6  # the lowest bands, up to ~400 Hz: kick (and bass), no hats or stabs
BEATS_PER_BAR = 4
TEMPO_RANGE = (100.0, 145.0)  # BPM prior of the tempo estimate: house music, with margin
PHASE_SWITCH_COST = 3.0  # in units of the mean downbeat evidence of a beat (about one bar's worth)
TEMPO_STRIDE = 8  # the local tempo is estimated every 8th onset frame (186 ms); see local_tempo
TICKS_PER_BEAT = 480
CC_BASE = 20  # CC 20-27: undefined controllers in the MIDI spec, free for genre lanes
DROP_NOTE = 36  # C1
GENRE_NOTE_BASE = 48  # C2 + genre id
OSC_PREFIX = "/housex"
FORMATS = ("json", "midi")


# --------------------------------------------------------------------------------------------
# beats and bars
# --------------------------------------------------------------------------------------------


@dataclass
class BeatGrid:
    """Beat and bar times (s) of a signal of ``duration`` s.

    ``beats``: detected beats.  ``bars``: bar start times; ``bars[0]`` is 0 (a lead-in bar when the
    first downbeat comes later); bar ``i`` ends at ``bars[i + 1]`` (the last one at ``duration``).
    """

    beats: np.ndarray
    bars: np.ndarray
    duration: float

    @property
    def bar_ends(self) -> np.ndarray:
        return np.append(self.bars[1:], self.duration)

    @property
    def tempo(self) -> float:
        """Median tempo in BPM (0 when fewer than two beats were found)."""
        return float(60.0 / np.median(np.diff(self.beats))) if len(self.beats) > 1 else 0.0

    def bar_tempi(self) -> np.ndarray:
        """BPM of each bar: the mean beat period over it and its two neighbours (beat times are
        frame-quantised: 3 bars keep the error near 0.5 BPM); the median tempo without beats."""
        out = np.full(len(self.bars), self.tempo)
        ends = self.bar_ends
        for i in range(len(self.bars)):
            lo, hi = self.bars[max(i - 1, 0)], ends[min(i + 1, len(ends) - 1)]
            a, b = np.searchsorted(self.beats, [lo, hi], side="left")
            if b - a >= 2:
                out[i] = 60.0 * (b - a - 1) / (self.beats[b - 1] - self.beats[a])
        return out

    def snap(self, t: float) -> int:
        """Index of the bar line nearest to ``t`` (bar lines: the bar starts and the end)."""
        lines = np.append(self.bars, self.duration)
        return int(np.argmin(np.abs(lines - t)))

    def line(self, i: int) -> float:
        return float(self.bars[i]) if i < len(self.bars) else float(self.duration)


def power_blocks(y, *, n_fft: int, hop_length: int, block_frames: int = 4096):
    """``(first frame, power block)`` of ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2``
    (centred, zero padding), ``block_frames`` frames at a time: the same frames, without an hour's
    complex spectrogram and its temporaries, nor a padded copy of the signal, in memory at once (their
    page faults cost more than the FFTs).  ``y``: an array, or an iterable of its consecutive chunks
    (a signal resampled as it is read: only a block's samples are ever held)."""
    import librosa

    chunks = iter([np.asarray(y, dtype=np.float32)] if isinstance(y, np.ndarray) else y)
    pad = n_fft // 2
    held, held_from, size = [], 0, None  # the samples held, from signal index held_from; the length once known
    a = 0
    while True:
        end = (a + block_frames - 1) * hop_length + n_fft - pad  # a full block's last sample + 1
        while size is None and held_from + sum(map(len, held)) < end:
            chunk = next(chunks, None)
            if chunk is None:
                size = held_from + sum(map(len, held))
            else:
                held.append(np.asarray(chunk, dtype=np.float32))
        n_frames = None if size is None else 1 + (size + 2 * pad - n_fft) // hop_length
        if n_frames is not None and a >= n_frames:
            return
        b = a + block_frames if n_frames is None else min(n_frames, a + block_frames)
        start, end = a * hop_length - pad, (b - 1) * hop_length + n_fft - pad  # in the unpadded signal
        stop = end if size is None else min(end, size)
        signal = held[0] if len(held) == 1 else np.concatenate([np.zeros(0, np.float32), *held])  # an array: never copied
        block = signal[max(start, 0) - held_from:stop - held_from]
        if start < 0 or end > stop:  # the first and last blocks reach into the zero padding
            block = np.pad(block, (max(0, -start), end - stop))
        yield a, np.abs(librosa.stft(block, n_fft=n_fft, hop_length=hop_length, center=False)) ** 2
        a = b
        keep = max(0, a * hop_length - pad)  # the next block's first sample
        held, held_from = [signal[keep - held_from:]], keep


def power_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int, block_frames: int = 4096) -> np.ndarray:
    """``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2`` (centred, zero padding),
    (1 + n_fft // 2, 1 + len(y) // hop_length) float32, from :func:`power_blocks`."""
    n_frames = 1 + (np.asarray(y).size + 2 * (n_fft // 2) - n_fft) // hop_length
    out = np.empty((1 + n_fft // 2, n_frames), dtype=np.float32)
    for a, block in power_blocks(y, n_fft=n_fft, hop_length=hop_length, block_frames=block_frames):
        out[:, a:a + block.shape[1]] = block
    return out


def beat_features(y) -> tuple[np.ndarray, np.ndarray]:
    """``(mel power, chroma)`` of the beat analysis (``BEAT_MELS`` bands; chroma with tuning 0) at
    ``BEAT_SR``, a block of the power spectrogram at a time: each is a per-frame product with the
    power, so the blocks give librosa's result on the whole spectrogram, sample for sample, and the
    spectrogram itself (0.95 GB for 3 hours) is never whole in memory."""
    import librosa

    mels, chromas = [], []
    for _, power in power_blocks(y, n_fft=1024, hop_length=BEAT_HOP):
        mels.append(librosa.feature.melspectrogram(S=power, sr=BEAT_SR, n_mels=BEAT_MELS))
        # tuning 0: librosa would estimate it from the whole spectrogram (pitch tracking, ~20 s and
        # gigabytes for an hour) for a chroma that only has to change on chord changes
        chromas.append(librosa.feature.chroma_stft(S=power, sr=BEAT_SR, tuning=0.0))
    return np.concatenate(mels, axis=1), np.concatenate(chromas, axis=1)


_beat_tracker_compiled = False


@contextlib.contextmanager
def _first_call_locked():
    global _beat_tracker_compiled
    if _beat_tracker_compiled:
        yield
        return
    from .dataset_script.librosa_import import numba_cache_lock

    with numba_cache_lock():
        yield
    _beat_tracker_compiled = True


def beat_grid(mono: np.ndarray, sr: int, *, beats_per_bar: int = BEATS_PER_BAR) -> BeatGrid:
    """Beats and bars of a mono signal (see the module docstring for the method)."""
    from .dataset_script.librosa_import import import_librosa

    librosa = import_librosa()

    duration = mono.size / sr
    y = np.asarray(mono, dtype=np.float32)
    signal = y
    if sr != BEAT_SR:  # resampled as the spectrogram reads it (soxr's stream: its one-shot samples)
        from .dataset_script.audio import resample_blocks

        block = 1 << 20
        signal = resample_blocks((y[i:i + block] for i in range(0, y.size, block)), sr, BEAT_SR, quality="LQ")
    mel, chroma = beat_features(signal)
    mel_db = librosa.power_to_db(mel)
    del mel
    env = librosa.onset.onset_strength(S=mel_db[:KICK_BANDS], sr=BEAT_SR, hop_length=BEAT_HOP)
    local = local_tempo(env)
    with _first_call_locked():  # the beat tracker compiles (and caches) its numba functions on its first call
        _, frames = librosa.beat.beat_track(onset_envelope=env, sr=BEAT_SR, hop_length=BEAT_HOP, bpm=local, trim=False)
    frames = np.asarray(frames, dtype=int)
    beats = np.maximum(_refine(env, frames) * BEAT_HOP / BEAT_SR, 0.0)
    beats = beats[beats < duration]
    frames = frames[: len(beats)]
    if len(beats) < beats_per_bar:
        return BeatGrid(beats, np.zeros(1), duration)
    # Downbeat evidence of each beat: how much the beat-synchronous spectrum and chroma change on entering it.
    bounds = librosa.util.fix_frames(frames, x_min=0, x_max=mel_db.shape[1], pad=True)
    after = np.searchsorted(bounds, frames)  # the synced column that starts at beat k
    changes = []
    for feature in (mel_db, chroma):
        synced = librosa.util.sync(feature, bounds, aggregate=np.mean)  # column j: frames bounds[j] to bounds[j + 1]
        change = np.linalg.norm(synced[:, after] - synced[:, np.maximum(after - 1, 0)], axis=0)
        changes.append(change / max(float(change.mean()), 1e-12))
    evidence = np.mean(changes, axis=0)  # mean 1 per beat
    phase = downbeat_phases(evidence, beats_per_bar=beats_per_bar, switch_cost=PHASE_SWITCH_COST)
    downbeats = beats[np.arange(len(beats)) % beats_per_bar == phase]
    if downbeats.size == 0:
        return BeatGrid(beats, np.zeros(1), duration)
    bars = np.r_[0.0, downbeats[1:]] if downbeats[0] <= 1e-3 else np.r_[0.0, downbeats]
    return BeatGrid(beats, bars.astype(np.float64), duration)


def downbeat_phases(evidence: np.ndarray, *, beats_per_bar: int = BEATS_PER_BAR,
                    switch_cost: float = PHASE_SWITCH_COST) -> np.ndarray:
    """The downbeat phase of every beat: (n_beats,) ints in ``[0, beats_per_bar)``; beat ``k`` is a
    downbeat where ``k % beats_per_bar == phase[k]``.

    The best path of a Viterbi over the phases: a path collects ``evidence[k]`` at each beat it calls a
    downbeat and pays ``switch_cost`` for every change of phase."""
    n = len(evidence)
    k = np.arange(n)
    gain = np.zeros((n, beats_per_bar))
    gain[k, k % beats_per_bar] = evidence
    score = np.zeros(beats_per_bar)
    came_from = np.zeros((n, beats_per_bar), dtype=int)
    for i in range(n):
        best = int(score.argmax())
        stay = score >= score[best] - switch_cost
        came_from[i] = np.where(stay, np.arange(beats_per_bar), best)
        score = np.where(stay, score, score[best] - switch_cost) + gain[i]
    phase = np.empty(n, dtype=int)
    phase[-1] = int(score.argmax()) if n else 0
    for i in range(n - 1, 0, -1):
        phase[i - 1] = came_from[i, phase[i]]
    return phase


def strided_tempo(env: np.ndarray, stride: int = TEMPO_STRIDE, *, prior=None) -> np.ndarray:
    """librosa's local tempo estimate (BPM) at every ``stride``-th onset frame: equal to
    ``librosa.feature.tempo(onset_envelope=env, sr=BEAT_SR, hop_length=BEAT_HOP, aggregate=None, prior=prior)[::stride]``
    (tested), computed from those frames' autocorrelation windows only (librosa's tempogram:
    8 s Hann windows centred on each frame, linear-ramp padding, inf-norm; then its prior and argmax)."""
    import librosa

    n = env.shape[-1]
    win = int(librosa.time_to_frames(8.0, sr=BEAT_SR, hop_length=BEAT_HOP).item())  # tempo()'s ac_size
    padded = np.pad(env, (win // 2, win // 2), mode="linear_ramp", end_values=[0, 0])
    frames = librosa.util.frame(padded, frame_length=win, hop_length=stride)[:, : (n + stride - 1) // stride]
    window = librosa.filters.get_window("hann", win, fftbins=True)[:, None]
    # every column is its own estimate: a few thousand at a time keep the autocorrelation's complex
    # temporaries (~0.6 GB for 3 hours at once) small, with the same numbers
    tempi = []
    for a in range(0, frames.shape[1], 4096):
        tg = librosa.util.normalize(librosa.autocorrelate(frames[:, a:a + 4096] * window, axis=-2), norm=np.inf, axis=-2)
        tempi.append(librosa.feature.tempo(tg=tg, sr=BEAT_SR, hop_length=BEAT_HOP, aggregate=None, prior=prior))
    return np.concatenate(tempi)


def local_tempo(env: np.ndarray, stride: int = TEMPO_STRIDE) -> np.ndarray:
    """Tempo (BPM) per onset frame: the local estimate (:func:`strided_tempo`, within ``TEMPO_RANGE``)
    median-smoothed over 8 s.

    Estimating every ``stride`` frames instead of every frame costs 1/``stride`` of the
    tempogram, which was the slowest step of a set's cues (seconds per hour of audio).  The 8 s
    median runs over the strided estimates and each frame takes the nearest one, so a tempo
    change between tracks moves by at most ``stride // 2`` frames (beats and bars of the test
    mixes unchanged; on the benchmark's hour, 1 % of the bars, near track changes, moved).
    """
    from scipy import ndimage, stats

    n = env.shape[-1]
    local = strided_tempo(env, stride, prior=stats.uniform(TEMPO_RANGE[0], TEMPO_RANGE[1] - TEMPO_RANGE[0]))
    local = ndimage.median_filter(local, size=max(1, round(8 * BEAT_SR / BEAT_HOP / stride)), mode="nearest")
    return local[np.minimum((np.arange(n) + stride // 2) // stride, local.size - 1)]


def _refine(env: np.ndarray, frames: np.ndarray, radius: int = 3) -> np.ndarray:
    """Beat frames moved to the strongest onset within ``radius`` frames (sub-frame, parabolic).

    The tracker's tempo grid is coarse (about 3 % between neighbouring tempi at 120 BPM), so its
    beats sit a frame or two off the kicks when a track's tempo falls between two grid tempi."""
    if len(frames) == 0:
        return frames.astype(np.float64)
    offsets = np.arange(-radius, radius + 1)
    idx = np.clip(frames[:, None] + offsets[None, :], 0, len(env) - 1)
    peak = idx[np.arange(len(frames)), env[idx].argmax(1)]
    left, mid, right = env[np.maximum(peak - 1, 0)], env[peak], env[np.minimum(peak + 1, len(env) - 1)]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    return peak + np.clip(shift, -0.5, 0.5)


# --------------------------------------------------------------------------------------------
# cues
# --------------------------------------------------------------------------------------------


@dataclass
class CueSegment:
    """A genre segment on bar lines ``[bar_start, bar_end)``."""

    start: float
    end: float
    bar_start: int
    bar_end: int
    genre: str
    score: float


@dataclass
class CueDrop:
    """Drop ``n`` (1-based) on bar lines ``[bar_start, bar_end)``."""

    n: int
    start: float
    end: float
    bar_start: int
    bar_end: int


@dataclass
class SetCues:
    """Bar-aligned cues of a set; ``write`` gives ``cues.json`` / ``cues.mid``."""

    source: str
    duration: float
    grid: BeatGrid
    labels: list[str]
    bar_probabilities: np.ndarray  # (n_bars, n_labels), rows sum to 1
    segments: list[CueSegment]
    drops: list[CueDrop]
    settings: dict = field(default_factory=dict)

    @property
    def tempo(self) -> float:
        return self.grid.tempo

    def to_dict(self) -> dict:
        grid = self.grid
        return {
            "source": self.source,
            "duration": round(self.duration, 3),
            "tempo": round(self.tempo, 2),
            "beats_per_bar": BEATS_PER_BAR,
            "labels": list(self.labels),
            "beats": [round(float(t), 3) for t in grid.beats],
            "bars": {
                "start": [round(float(t), 3) for t in grid.bars],
                "end": [round(float(t), 3) for t in grid.bar_ends],
                "bpm": [round(float(b), 2) for b in grid.bar_tempi()],
                "probabilities": np.round(self.bar_probabilities, 4).tolist(),
            },
            "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "bar_start": s.bar_start,
                          "bar_end": s.bar_end, "genre": s.genre, "score": round(s.score, 4)} for s in self.segments],
            "drops": [{"n": d.n, "start": round(d.start, 3), "end": round(d.end, 3), "bar_start": d.bar_start,
                       "bar_end": d.bar_end} for d in self.drops],
            "midi": {"ticks_per_beat": TICKS_PER_BEAT, "drop_note": DROP_NOTE,
                     "genre_cc": {g: CC_BASE + i for i, g in enumerate(self.labels)},
                     "genre_notes": {g: GENRE_NOTE_BASE + i for i, g in enumerate(self.labels)}},
            "settings": dict(self.settings),
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def write_midi(self, path: str | os.PathLike) -> Path:
        """Standard MIDI file (type 1): tempo map + markers, genre CC lanes, drop/genre notes."""
        import mido

        times = _midi_beat_times(self.grid)
        tick_of = {}  # bar line index -> tick
        lines = np.append(self.grid.bars, self.duration)
        for i, t in enumerate(lines):
            tick_of[i] = int(np.argmin(np.abs(times - t))) * TICKS_PER_BEAT

        tempo_events = [(0, mido.MetaMessage("time_signature", numerator=BEATS_PER_BAR, denominator=4, time=0))]
        realised = 0.0  # the time mido computes: integer microseconds per beat, errors not accumulated
        for j in range(len(times) - 1):
            us = int(round((times[j + 1] - realised) * 1e6))
            us = min(max(us, 1), 0xFFFFFF)
            realised += us / 1e6
            tempo_events.append((j * TICKS_PER_BEAT, mido.MetaMessage("set_tempo", tempo=us, time=0)))
        markers = [(tick_of[s.bar_start], mido.MetaMessage("marker", text=s.genre, time=0)) for s in self.segments]
        markers += [(tick_of[d.bar_start], mido.MetaMessage("marker", text=f"drop {d.n}", time=0)) for d in self.drops]

        cc = []
        for b, probs in enumerate(self.bar_probabilities):
            for g, p in enumerate(probs):
                cc.append((tick_of[b], mido.Message("control_change", channel=0, control=CC_BASE + g,
                                                    value=int(round(float(p) * 127)), time=0)))
        notes = []  # note_off sorts before note_on at the same tick (priority 0 < 1)
        for s in self.segments:
            note = GENRE_NOTE_BASE + self.labels.index(s.genre)
            notes.append((tick_of[s.bar_start], 1, mido.Message("note_on", note=note, velocity=100, time=0)))
            notes.append((tick_of[s.bar_end], 0, mido.Message("note_off", note=note, velocity=0, time=0)))
        for d in self.drops:
            notes.append((tick_of[d.bar_start], 1, mido.Message("note_on", note=DROP_NOTE, velocity=127, time=0)))
            notes.append((tick_of[d.bar_end], 0, mido.Message("note_off", note=DROP_NOTE, velocity=0, time=0)))
        notes.sort(key=lambda e: (e[0], e[1]))

        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        mid.tracks.append(_track("housex tempo", sorted(tempo_events + markers, key=lambda e: e[0])))
        mid.tracks.append(_track("housex genre lanes", cc))
        mid.tracks.append(_track("housex drops and genres", [(t, m) for t, _, m in notes]))
        path = Path(path)
        mid.save(path)
        return path

    def write(self, folder: str | os.PathLike, formats=FORMATS) -> dict[str, Path]:
        """Write ``cues.json`` and/or ``cues.mid`` into ``folder``; returns the paths by format."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown:
            raise ValueError(f"unknown cue format(s) {unknown}; known: {list(FORMATS)}")
        out = {}
        if "json" in formats:
            out["json"] = self.write_json(folder / "cues.json")
        if "midi" in formats:
            out["midi"] = self.write_midi(folder / "cues.mid")
        return out

    def osc_messages(self) -> list[tuple[float, str, list]]:
        """``(time s, address, arguments)`` of every OSC cue, in the order they are sent."""
        events = []  # (time, priority, address, args)
        bpm = self.grid.bar_tempi()
        for b, start in enumerate(self.grid.bars):
            events.append((float(start), 0, f"{OSC_PREFIX}/bar", [b, round(float(bpm[b]), 2)]))
            events += [(float(start), 4, f"{OSC_PREFIX}/genre", [g, round(float(p), 4)])
                       for g, p in zip(self.labels, self.bar_probabilities[b])]
        events += [(s.start, 1, f"{OSC_PREFIX}/segment", [s.genre]) for s in self.segments]
        events += [(d.end, 2, f"{OSC_PREFIX}/drop", [0]) for d in self.drops]
        events += [(d.start, 3, f"{OSC_PREFIX}/drop", [d.n]) for d in self.drops]
        events.sort(key=lambda e: (e[0], e[1]))
        return [(t, address, args) for t, _, address, args in events]

    def format(self) -> str:
        from .results import mmss

        lines = [f"{self.source}: {self.tempo:.1f} BPM, {len(self.grid.bars)} bars, {len(self.segments)} segments, "
                 f"{len(self.drops)} drops"]
        lines += [f"  bar {s.bar_start:>4}-{s.bar_end:<4} {mmss(s.start):>8}  {s.genre}" for s in self.segments]
        lines += [f"  drop {d.n}: bar {d.bar_start}-{d.bar_end} ({mmss(d.start)}-{mmss(d.end)})" for d in self.drops]
        return "\n".join(lines)


def _track(name, events):
    """A mido track from ``(absolute tick, message)`` pairs in time order (delta times filled in)."""
    import mido

    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _midi_beat_times(grid: BeatGrid) -> np.ndarray:
    """Times (s) of the MIDI quarter notes: the detected beats, with the lead-in before the first
    beat and the tail after the last one split into notes of the median beat length; starts at 0,
    ends at the duration."""
    beat = 60.0 / grid.tempo if grid.tempo > 0 else 0.5
    beats = grid.beats[(grid.beats > 1e-3) & (grid.beats < grid.duration - 1e-3)]
    first = beats[0] if len(beats) else grid.duration
    lead = np.linspace(0.0, first, max(1, int(round(first / beat))) + 1)[:-1] if first > 1e-3 else np.zeros(0)
    last = beats[-1] if len(beats) else 0.0
    n_tail = max(1, int(round((grid.duration - last) / beat)))
    tail = np.linspace(last, grid.duration, n_tail + 1)[1:] if len(beats) else np.array([grid.duration])
    times = np.concatenate([lead, beats, tail])
    if times[0] > 1e-3:
        times = np.r_[0.0, times]
    return times  # every bar line is one of them: bars are detected beats, or 0


def build_cues(tl, mono: np.ndarray, sr: int, *, grid: BeatGrid | None = None, drop_options: dict | None = None) -> SetCues:
    """Cues of a set from its ``Timeline`` and its mono signal (at ``sr``, the one the timeline saw)."""
    from .dataset_script.drops import detect_set_drops

    grid = grid or beat_grid(mono, sr)
    labels = list(tl.labels)
    ends = grid.bar_ends
    centres = (grid.bars + ends) / 2
    times = np.asarray(tl.times, dtype=np.float64)
    probs = np.stack([np.interp(centres, times, tl.smoothed[:, c]) for c in range(len(labels))], axis=1)
    probs = (probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)).astype(np.float32)

    segments: list[CueSegment] = []
    for s in tl.segments:
        a, b = grid.snap(s.start), grid.snap(s.end)
        if b <= a:
            continue  # shorter than a bar once on the grid
        if segments and segments[-1].genre == s.genre:
            segments[-1].bar_end, segments[-1].end = b, grid.line(b)
            continue
        if segments:
            a = segments[-1].bar_end  # contiguous
        segments.append(CueSegment(grid.line(a), grid.line(b), a, b, s.genre, s.score))
    if segments:
        segments[-1].bar_end, segments[-1].end = len(grid.bars), grid.duration

    detection = detect_set_drops(mono, sr, **(drop_options or {}))
    drops = []
    for a_s, b_s in detection.sections:
        a, b = grid.snap(a_s), grid.snap(b_s)
        if b > a:
            drops.append(CueDrop(len(drops) + 1, grid.line(a), grid.line(b), a, b))
    settings = {**tl.settings, "hop_seconds": tl.hop_seconds, "beat_tracker": "librosa.beat.beat_track"}
    return SetCues(tl.source, grid.duration, grid, labels, probs, segments, drops, settings)


def _import_beat_tracker() -> None:
    from .dataset_script.librosa_import import import_librosa

    import_librosa()


def set_cues(source, model, feature_extractor=None, *, sampling_rate: int | None = None, min_seconds: float = 1.0,
             drop_options: dict | None = None, device=None, **timeline_options):
    """Decode a set once, run ``timeline`` on it and build its cues → ``(Timeline, SetCues)``.

    ``timeline_options``: ``hop_seconds``, ``smooth_seconds``, ``smoothing``,
    ``min_segment_seconds``, ``batch_size``, ``progress`` (as ``housex.djset.timeline``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .djset import timeline_from_mono
    from .inference import load_classifier
    from .track_audio import read_audio

    # The beat grid needs only the signal: it runs in a thread beside the timeline's window batches
    # (librosa/numpy leave the GIL in their heavy parts), so its single-threaded seconds overlap them.
    # That thread first imports librosa's beat tracker, whose import compiles numba functions (~5 s of
    # CPU once per process), while this one loads the model and decodes the set.
    with ThreadPoolExecutor(1, thread_name_prefix="housex-beats") as pool:
        pool.submit(_import_beat_tracker)
        model, feature_extractor = load_classifier(model, feature_extractor, device=device)
        sr = int(feature_extractor.sampling_rate)
        mono, name, _ = read_audio(source, sampling_rate, sr, min_seconds=min_seconds)
        grid = pool.submit(beat_grid, mono, sr)
        tl = timeline_from_mono(mono, name, model, feature_extractor, device=device, **timeline_options)
        return tl, build_cues(tl, mono, sr, grid=grid.result(), drop_options=drop_options)


# --------------------------------------------------------------------------------------------
# OSC
# --------------------------------------------------------------------------------------------


def parse_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9000"`` → ``("127.0.0.1", 9000)``; a clear error otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--osc: expected HOST:PORT (e.g. 127.0.0.1:9000), got {text!r}")
    return host, int(port)


def replay_osc(cues: SetCues, host: str, port: int, *, speed: float = 1.0, start: float | None = None,
               sleep=time.sleep) -> int:
    """Send ``cues.osc_messages()`` over UDP to ``host:port`` at their times divided by ``speed``
    (from now, or from the ``time.perf_counter()`` value ``start``); returns the number sent."""
    from pythonosc.udp_client import SimpleUDPClient

    if not speed > 0 or not math.isfinite(speed):
        raise ValueError(f"--speed must be a positive number, got {speed}")
    client = SimpleUDPClient(host, port)
    t0 = time.perf_counter() if start is None else start
    sent = 0
    for t, address, args in cues.osc_messages():
        wait = t0 + t / speed - time.perf_counter()
        if wait > 0:
            sleep(wait)
        client.send_message(address, args)
        sent += 1
    return sent
