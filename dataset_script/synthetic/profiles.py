"""Genre profiles (paper Table 1; 1–5 scales for groove, rhythm, distortion, organicity) and which
genre of a label each part group of a track is drawn from."""

from __future__ import annotations

import numpy as np

from ..genres import GENRES

#: Each part group of a track is drawn from one genre's entry.  Ranges are (low, high) for a
#: uniform draw; tuples of names are choices (repeats weight a choice).
GENRE_PROFILES: dict[str, dict] = {
    # Each genre has a signature bass and lead (the FIRST entry of each; drawn most of the time) so
    # that a genre is audible in its parts; drums, tempo and effects overlap between genres as in
    # real music.  A one-genre track swaps at most one of the two for an alternate, so its
    # (bass, lead) pair is one no other genre's track can have (:func:`signature_pairs`).
    "Progressive House": dict(
        bpm=(124, 129), kick=("punchy", "punchy", "deep"), hats=("offbeat", "offbeat", "shuffle"),
        bass=("offbeat_saw", "offbeat_saw", "offbeat_saw", "rolling"), lead=("supersaw", "supersaw", "supersaw", "piano"),
        chords=("supersaw_pad", "supersaw_pad", "piano", "strings"), groove=(4, 5), rhythm=(1, 3),
        distortion=(1, 2), organicity=(3, 5), space=(0.3, 0.55),
    ),
    "Future House": dict(
        bpm=(123, 128), kick=("punchy", "tight"), hats=("offbeat", "busy"),
        bass=("bouncy", "bouncy", "bouncy", "growl"), lead=("chopped_square", "chopped_square", "chopped_square", "stab"),
        chords=("stab", None, None), groove=(3, 4), rhythm=(4, 5), distortion=(3, 4), organicity=(1, 3),
        space=(0.1, 0.3),
    ),
    "Bass House": dict(
        bpm=(123, 128), kick=("tight", "punchy"), hats=("busy", "offbeat"),
        bass=("growl", "growl", "growl", "reese"), lead=("stab", "stab", "stab", None), chords=(None,),
        groove=(2, 4), rhythm=(3, 4), distortion=(4, 5), organicity=(1, 2), space=(0.05, 0.25),
    ),
    "Tech House": dict(
        bpm=(119, 126), kick=("tight", "tight", "punchy"), hats=("busy", "busy", "shuffle"),
        bass=("rolling", "rolling", "rolling", "offbeat_saw"), lead=(None, None, None, "stab"), chords=(None, None, None, "stab"),
        groove=(3, 5), rhythm=(3, 4), distortion=(2, 4), organicity=(1, 3), space=(0.1, 0.3),
    ),
    "Deep House": dict(
        bpm=(117, 123), kick=("deep", "deep", "punchy"), hats=("shuffle", "shuffle", "offbeat"),
        bass=("reese", "reese", "reese", "rolling"), lead=("epiano", "epiano", "vocal"), chords=("pad7", "pad7", "piano"),
        groove=(2, 3), rhythm=(1, 2), distortion=(1, 2), organicity=(2, 4), space=(0.45, 0.75),
    ),
    "Bigroom": dict(
        bpm=(126, 131), kick=("bigroom", "bigroom", "bigroom", "punchy"), hats=("sparse", "offbeat"),
        bass=(None, None, None, "offbeat_saw"), lead=("horn", "horn", "horn", "supersaw"), chords=(None, None, "supersaw_pad"),
        groove=(1, 2), rhythm=(1, 3), distortion=(4, 5), organicity=(1, 2), space=(0.2, 0.45),
    ),
    "Future Rave": dict(
        bpm=(125, 129), kick=("punchy", "bigroom", "tight"), hats=("rolling", "rolling", "offbeat"),
        bass=("wave", "wave", "wave", "offbeat_saw"), lead=("buzz", "buzz", "buzz", "supersaw"), chords=(None, None, "supersaw_pad"),
        groove=(4, 5), rhythm=(3, 5), distortion=(2, 4), organicity=(1, 2), space=(0.2, 0.4),
    ),
    "Slap House": dict(
        bpm=(119, 125), kick=("punchy", "tight", "deep"), hats=("offbeat", "shuffle"),
        bass=("slap", "slap", "slap", "bouncy"), lead=("vocal", "vocal", "vocal", "chopped_square"), chords=(None, None, "piano"),
        groove=(3, 4), rhythm=(3, 5), distortion=(1, 3), organicity=(1, 2), space=(0.15, 0.4),
    ),
}

