"""The statistics are right, not just plumbed: resampled figures equal scikit-learn's on the resampled
clips, the track bootstrap covers the truth at its level where the clip bootstrap does not, clip
duplication does not narrow it, seeds reproduce it, Holm is Holm."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support
from test_predictions import sample

from housex.trainer import predictions as P
from housex.trainer.statistics import (
    Bootstrap,
    TrackBootstrap,
    best_and_ties,
    confusion_figures,
    holm,
    interval,
    make_terms,
    paired_p_value,
)


@pytest.mark.parametrize("answers", [False, True])
def test_a_resamples_figures_are_the_metric_modules_on_the_resampled_clips(answers):
    p = P.make_predictions(**sample(n_tracks=30, clips=4, seed=3, answers=answers))
    boot = TrackBootstrap(p.track_ids, Bootstrap(resamples=20, seed=5))
    samples = boot.samples(P.clip_terms(p), p.track_ids)
    track_samples = boot.samples(*P.track_terms(p))
    units = boot.units(p.track_ids)
    for r in (0, 7, 19):
        # the resample written out: every clip of a track drawn k times, k times
        take = np.concatenate([np.repeat(np.flatnonzero(units == t), int(k)) for t, k in enumerate(boot.weights[r])])
        copy = P.make_predictions(clip_ids=[f"c{i}" for i in range(len(take))], track_ids=p.track_ids[take],
                                  soft_labels=p.soft_labels[take], probabilities=p.probabilities[take],
                                  parsed=None if p.parsed is None else p.parsed[take])
        want = P.metrics_from_predictions(copy, bootstrap=None)
        for name, values in samples.items():
            assert values[r] == pytest.approx(want[name], abs=1e-12), name
        # track level: a track drawn k times counts k times
        tracks, preds, targets = P.track_means(p)
        t_take = np.repeat(np.arange(len(tracks)), boot.weights[r].astype(int))
        full = P.metric_module().housex_scores(preds[t_take], targets[t_take], prediction_type="probs")
        for name, values in track_samples.items():
            assert values[r] == pytest.approx(full[name], abs=1e-12), name
    # and scikit-learn itself on one resample's weighted F1
    y_true = P.metric_module().sharpen_ids(p.soft_labels)
    y_pred = np.where(p.parsed, p.probabilities.argmax(1), 8) if answers else p.probabilities.argmax(1)
    weights = boot.weights[3][units]
    f1 = precision_recall_fscore_support(y_true, y_pred, labels=range(9 if answers else 8), average="weighted",
                                         sample_weight=weights, zero_division=0)[2]
    assert samples["f1_weighted"][3] == pytest.approx(f1, abs=1e-12)


def test_same_seed_same_interval_whatever_the_clip_order():
    p = P.make_predictions(**sample(n_tracks=40, seed=1))
    a = P.metrics_from_predictions(p, Bootstrap(resamples=300, seed=7))
    shuffled = p._take(np.random.default_rng(0).permutation(len(p)))
    b = P.metrics_from_predictions(shuffled, Bootstrap(resamples=300, seed=7))
    assert a["intervals"] == b["intervals"] and a["track_level_intervals"] == b["track_level_intervals"]
    c = P.metrics_from_predictions(p, Bootstrap(resamples=300, seed=8))
    assert c["intervals"] != a["intervals"]
    assert a["bootstrap"] == {"method": "cluster bootstrap over tracks, percentile interval", "unit": "track",
                              "level": 0.95, "resamples": 300, "seed": 7}
    for name, (low, high) in a["intervals"].items():
        assert low <= a[name] <= high, name
    narrow = P.metrics_from_predictions(p, Bootstrap(level=0.5, resamples=300, seed=7))["intervals"]["accuracy"]
    assert a["intervals"]["accuracy"][0] < narrow[0] <= narrow[1] < a["intervals"]["accuracy"][1]
    for bad in ({"level": 1.0}, {"resamples": 5}, {"seed": -1}):
        with pytest.raises(ValueError, match="bootstrap"):
            Bootstrap(**bad)


# --------------------------------------------------------------------------------------------
# simulated evaluation sets with a known truth
# --------------------------------------------------------------------------------------------
CLASS_SHARE = np.array([0.25, 0.2, 0.15, 0.1, 0.1, 0.08, 0.07, 0.05])
# A track's clips are right with the track's own probability a ~ Beta(1.5, 0.5) (mean 0.75, sd 0.25):
# some tracks the model knows, some it does not; a track's wrong clips all get its one wrong genre.
BETA = (1.5, 0.5)


def truth() -> dict:
    """Accuracy and weighted F1 of the population: the figures of its expected confusion matrix."""
    mean = BETA[0] / sum(BETA)
    expected = np.diag(CLASS_SHARE * mean) + (CLASS_SHARE * (1 - mean) / 7)[:, None] * (1 - np.eye(8))
    return {k: float(v) for k, v in confusion_figures(expected).items()}


def simulate(rng, n_tracks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track of each clip, target, prediction): 2-12 clips per track, clustered errors."""
    genre = rng.choice(8, size=n_tracks, p=CLASS_SHARE)
    right = rng.beta(*BETA, size=n_tracks)
    wrong = (genre + rng.integers(1, 8, size=n_tracks)) % 8
    track = np.repeat(np.arange(n_tracks), rng.integers(2, 13, size=n_tracks))
    correct = rng.random(track.size) < right[track]
    return track, genre[track], np.where(correct, genre[track], wrong[track])


