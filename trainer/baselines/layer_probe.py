"""Probes of a feature set's layers, chosen without test leakage: ``housex baseline probe``.

A *feature set* holds per clip one vector per layer (``[layers, dim]``): the cached embeddings of a
frozen encoder (``housex embed``) or the built-in ``"log-mel"`` set (one layer: the clip-mean log-mel
spectrum of ``probe.clip_features``).  A *candidate* is a probe head on one layer (or on a learned
softmax-weighted sum of all layers) with its hyper-parameters:

- ``linear``: Linear(dim, 8);  ``mlp``: Linear(dim, 256) -> ReLU -> dropout 0.2 -> Linear(256, 8)
  (MARBLE's probe, narrower); both on standardised features, trained with the soft-label cross
  entropy, Adam at each learning rate of the grid, minibatches of 128, early stopping on the
  inner-validation loss (patience 5, at most 40 epochs; a set of fewer than 1,024 clips gets smaller
  batches, down to 16, so that an epoch still has 8 steps);
- ``logistic``: scikit-learn's StandardScaler -> LogisticRegression(C) on the sharpened labels: the
  log-mel linear probe exactly as it always ran.

Choice without leakage: the training tracks are split (grouped by track, seeded) into an inner train
and an inner validation part; every candidate trains on the first and is scored on the second; the
one with the best inner weighted F1 (ties: lower cross entropy) is refitted on all training clips for
its early-stopped epoch count and scored ONCE on the validation split.  The validation split never
takes part in a choice.  A grid of one candidate (the log-mel probe's) has nothing to choose: it is
fitted on all training clips directly.

Every layer's candidates of one head and learning rate train together as one batched model (an
einsum over layers), in two worker threads of one torch thread each; a group trains until its last
member stops early, so it spends more CPU than models trained one at a time would (about 1.6x in
``bench/bench_probe.py``), in exchange for a few large matrix products instead of hundreds of small
ones.  The 13-layer x 2-head x 2-rate sweep over 2,000 clips, with refit and scoring, takes about 52 s
on the 2-core machine at a load average of 7 (23 s of CPU; target <= 60 s).

Outputs in the run folder: ``predictions.parquet`` and ``metrics.json`` (the statistics issue's format,
through ``predictions.write_predictions`` and ``metrics_from_predictions``), ``layer_curve.json`` and
``layer_curve.png`` (inner-validation weighted F1 per layer and head) and ``choice.json``.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...dataset_script.genres import NUM_GENRES, sharpen_ids

HEADS = ("linear", "mlp")
LEARNING_RATES = (1e-3, 1e-2)
MLP_HIDDEN = 256
MLP_DROPOUT = 0.2
BATCH_SIZE = 128
MIN_STEPS_PER_EPOCH = 8  # small sets get smaller batches (down to MIN_BATCH), not fewer steps
MIN_BATCH = 16
MAX_EPOCHS = 40
PATIENCE = 5
INNER_FRACTION = 0.2
WEIGHTED = "weighted"


@dataclass
class Split:
    """One split of a feature set: ``features`` (N, layers, dim) and what each row is."""

    features: np.ndarray
    clip_ids: list[str]
    track_ids: list[str]
    soft_labels: np.ndarray  # (N, 8) as stored (the probes train on them renormalised)

    def take(self, rows) -> Split:
        rows = np.asarray(rows)
        return Split(self.features[rows], [self.clip_ids[i] for i in rows], [self.track_ids[i] for i in rows],
                     self.soft_labels[rows])

    def __len__(self) -> int:
        return len(self.clip_ids)


@dataclass
class FeatureSet:
    name: str           # encoder id / folder, or "log-mel"
    description: str    # the table's "Features" cell
    train: Split
    validation: Split

    @property
    def num_layers(self) -> int:
        return self.train.features.shape[1]


@dataclass(frozen=True)
class Candidate:
    head: str                 # "linear", "mlp" or "logistic"
    layer: int | str          # a layer index or "weighted"
    learning_rate: float | None = None
    C: float | None = None    # logistic only

    def label(self) -> str:
        where = "weighted sum" if self.layer == WEIGHTED else f"layer {self.layer}"
        setting = f"C={self.C:g}" if self.head == "logistic" else f"lr={self.learning_rate:g}"
        return f"{self.head} on {where} ({setting})"


def default_grid(num_layers: int) -> list[Candidate]:
    """Every layer and the weighted sum (when there are several layers) x both heads x the learning rates."""
    layers: list[int | str] = list(range(num_layers)) + ([WEIGHTED] if num_layers > 1 else [])
    return [Candidate(head, layer, lr) for head in HEADS for lr in LEARNING_RATES for layer in layers]


# --------------------------------------------------------------------------------------------
# feature sets
# --------------------------------------------------------------------------------------------
def _normalised(soft) -> np.ndarray:
    soft = np.asarray(soft, dtype=np.float64)
    return soft / soft.sum(axis=1, keepdims=True)


def from_embeddings(folder) -> FeatureSet:
    from ..embeddings import load_embeddings

    emb = load_embeddings(folder)
    for split in ("train", "validation"):
        if split not in emb.splits:
            raise ValueError(f"{folder}: no {split!r} split embedded (found: {', '.join(emb.splits)})")
    splits = {name: Split(s.features, s.clip_ids, s.track_ids, s.soft_labels) for name, s in emb.splits.items()}
    return FeatureSet(emb.encoder, f"{emb.num_states} layers, clip mean", splits["train"], splits["validation"])


# --------------------------------------------------------------------------------------------
# the batched torch probes
# --------------------------------------------------------------------------------------------
def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


class _BatchedProbe:
    """K probes of one head trained together: features (N, K, D) -> logits (N, K, 8); with ``mix`` the
    K = 1 probe reads a learned softmax-weighted sum of the L layers of (N, L, D) features."""

    def __init__(self, head: str, num_models: int, dim: int, *, num_layers_mixed: int | None, seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.head = head
        self.mix = None if num_layers_mixed is None else torch.zeros(num_layers_mixed, requires_grad=True)
        width = MLP_HIDDEN if head == "mlp" else NUM_GENRES

        def linear(fan_in, fan_out):  # torch.nn.Linear's default initialisation, one per model
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(num_models, fan_in, fan_out, generator=g) * 2 - 1) * bound
            b = (torch.rand(num_models, fan_out, generator=g) * 2 - 1) * bound
            return w.requires_grad_(), b.requires_grad_()

        self.w1, self.b1 = linear(dim, width)
        self.w2 = self.b2 = None
        if head == "mlp":
            self.w2, self.b2 = linear(MLP_HIDDEN, NUM_GENRES)
        self.dropout_generator = torch.Generator().manual_seed(seed + 1)

    def parameters(self):
        return [p for p in (self.mix, self.w1, self.b1, self.w2, self.b2) if p is not None]

    def state(self) -> list:
        return [p.detach().clone() for p in self.parameters()]

    def load(self, state) -> None:
        import torch

        with torch.no_grad():
            for p, s in zip(self.parameters(), state):
                p.copy_(s)

    def __call__(self, x, *, train: bool = False):
        import torch

        if self.mix is not None:
            x = torch.einsum("l,nld->nd", torch.softmax(self.mix, 0), x).unsqueeze(1)
        h = torch.einsum("nkd,kdh->nkh", x, self.w1) + self.b1
        if self.head == "mlp":
            h = torch.relu(h)
            if train:
                keep = torch.rand(h.shape, generator=self.dropout_generator) >= MLP_DROPOUT
                h = h * keep / (1 - MLP_DROPOUT)
            h = torch.einsum("nkh,khc->nkc", h, self.w2) + self.b2
        return h


def _soft_ce(logits, targets):
    """Per model: mean soft-label cross entropy of (N, K, 8) logits against (N, 8) targets -> (K,)."""
    import torch

    return -(targets[:, None, :] * torch.log_softmax(logits, -1)).sum(-1).mean(0)


def train_batched(head: str, X_tr: np.ndarray, Y_tr: np.ndarray, X_va: np.ndarray | None, Y_va: np.ndarray | None, *,
                  learning_rate: float, seed: int, mixed: bool = False, epochs: int | None = None):
    """Train K probes of ``head`` (one per layer of ``X`` (N, K, D), or one on the weighted sum when ``mixed``).

    With a validation part: early stopping per probe on its loss; returns ``(probe, best states,
    best epochs (K,), best validation logits (N_va, K, 8), best losses (K,))``.  Without one: exactly
    ``epochs`` epochs (one count per probe, the longest run trains them all and each keeps its state
    after its own count); returns ``(probe, states)``.
    """
    import torch

    X = torch.from_numpy(np.ascontiguousarray(X_tr, dtype=np.float32))
    Y = torch.from_numpy(np.asarray(Y_tr, dtype=np.float32))
    n, k, d = X.shape
    probe = _BatchedProbe(head, 1 if mixed else k, d, num_layers_mixed=k if mixed else None, seed=seed)
    models = 1 if mixed else k
    optimizer = torch.optim.Adam(probe.parameters(), lr=learning_rate)
    order = torch.Generator().manual_seed(seed)
    Xv = None if X_va is None else torch.from_numpy(np.ascontiguousarray(X_va, dtype=np.float32))
    Yv = None if Y_va is None else torch.from_numpy(np.asarray(Y_va, dtype=np.float32))
    best_loss = torch.full((models,), float("inf"))
    best_epoch = torch.zeros(models, dtype=torch.long)
    best_state = probe.state()
    best_logits = None
    stale = torch.zeros(models, dtype=torch.long)
    targets = None if epochs is None else torch.as_tensor(np.broadcast_to(epochs, (models,)).copy())
    max_epochs = MAX_EPOCHS if targets is None else int(targets.max())
    batch = min(BATCH_SIZE, max(MIN_BATCH, n // MIN_STEPS_PER_EPOCH))
    for epoch in range(max_epochs):
        perm = torch.randperm(n, generator=order)
        for start in range(0, n, batch):
            rows = perm[start:start + batch]
            loss = _soft_ce(probe(X[rows], train=True), Y[rows]).sum()  # models are independent: sum of losses
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if targets is not None:
            done = targets == epoch + 1
            if done.any():
                _keep_rows(best_state, probe.state(), done, mixed)
            continue
        with torch.no_grad():
            logits = probe(Xv)
            losses = _soft_ce(logits, Yv)
        better = losses < best_loss - 1e-6
        if best_logits is None:
            best_logits = logits.clone()
        best_logits[:, better] = logits[:, better]
        best_loss = torch.where(better, losses, best_loss)
        best_epoch = torch.where(better, torch.full_like(best_epoch, epoch + 1), best_epoch)
        _keep_rows(best_state, probe.state(), better, mixed)
        stale = torch.where(better, torch.zeros_like(stale), stale + 1)
        if bool((stale >= PATIENCE).all()):
            break
    if targets is not None:
        return probe, best_state
    return probe, best_state, best_epoch.numpy(), best_logits.numpy(), best_loss.numpy()


def _keep_rows(kept: list, current: list, which, mixed: bool) -> None:
    """Copy the models ``which`` (K,) bool of ``current`` into ``kept`` (parameter lists, model-major)."""
    for i, (k, c) in enumerate(zip(kept, current)):
        if mixed:  # one model: every parameter (the layer weights included) is its
            if bool(which.all()):
                kept[i] = c
        else:
            k[which] = c[which]


def _weighted_f1(probabilities: np.ndarray, soft: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(sharpen_ids(soft), probabilities.argmax(-1), labels=range(NUM_GENRES), average="weighted",
                          zero_division=0))


def inner_split(train: Split, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the inner train / inner validation parts of the training split, grouped by track."""
    from sklearn.model_selection import GroupShuffleSplit

    tracks = np.asarray(train.track_ids)
    if len(np.unique(tracks)) < 2:
        raise ValueError("the training split has fewer than 2 tracks: no inner split to choose a probe on")
    splitter = GroupShuffleSplit(n_splits=1, test_size=INNER_FRACTION, random_state=seed)
    inner_train, inner_val = next(splitter.split(np.zeros(len(tracks)), groups=tracks))
    return np.sort(inner_train), np.sort(inner_val)


