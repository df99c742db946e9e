"""``--checkpoint_selection``: which data chooses the checkpoint that is scored.

``holdout`` chooses on held-out TRAINING tracks and scores validation once; ``last`` scores the final
weights; ``validation`` (the paper's protocol) chooses on the split it scores, byte for byte as before
the option existed, and ``housex table`` marks it.  The runs use the trainer tests' tiny release
(24 sine tracks, 2 s clips) and evaluate and save after every one of 6 steps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback
from test_trainer import SEED, _run, tiny  # noqa: F401  (tiny: the trainer tests' session fixture)

from housex.trainer.data import selection_holdout
from housex.trainer.predictions import metrics_from_predictions, read_predictions
from housex.trainer.statistics import Bootstrap

# Every step evaluated and saved; best by loss (the tiny model's F1 ties from step to step).  The learning
# rate makes the holdout's and validation's best steps differ from each other and from the last step.
SELECT = dict(max_steps=6, learning_rate=1e-2, step_lr_step_size=0, eval_strategy="steps", eval_steps=1,
              save_strategy="steps", save_steps=1, metric_for_best_model="loss", greater_is_better=False,
              bootstrap_resamples=100)
FRACTION = 0.25  # 5 of the 19 training tracks

# sha256 of model.safetensors of the SELECT runs, recorded at commit 6d88b9d (before --checkpoint_selection
# existed: load_best_model_at_end true = best on validation, false = the last step) with torch 2.14.1 on an
# AVX512 CPU; float results of another torch build or CPU kernel may differ in the last bit.
RECORDED_ON = ("2.14.1", "AVX512")
BEFORE_SHA256 = {"validation": "b54a3831a8e55689818599b7624acba45d2a3672e29125f0b0b3516eeb66ac76",
                 "last": "4da5780e0ed148eed4d95454e0a7ce36acb14ce8a974ce648e7ab4b4582a5bd4"}


class TrainedTracks(TrainerCallback):
    """Records the track ids of the dataset the Trainer actually trains on."""

    def __init__(self):
        self.tracks: set[str] = set()

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.tracks = set(train_dataloader.dataset.with_format(None)["track_id"])


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):  # noqa: F811
    """{rule: (run folder, metrics, tracks trained on)} for the three rules on the tiny release."""
    _, config, _, _ = tiny
    root = tmp_path_factory.mktemp("selection")
    out = {}
    for rule, extra in (("holdout", dict(checkpoint_selection="holdout", selection_fraction=FRACTION,
                                         load_best_model_at_end=True)),
                        ("last", dict(checkpoint_selection="last")),
                        ("validation", dict(checkpoint_selection="validation", load_best_model_at_end=True))):
        trained = TrainedTracks()
        metrics = _run(config, callbacks=[trained], output_dir=str(root / rule), **SELECT, **extra)
        out[rule] = (root / rule, metrics, trained.tracks)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _eval_losses(folder: Path) -> dict[int, float]:
    state = json.loads((folder / "trainer_state.json").read_text())
    return {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# ------------------------------------------------------------------------------------------
def test_holdout_is_whole_seeded_training_tracks_and_stratified_where_it_can_be(tiny):  # noqa: F811
    _, _, built, _ = tiny
    train, validation = built["train"], built["validation"]
    kept, held = selection_holdout(train, FRACTION, SEED)
    held_tracks, kept_tracks = set(held["track_id"]), set(kept["track_id"])
    assert len(held_tracks) == round(FRACTION * len(set(train["track_id"]))) == 5
    assert not held_tracks & kept_tracks and not held_tracks & set(validation["track_id"])
    # every clip of a held-out track is in the holdout, and no clip is lost
    assert len(held) == sum(t in held_tracks for t in train["track_id"]) and len(held) + len(kept) == len(train)
    again = selection_holdout(train, FRACTION, SEED)[1]
    assert list(again["track_id"]) == list(held["track_id"])
    assert set(selection_holdout(train, FRACTION, SEED + 1)[1]["track_id"]) != held_tracks
    # 80 tracks of 8 genres (2 clips each): the holdout of 20 tracks takes 2 or 3 of every genre
    genre = np.repeat(np.arange(80) % 8, 2)
    many = datasets.Dataset.from_dict({"track_id": [f"t{i:02d}" for i in np.repeat(np.arange(80), 2)],
                                       "soft_label": np.eye(8)[genre].tolist()})
    kept, held = selection_holdout(many, FRACTION, SEED)
    per_genre = np.bincount(np.argmax(held["soft_label"], axis=1), minlength=8) // 2
    assert per_genre.sum() == 20 and per_genre.min() >= 2 and per_genre.max() <= 3
    with pytest.raises(ValueError, match="holds out no track.*checkpoint_selection last"):
        selection_holdout(many.select(range(8)), 0.1, SEED)


def test_holdout_chooses_on_training_tracks_and_validation_is_scored_once_by_the_chosen_weights(
        runs, tiny, tmp_path):  # noqa: F811
    folder, metrics, trained = runs["holdout"]
    _, config, built, _ = tiny
    record = metrics["checkpoint_selection"]
    held = set(record["holdout_track_ids"])
    validation_tracks = set(built["validation"]["track_id"])
    assert record["rule"] == "holdout" and record["holdout_tracks"] == len(held) == 5
    assert trained and not held & trained and not held & validation_tracks and not trained & validation_tracks
    assert trained | held == set(built["train"]["track_id"])
    assert record["holdout_clips"] == sum(t in held for t in built["train"]["track_id"])
    assert metrics["num_train_clips"] + record["holdout_clips"] == len(built["train"])
    # the saved weights are the checkpoint with the lowest holdout loss (the Trainer's log), not the last
    losses = _eval_losses(folder)
    best = min(losses, key=losses.get)
    assert sorted(losses) == list(range(1, 7)) and best != 6 and record["step"] == best
    assert record["best_metric"] == pytest.approx(losses[best], abs=1e-9)
    assert _same_weights(folder, folder / f"checkpoint-{best}")
    # metrics.json scores the validation clips (not the holdout), from predictions.parquet ...
    predictions = read_predictions(folder)
    assert set(predictions.track_ids) == validation_tracks and metrics["num_eval_clips"] == len(built["validation"])
    recomputed = metrics_from_predictions(predictions, Bootstrap(resamples=100))
    assert json.loads(json.dumps(recomputed)).items() <= metrics.items()
    assert metrics["loss"] != pytest.approx(losses[best])  # another set of clips than the holdout's
    # ... and those predictions are the saved weights' on validation: evaluated again, as a trained model
    again = _run(config, output_dir=str(tmp_path / "again"), do_train=False, model_name_or_path=str(folder),
                 bootstrap_resamples=100)
    np.testing.assert_allclose(read_predictions(tmp_path / "again").probabilities, predictions.probabilities,
                               atol=1e-6)
    assert again["f1_weighted"] == pytest.approx(metrics["f1_weighted"]) and again["checkpoint_selection"] is None
    # said in the row info and on the card
    assert predictions.row_info["checkpoint_selection"] == "holdout"
    assert predictions.row_info["selection"]["holdout_tracks"] == 5 and predictions.row_info["selection"]["step"] == best
    card = (folder / "README.md").read_text()
    assert f"best `loss` on a holdout of 5 training tracks ({record['holdout_clips']} clips, 25% of" in card
    assert f"step {best} of 6" in card and "took no part in choosing them" in card


def test_last_scores_the_final_weights(runs):
    folder, metrics, trained = runs["last"]
    assert metrics["checkpoint_selection"]["rule"] == "last" and metrics["checkpoint_selection"]["step"] == 6
    assert _same_weights(folder, folder / "checkpoint-6")
    assert read_predictions(folder).row_info["checkpoint_selection"] == "last"


def test_validation_chooses_on_the_scored_split_and_the_card_says_so(runs):
    folder, metrics, trained = runs["validation"]
    losses = _eval_losses(folder)  # evaluated on validation while training
    best = min(losses, key=losses.get)
    assert best not in (runs["holdout"][1]["checkpoint_selection"]["step"], 6)
    assert metrics["checkpoint_selection"]["step"] == best and _same_weights(folder, folder / f"checkpoint-{best}")
    assert metrics["loss"] == pytest.approx(losses[best], abs=1e-6)  # the same clips chose and scored
    card = (folder / "README.md").read_text()
    assert "**The checkpoint was chosen on the split it is scored on**" in card and "optimistic" in card


@pytest.mark.skipif((torch.__version__.split("+")[0], torch.backends.cpu.get_cpu_capability()) != RECORDED_ON,
                    reason=f"the weights' bytes were recorded with torch {RECORDED_ON[0]} on an {RECORDED_ON[1]} CPU")
def test_validation_and_last_give_the_bytes_they_gave_before_the_option_existed(runs):
    for rule, sha in BEFORE_SHA256.items():
        assert _sha256(runs[rule][0] / "model.safetensors") == sha, rule


def test_table_and_grid_mark_rows_chosen_on_the_scored_split(runs, tiny, tmp_path):  # noqa: F811
    from housex.trainer.grid import run_grid
    from housex.trainer.table import OPTIMISTIC_MARK, OPTIMISTIC_NOTE, write_table

    groups, _ = write_table([runs[r][0] for r in ("holdout", "last", "validation")], tmp_path / "table",
                            bootstrap=Bootstrap(resamples=100))
    table = (tmp_path / "table" / "table.md").read_text()
    assert [r["checkpoint_selection"] for r in groups[0]["rows"]] == ["holdout", "last", "validation"]
    lines = [line for line in table.splitlines() if line.startswith("| shufflenet_v2_x0_5")]
    assert [OPTIMISTIC_MARK in line for line in lines] == [False, False, True]
    assert lines[2].startswith(f"| shufflenet_v2_x0_5{OPTIMISTIC_MARK} | HouseX |") and OPTIMISTIC_NOTE in table
    # housex grid passes the option through to every cell, and its table marks the cell
    _, config, _, _ = tiny
    flags = [f"--{k}={v}" for k, v in SELECT.items()]
    run_grid(tmp_path / "grid", backbones=["shufflenet_v2_x0_5"], features=["mel"], labels=["soft"], config=str(config),
             train_args=[*flags, "--max_steps=2", "--load_best_model_at_end=true", "--checkpoint_selection=validation"])
    cell = tmp_path / "grid" / "shufflenet_v2_x0_5-mel-soft"
    assert json.loads((cell / "metrics.json").read_text())["checkpoint_selection"]["rule"] == "validation"
    grid_table = (tmp_path / "grid" / "table.md").read_text()
    assert f"| shufflenet_v2_x0_5{OPTIMISTIC_MARK} | mel |" in grid_table and OPTIMISTIC_NOTE in grid_table


def test_a_run_resumed_from_its_last_checkpoint_scores_the_chosen_weights(runs, tiny, tmp_path):  # noqa: F811
    """Killed after its last checkpoint, before the Trainer loaded the best one: the resumed run restores the
    last checkpoint's state and then the chosen checkpoint's weights, as the uninterrupted run did."""
    _, config, _, _ = tiny
    folder, metrics, _ = runs["holdout"]
    args = dict(output_dir=str(tmp_path / "run"), **SELECT, checkpoint_selection="holdout", selection_fraction=FRACTION,
                load_best_model_at_end=True)
    _run(config, **args)
    for name in ("model.safetensors", "metrics.json", "predictions.parquet"):
        (tmp_path / "run" / name).unlink()
    resumed = _run(config, resume_from_checkpoint="last", **args)
    best = metrics["checkpoint_selection"]["step"]
    assert resumed["checkpoint_selection"]["step"] == best and _same_weights(tmp_path / "run", folder)
    assert resumed["f1_weighted"] == metrics["f1_weighted"] and resumed["loss"] == pytest.approx(metrics["loss"])
