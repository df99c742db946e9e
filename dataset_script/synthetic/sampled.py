"""Sampled instruments: notes of a General MIDI SoundFont rendered by FluidSynth (pyfluidsynth).

The organic parts of a track (piano, electric piano, strings, guitar, brass, choir) are played by
the SoundFont's recorded instruments instead of oscillators.  The note patterns stay the plan's:
this module only turns one (program, MIDI note, gate) into audio.

Determinism: FluidSynth reuses its voice objects, and a voice's filter starts from whatever the
previous note left in it, so the same note rendered after different notes differs slightly.  Each
note is therefore rendered by a fresh synthesiser that shares the one loaded SoundFont (loading
it takes ~0.3 s; a synthesiser ~0.03 ms), and all buffers are whole FluidSynth blocks (64 samples)
so a note-on always falls on a block boundary.  A note's samples then depend on its key alone,
whatever was rendered before it and in whichever worker process.

The SoundFont is Debian's ``fluid-soundfont-gm`` (FluidR3_GM, MIT licence), installed by
``make setup`` with the ``libfluidsynth3`` library; ``HOUSEX_SOUNDFONT`` points to another file.
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

SOUNDFONT_ENV = "HOUSEX_SOUNDFONT"
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
INSTALL_HINT = "install Debian's fluidsynth and fluid-soundfont-gm packages ('make setup' does, as root)"
BLOCK = 64  # FluidSynth's internal block: note events take effect at block boundaries
VELOCITY = 100

#: General MIDI programs (0-based) of the sampled instruments, per kind; a track picks one of each.
PROGRAMS: dict[str, tuple[int, ...]] = {
    "piano": (0, 1),  # Acoustic Grand, Bright Acoustic
    "epiano": (4, 5),  # Electric Piano 1 (Rhodes), 2 (DX)
    "strings": (48, 49),  # String Ensemble 1, 2
    "guitar": (24, 25),  # Nylon, Steel
    "brass": (61, 62),  # Brass Section, Synth Brass 1
    "choir": (52, 53),  # Choir Aahs, Voice Oohs
}


class SoundFontMissing(RuntimeError):
    """FluidSynth or the General MIDI SoundFont is not installed."""


def soundfont_path() -> Path:
    """The SoundFont file: ``$HOUSEX_SOUNDFONT`` or Debian's FluidR3_GM."""
    if os.environ.get(SOUNDFONT_ENV):
        path = Path(os.environ[SOUNDFONT_ENV])
        if not path.is_file():
            raise SoundFontMissing(f"{SOUNDFONT_ENV}={path}: no such SoundFont file")
        return path
    for candidate in SOUNDFONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SoundFontMissing(f"the synthetic generator's sampled instruments need the General MIDI SoundFont "
                           f"FluidR3_GM.sf2 (looked in {', '.join(SOUNDFONT_PATHS)}): {INSTALL_HINT}, "
                           f"or set {SOUNDFONT_ENV} to a .sf2 file")


class _Bank:
    """One loaded SoundFont and the C functions that render notes from it."""

    def __init__(self, path: Path, sr: int):
        try:
            import fluidsynth
        except ImportError as e:  # pyfluidsynth raises ImportError when libfluidsynth is missing
            raise SoundFontMissing(f"FluidSynth is not available ({e}): {INSTALL_HINT}") from None
        c = fluidsynth.cfunc
        vp, ci = ctypes.c_void_p, ctypes.c_int
        # "No preset found on channel N" for the 15 idle channels of every fresh synthesiser
        c("fluid_set_log_function", vp, ("level", ci, 1), ("fun", vp, 1), ("data", vp, 1))(2, None, None)
        self._write = c("fluid_synth_write_float", ci, ("synth", vp, 1), ("len", ci, 1), ("lout", vp, 1),
                        ("loff", ci, 1), ("lincr", ci, 1), ("rout", vp, 1), ("roff", ci, 1), ("rincr", ci, 1))
        self._add = c("fluid_synth_add_sfont", ci, ("synth", vp, 1), ("sfont", vp, 1))
        self._remove = c("fluid_synth_remove_sfont", ci, ("synth", vp, 1), ("sfont", vp, 1))
        get_sfont = c("fluid_synth_get_sfont_by_id", vp, ("synth", vp, 1), ("id", ci, 1))
        self.fs = fluidsynth
        # no built-in reverb/chorus (the generator adds its own), one core, few voices
        self.home = fluidsynth.Synth(gain=0.5, samplerate=float(sr), **{
            "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1, "synth.polyphony": 32})
        sfid = self.home.sfload(str(path))
        if sfid < 0:
            raise SoundFontMissing(f"{path}: FluidSynth cannot load this SoundFont")
        self.sfont = get_sfont(self.home.synth, sfid)
        self.path = path

    def render(self, program: int, midi: int, gate: int, length: int) -> np.ndarray:
        fs = self.fs
        on = -(-max(gate, 1) // BLOCK) * BLOCK
        total = -(-max(length, on) // BLOCK) * BLOCK
        buf = np.zeros((total, 2), dtype=np.float32)
        synth = fs.new_fluid_synth(self.home.settings)
        try:
            sfid = self._add(synth, self.sfont)
            fs.fluid_synth_program_select(synth, 0, sfid, 0, program)
            fs.fluid_synth_noteon(synth, 0, midi, VELOCITY)
            self._write(synth, on, buf.ctypes.data, 0, 2, buf.ctypes.data, 1, 2)
            fs.fluid_synth_noteoff(synth, 0, midi)
            if total > on:
                tail = buf[on:]
                self._write(synth, total - on, tail.ctypes.data, 0, 2, tail.ctypes.data, 1, 2)
        finally:
            self._remove(synth, self.sfont)  # the SoundFont stays with the home synthesiser
            fs.delete_fluid_synth(synth)
        return buf[:length]


@lru_cache(maxsize=4)
def _bank(path: str, sr: int) -> _Bank:
    return _Bank(Path(path), sr)


def render_note(program: int, midi: int, gate: int, length: int, sr: int) -> np.ndarray:
    """One note of General MIDI ``program`` held for ``gate`` samples, released, ``length`` samples
    in all: float32 (length, 2), FluidSynth's own stereo placement."""
    if not 0 <= program < 128 or not 0 <= midi < 128:
        raise ValueError(f"program {program} / MIDI note {midi}: expected 0-127")
    return _bank(str(soundfont_path()), int(sr)).render(int(program), int(midi), int(gate), int(length))


def soundfont_info() -> dict:
    """Name and size of the SoundFont in use (a release's bytes depend on it)."""
    path = soundfont_path()
    return {"soundfont": path.name, "soundfont_bytes": path.stat().st_size}