@contextmanager
def _torch_threads(count: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _scaled(X: np.ndarray, stats) -> np.ndarray:
    mean, std = stats
    return ((X - mean) / std).astype(np.float32)


def sweep(features: FeatureSet, grid: list[Candidate], seed: int, workers: int = 2) -> tuple[list[dict], tuple[np.ndarray, np.ndarray]]:
    """Every candidate of ``grid`` trained on the inner train part, scored on the inner validation part."""
    inner_train, inner_val = inner_split(features.train, seed)
    tr, va = features.train.take(inner_train), features.train.take(inner_val)
    stats = _standardiser(tr.features)
    Xtr, Xva = _scaled(tr.features, stats), _scaled(va.features, stats)
    groups: dict = {}
    for c in grid:
        if c.head == "logistic":
            raise ValueError("logistic candidates are fitted directly (a grid of one), not swept")
        groups.setdefault((c.head, c.learning_rate, c.layer == WEIGHTED), []).append(c)

    def train_group(item):
        (head, lr, mixed), members = item
        layers = list(range(features.num_layers)) if mixed else [c.layer for c in members]
        _, _, epochs, logits, losses = train_batched(head, Xtr[:, layers], _normalised(tr.soft_labels), Xva[:, layers],
                                                     _normalised(va.soft_labels), learning_rate=lr, seed=seed, mixed=mixed)
        out = []
        for i, c in enumerate(members):
            j = 0 if mixed else i
            probs = _softmax(logits[:, j])
            out.append({"candidate": asdict(c), "label": c.label(), "inner_f1_weighted": _weighted_f1(probs, va.soft_labels),
                        "inner_cross_entropy": float(losses[j]), "epochs": int(epochs[j])})
        return out

    # Groups train in parallel threads, each single-threaded in torch: several small BLAS calls at once use
    # the cores better than one call split over them (whose threads spin on a busy machine); the figures
    # do not depend on the number of workers.
    with _torch_threads(1), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = [r for group in pool.map(train_group, groups.items()) for r in group]
    return results, (inner_train, inner_val)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def choose(results: list[dict]) -> dict:
    return max(results, key=lambda r: (round(r["inner_f1_weighted"], 12), -r["inner_cross_entropy"]))


def fit_and_predict(features: FeatureSet, candidate: Candidate, *, epochs: int | None, seed: int,
                    max_iter: int = 2000) -> np.ndarray:
    """Fit ``candidate`` on all training clips; (N_validation, 8) probabilities of the validation clips."""
    tr, va = features.train, features.validation
    if candidate.head == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X_tr, X_va = tr.features[:, candidate.layer], va.features[:, candidate.layer]
        y_tr = sharpen_ids(tr.soft_labels)
        if len(np.unique(y_tr)) < 2:
            raise ValueError(f"train split has {len(np.unique(y_tr))} class(es); the probe needs at least 2")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=candidate.C, max_iter=max_iter, random_state=seed))
        model.fit(X_tr, y_tr)
        probabilities = np.zeros((len(va), NUM_GENRES))
        probabilities[:, model.classes_] = model.predict_proba(X_va)  # genres absent from train: probability 0
        return probabilities
    import torch

    stats = _standardiser(tr.features)
    mixed = candidate.layer == WEIGHTED
    layers = list(range(features.num_layers)) if mixed else [candidate.layer]
    probe, state = train_batched(candidate.head, _scaled(tr.features, stats)[:, layers], _normalised(tr.soft_labels), None, None,
                                 learning_rate=candidate.learning_rate, seed=seed, mixed=mixed, epochs=epochs)
    probe.load(state)
    with torch.no_grad():
        logits = probe(torch.from_numpy(_scaled(va.features, stats)[:, layers])).numpy()[:, 0]
    return _softmax(logits.astype(np.float64))


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def plot_curve(curve: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for head, points in curve["layers"].items():
        ax.plot(range(len(points)), points, marker="o", label=head)
    for head, value in curve.get("weighted", {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, label=f"{head}, weighted sum")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("inner-validation weighted F1")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def layer_curve(results: list[dict], num_layers: int) -> dict:
    """Per head: the best inner weighted F1 over learning rates at every layer, and of the weighted sum."""
    curve: dict = {"layers": {}, "weighted": {}}
    for r in results:
        c = r["candidate"]
        if c["layer"] == WEIGHTED:
            curve["weighted"][c["head"]] = max(curve["weighted"].get(c["head"], -1.0), r["inner_f1_weighted"])
        else:
            points = curve["layers"].setdefault(c["head"], [-1.0] * num_layers)
            points[c["layer"]] = max(points[c["layer"]], r["inner_f1_weighted"])
    return curve


def run_probe(features: FeatureSet, out, *, grid: list[Candidate] | None = None, seed: int = 0, bootstrap=None,
              workers: int | None = None, record_extra: dict | None = None, row_extra: dict | None = None,
              max_iter: int = 2000) -> dict:
    """Choose (on the inner split), fit on all training clips, score once on validation; write the run folder."""
    from ..statistics import Bootstrap
    from .common import write_scores

    out = None if out is None else Path(out)
    grid = grid or default_grid(features.num_layers)
    if len(features.validation) == 0:
        raise ValueError("validation split is empty")
    results, epochs = [], None
    if len(grid) == 1:
        chosen = grid[0]
        choice = {"candidate": asdict(chosen), "label": chosen.label(),
                  "how": "a grid of one: fitted on all training clips, nothing chosen"}
    else:
        results, (inner_train, inner_val) = sweep(features, grid, seed, workers or min(2, os.cpu_count() or 1))
        best = choose(results)
        chosen = Candidate(**best["candidate"])
        epochs = best["epochs"]
        choice = {**best, "how": "best inner-validation weighted F1 (ties: lower cross entropy) on an inner split of "
                                 "the training tracks; refitted on all training clips for the early-stopped epochs",
                  "inner_train_clips": int(len(inner_train)), "inner_validation_clips": int(len(inner_val)),
                  "inner_validation_tracks": int(len(set(np.asarray(features.train.track_ids)[inner_val])))}
    with _torch_threads(1):
        probabilities = fit_and_predict(features, chosen, epochs=epochs, seed=seed, max_iter=max_iter)
    is_encoder = features.name != "log-mel"
    layer_text = ("weighted sum" if chosen.layer == WEIGHTED else f"layer {chosen.layer}")
    shown = Path(features.name).name if is_encoder and Path(features.name).is_dir() else features.name
    row_info = {"kind": "encoder probe" if is_encoder else "linear probe", "model": shown,
                "features": (f"{layer_text} of {features.num_layers} ({chosen.head} probe)" if is_encoder
                             else features.description),
                "labels": "hard" if chosen.head == "logistic" else "soft", "probe": chosen.head, "layer": layer_text,
                "split": "validation", **(row_extra or {})}
    record = {"baseline": "encoder-probe" if is_encoder else "linear-probe", "model": features.name, "split": "validation",
              "probe": chosen.head, "layer": chosen.layer, "choice": choice, "seed": seed,
              "num_train_clips": len(features.train), "num_clips": len(features.validation),
              "num_layers": features.num_layers, **(record_extra or {})}
    va = features.validation
    metrics = write_scores(out, record=record, row_info=row_info, clip_ids=va.clip_ids, track_ids=va.track_ids,
                           soft_labels=va.soft_labels, probabilities=probabilities,
                           bootstrap=bootstrap if bootstrap is not None else Bootstrap())
    if out is not None:
        if results:
            curve = layer_curve(results, features.num_layers)
            (out / "layer_curve.json").write_text(json.dumps({**curve, "candidates": results}, indent=2) + "\n",
                                                  encoding="utf-8")
            plot_curve(curve, out / "layer_curve.png", f"{Path(str(features.name)).name}: inner-validation F1 per layer")
        (out / "choice.json").write_text(json.dumps(choice, indent=2) + "\n", encoding="utf-8")
    return metrics


def summary_line(record: dict) -> str:
    iv = record.get("intervals", {}).get("f1_weighted")
    interval = f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""
    return (f"{record['baseline']} {record['model']}: {record['choice']['label']}; validation weighted F1 "
            f"{record['f1_weighted']:.3f}{interval}, accuracy {record['accuracy']:.3f} "
            f"({record['num_clips']} clips, {record['num_tracks']} tracks)")


__all__ = ["FeatureSet", "Split", "Candidate", "default_grid", "from_embeddings", "run_probe", "summary_line", "sweep",
           "choose", "fit_and_predict", "inner_split", "train_batched"]
