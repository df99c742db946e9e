"""Synthetic HouseX: a procedural house-music generator that writes a real-format release folder.

``generate_release(out_dir, n_tracks, seed)`` writes, like one folder of the real HouseX-v2 release:

- ``<hash>-Synth_<index>.flac`` (or ``.ogg``): 44.1 kHz stereo, peak-normalised tracks;
- ``synthetic-partition.json``: a Label-Studio export in the real export's shape (one number
  result per genre, 'Techno' for Tech House), readable by :func:`release.parse_export`;
- ``generator-truth.json``: the generator's own truth per track (genre weights, which genre each
  part was drawn from, bpm, key, sections and drop sections in seconds, sampled parameters).
  Its name deliberately contains no ``detect``: it is not a drop-detection file.

How a track is made (all choices from ``numpy.random.default_rng([seed, index, ...])``, so a
track's bytes do not depend on which worker renders it):

1. a soft label with the real export's statistics (:func:`sample_label`);
2. a plan (:func:`plan_track`): each part group (tempo, drums, bass, lead, chords, groove, rhythm,
   distortion, organicity, space) is drawn from ONE genre of the label, in proportion to the
   weights (:func:`part_sources`: a 0.75/0.25 track takes 7 or 8 of its 10 groups, and always its
   signature bass and lead, from its primary genre; a one-genre track's (bass, lead) pair is one
   no other genre has, :func:`signature_pairs`), so the audio is what the label says; timbre, mix
   levels, EQ tilt, swing, noise floor and loudness contrast are random per track and shared by
   all genres, so no single statistic gives the genre away;
3. an arrangement intro → build-up → drop 1 → breakdown → build-up → drop 2 → outro in bars, drops
   16–32 bars and several dB louder than the rest (a few tracks get drops shorter than the drop
   detector's 15 s minimum, so it has to use its fallback);
4. rendering (:func:`render_track`): every part is synthesised once as a 4-bar loop (one chord per
   bar) and tiled into the sections — vectorised numpy/scipy, no per-sample Python loops.

Genre character follows the paper's Table 1 (see ``GENRE_PROFILES``).

Modules, one job each: :mod:`.labels` (label statistics, random streams), :mod:`.profiles` (genre
profiles, part sources), :mod:`.plan` (the track plan, arrangement), :mod:`.notes` (note patterns),
:mod:`.voices` (one table entry per sound kind: notes, voice, post-processing), :mod:`.loop` (the
4-bar loop), :mod:`.render` (parts → sections → track), :mod:`.writer` (the release folder),
:mod:`.dsp` (the DSP building blocks).
"""

from __future__ import annotations

from ..release import EXPORT_NAME, TRUTH_NAME, read_truth
from .labels import DEFAULT_GENRE_FREQUENCIES, LABEL_PATTERNS, PAIR_AFFINITY, genre_frequency_vector, sample_label, sample_labels
from .plan import TrackPlan, plan_arrangement, plan_track, preview_plan
from .profiles import GENRE_PROFILES, PART_GROUPS, SIGNATURE_GROUPS, part_sources, signature_pairs
from .render import SAMPLE_RATE, render_track
from .writer import FORMATS, audio_file_name, generate_release, track_record, write_audio

__all__ = [
    "DEFAULT_GENRE_FREQUENCIES", "EXPORT_NAME", "FORMATS", "GENRE_PROFILES", "LABEL_PATTERNS", "PAIR_AFFINITY", "PART_GROUPS",
    "SAMPLE_RATE", "SIGNATURE_GROUPS", "TRUTH_NAME", "TrackPlan", "audio_file_name", "generate_release",
    "genre_frequency_vector", "part_sources", "plan_arrangement", "plan_track", "preview_plan", "read_truth",
    "render_track", "sample_label", "sample_labels", "signature_pairs",
    "track_record", "write_audio",
]
