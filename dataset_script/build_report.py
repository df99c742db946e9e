"""What a build read, wrote and skipped: the reasons a track is left out and the build's summary.

The builder fills a :class:`BuildSummary` while it prepares its splits (``HouseXBuilder.summary``);
``housex build`` prints its :meth:`~BuildSummary.format`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from .audio import MAX_SAMPLE_RATE, EmptyAudioFile, NonFiniteAudio
from .clips import TrackTooShort


class SkipReason(StrEnum):
    """Why a track is left out of the dataset (the summary counts tracks per reason)."""

    BAD_ANNOTATION = "bad annotation"
    UNSAFE_PATH = "unsafe audio path"
    MISSING_AUDIO = "missing audio"
    DUPLICATE = "duplicate track name"
    NOT_CLEAN = "filtered by label_mode=clean"
    UNREADABLE = "unreadable audio"
    EMPTY_FILE = "empty audio file"
    NON_FINITE = "non-finite audio"
    TOO_SHORT = "shorter than a clip"
    SILENT = "silent"
    NO_DROP = "no drop section"
    STRICT_FALLBACK = "fallback drop (strict)"
    UNSUPPORTED_RATE = f"sampling rate above {MAX_SAMPLE_RATE // 1000} kHz"
    TRUNCATED = "truncated audio (strict)"
    UNEXPECTED = "unexpected error"

    @classmethod
    def of_error(cls, error: Exception) -> SkipReason:
        """The reason of an audio error (:class:`AudioError` subclasses; anything else is unreadable)."""
        kinds = {TrackTooShort: cls.TOO_SHORT, NonFiniteAudio: cls.NON_FINITE, EmptyAudioFile: cls.EMPTY_FILE}
        return next((reason for kind, reason in kinds.items() if isinstance(error, kind)), cls.UNREADABLE)


@dataclass(frozen=True)
class Skip:
    """A track left out of the dataset: why (``reason``), and the details (file, numbers)."""

    source: str
    name: str
    reason: SkipReason
    detail: str = ""

    @property
    def text(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


NOTE_TRUNCATED = "truncated audio (the file holds less than its header says; kept)"
NOTE_CLIPPED = "audio over +1 dBFS (float files above full scale; clipped to ±1 in the FLAC clips)"
NOTE_UNLISTED = "audio files in a release folder that its export does not list (not read)"


@dataclass
class BuildSummary:
    """What a build read, wrote and skipped (filled while the builder prepares its splits)."""

    tracks_read: int = 0
    tracks: dict[str, int] = field(default_factory=dict)  # split -> tracks written
    clips: dict[str, int] = field(default_factory=dict)  # split -> clips written
    skipped: list[Skip] = field(default_factory=list)
    drops_from_file: int = 0
    drops_detected: int = 0
    fallback_tracks: int = 0
    padded_clips: int = 0
    # note kind -> "source/file" of tracks kept (or left out) with something worth a word (NOTE_*)
    notes: dict[str, list[str]] = field(default_factory=dict)
    out_dir: str = ""

    def note(self, kind: str, where: str) -> None:
        names = self.notes.setdefault(kind, [])
        if where not in names:
            names.append(where)

    def skip(self, source: str, name: str, reason: SkipReason, detail: str = "") -> None:
        if not any(s.source == source and s.name == name for s in self.skipped):
            self.skipped.append(Skip(source, name, reason, detail))

    def record_track(self, source: str, name: str, outcome) -> bool:
        """Record one processed track (a ``TrackOutcome``): its skip, or its notes and where its drops
        came from.  False when the track is skipped."""
        if outcome.skip is not None:
            self.skip(source, name, outcome.skip, outcome.detail)
            return False
        for kind in outcome.notes:
            self.note(kind, f"{source}/{name}")
        if outcome.drops.from_file:
            self.drops_from_file += 1
        else:
            self.drops_detected += 1
            self.fallback_tracks += int(outcome.drops.fallback)
        return True

    def skip_counts(self) -> Counter:
        """Skipped tracks per reason (keyed by the reason's text)."""
        return Counter(str(s.reason) for s in self.skipped)

    def format(self) -> str:
        lines = [f"tracks read: {self.tracks_read}"]
        if self.tracks:
            lines.append("tracks written: " + ", ".join(f"{k} {v}" for k, v in self.tracks.items()))
        if self.clips:
            lines.append("clips written: " + ", ".join(f"{k} {v}" for k, v in self.clips.items()))
        lines.append(
            f"drop sections: {self.drops_from_file} tracks from drop files, {self.drops_detected} detected"
            f" ({self.fallback_tracks} by fallback); {self.padded_clips} padded clips"
        )
        lines.append(f"tracks skipped: {len(self.skipped)}")
        for category, n in sorted(self.skip_counts().items()):
            lines.append(f"  {n} × {category}")
        for s in self.skipped[:20]:
            lines.append(f"    {s.source}/{s.name}: {s.text}")
        if len(self.skipped) > 20:
            lines.append(f"    ... and {len(self.skipped) - 20} more")
        for kind, names in self.notes.items():
            shown = ", ".join(names[:5]) + (f", ... and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"note: {len(names)} × {kind}: {shown}")
        if self.out_dir:
            lines.append(f"written to: {self.out_dir}")
        return "\n".join(lines)