def clip_bootstrap(rng, terms, resamples: int) -> dict:
    """The naive bootstrap that resamples clips: the confusion cells as one multinomial draw of N clips
    (exactly what drawing N clips with replacement does to the counts)."""
    counts = terms.values.sum(axis=0)
    return terms.figures(rng.multinomial(int(counts.sum()), counts / counts.sum(), size=resamples).astype(float))


def test_track_bootstrap_covers_the_truth_and_the_clip_bootstrap_does_not(capsys):
    sets, n_tracks, resamples = 400, 200, 1000
    rng = np.random.default_rng(2024)
    true = truth()
    names = ("accuracy", "f1_weighted")
    covered = {"track": np.zeros((sets, 2), bool), "clip": np.zeros((sets, 2), bool)}
    for s in range(sets):
        track, target, predicted = simulate(rng, n_tracks)
        terms = make_terms(target, predicted, 8, figures=names)
        by_track = TrackBootstrap(track, Bootstrap(resamples=resamples, seed=s)).intervals(terms, track)
        by_clip = clip_bootstrap(rng, terms, resamples)
        for j, name in enumerate(names):
            covered["track"][s, j] = by_track[name][0] <= true[name] <= by_track[name][1]
            low, high = interval(by_clip[name], 0.95)
            covered["clip"][s, j] = low <= true[name] <= high
    track, clip = covered["track"].mean(axis=0), covered["clip"].mean(axis=0)
    with capsys.disabled():
        print(f"\n95% intervals over {sets} simulated sets of {n_tracks} tracks: coverage of accuracy / weighted F1 "
              f"by the track bootstrap {track[0]:.1%} / {track[1]:.1%}, by the clip bootstrap "
              f"{clip[0]:.1%} / {clip[1]:.1%}")
    assert np.all((0.93 <= track) & (track <= 0.97)), track
    assert np.all(clip < 0.85), clip


def test_duplicating_every_clip_leaves_the_track_interval_and_halves_the_clip_interval():
    rng = np.random.default_rng(11)
    track, target, predicted = simulate(rng, 150)
    settings = Bootstrap(resamples=2000, seed=3)
    once = make_terms(target, predicted, 8)
    four = make_terms(np.repeat(target, 4), np.repeat(predicted, 4), 8)
    a = TrackBootstrap(track, settings).intervals(once, track)
    b = TrackBootstrap(track, settings).intervals(four, np.repeat(track, 4))
    for name in a:
        assert b[name] == pytest.approx(a[name], abs=1e-12), name  # the same resamples: exactly the same
    width = {}
    for copies, terms in ((1, once), (4, four)):
        low, high = interval(clip_bootstrap(np.random.default_rng(0), terms, 4000)["f1_weighted"], 0.95)
        width[copies] = high - low
    assert 0.4 < width[4] / width[1] < 0.6, width  # the naive interval believes in 4x the data


def test_holm_paired_p_and_best_marks():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(holm([0.5, 0.4]), [0.8, 0.8])
    assert paired_p_value(np.zeros(100)) == 1.0
    assert paired_p_value(np.full(99, 0.1)) == pytest.approx(2 / 100)
    d = np.linspace(-1, 3, 101)  # 26 of 101 at or below 0
    assert paired_p_value(d) == pytest.approx(2 * 27 / 102)
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.01, 500)
    samples = [base, base - 0.001 + rng.normal(0, 0.001, 500), base - 0.05, None]
    best, tied, p = best_and_ties([0.8, 0.799, 0.75, None], samples, lower_is_better=False, level=0.95)
    assert best == 0 and tied == [True, True, False, False] and p[0] is None and p[3] is None
    assert p[1] > 0.05 > p[2]
    best, tied, _ = best_and_ties([0.8, 0.799, 0.75, None], samples, lower_is_better=True, level=0.95)
    assert best == 2 and tied == [False, False, True, False]