#: The part groups; each is drawn from one genre of the label.
PART_GROUPS = ("tempo", "drums", "bass", "lead", "chords", "groove", "rhythm", "distortion", "organicity", "space")
#: The groups that carry a genre's signature sound; they follow the label's top genre(s).
SIGNATURE_GROUPS = ("bass", "lead")


def part_sources(label: np.ndarray, rng: np.random.Generator) -> dict[str, str]:
    """Which genre each part group is drawn from, so that the audio is what the label says.

    Genre ``g`` supplies ``weight_g * len(PART_GROUPS)`` groups, rounded by largest remainder with
    random tie-breaks (a 0.75/0.25 label gives 8/2 or 7/3 groups: three quarters on average).  The
    signature groups (bass, lead) come from the top genre; when two genres tie for the top, one
    signature group each, so a 0.5/0.5 track really sounds half one and half the other.
    """
    genres = [int(g) for g in np.flatnonzero(label > 0)]
    # order by weight, ties in random order
    genres.sort(key=lambda g: (-label[g], float(rng.random())))
    exact = np.array([label[g] * len(PART_GROUPS) for g in genres])
    counts = np.floor(exact + 1e-9).astype(int)
    remainder = exact - counts
    order = sorted(range(len(genres)), key=lambda i: (-round(remainder[i], 9), float(rng.random())))
    for i in order[: len(PART_GROUPS) - int(counts.sum())]:
        counts[i] += 1
    top = [g for g in genres if np.isclose(label[g], label[genres[0]])]
    signature_owners = top[: len(SIGNATURE_GROUPS)] if len(top) > 1 else [genres[0]] * len(SIGNATURE_GROUPS)
    sources: dict[str, int] = dict(zip(SIGNATURE_GROUPS, signature_owners))
    left = {g: int(c) for g, c in zip(genres, counts)}
    for g in signature_owners:
        left[g] -= 1
    rest = [g for g in PART_GROUPS if g not in sources]
    pool = [g for g, c in left.items() for _ in range(max(c, 0))]
    pool += [genres[0]] * (len(rest) - len(pool))  # only if a genre got fewer groups than signature parts
    pool = pool[: len(rest)]
    for group, i in zip(rest, rng.permutation(len(rest))):
        sources[group] = pool[int(i)]
    return {group: GENRES[sources[group]] for group in PART_GROUPS}


def signature_pairs(genre: str) -> set[tuple[str | None, str | None]]:
    """Every (bass, lead) pair a one-genre ``genre`` track can have: the genre's signature bass and
    lead with at most one of them swapped for an alternate of its profile.

    The pairs of two genres never meet (a test checks), so a one-genre track's label can be heard in
    its signature parts.  Two alternates at once could (Tech House with Bass House's growl and no
    lead, Future House with a growl and stabs): those tracks sounded like another genre."""
    prof = GENRE_PROFILES[genre]
    bass, lead = prof["bass"][0], prof["lead"][0]
    return {(b, lead) for b in prof["bass"]} | {(bass, m) for m in prof["lead"]}


def one_alternate(bass: str | None, lead: str | None, bass_genre: str, lead_genre: str) -> str | None:
    """The lead to use: the signature lead when the bass and lead come from one genre and their
    pair is not one of its :func:`signature_pairs` (both draws were alternates); otherwise ``lead``."""
    if bass_genre != lead_genre or (bass, lead) in signature_pairs(bass_genre):
        return lead
    return GENRE_PROFILES[bass_genre]["lead"][0]
