"""Layer-probe sweep once embedded: 13 layers (+ the weighted sum) x 2 heads x 2 learning rates over
2,000 clips (400 tracks, 768-dim states, a base-size encoder's shape), on the CPU.

Target (issue 25): the whole sweep plus the refit and the validation scoring in <= 60 s on 2 cores.
Reference in the same run: the same candidates trained one at a time as plain ``torch.nn`` modules
(the straightforward loop), timed on 1 layer and scaled to the grid.  Features are random with a
genre signal in a few layers, so early stopping behaves as on real embeddings (neither 1 epoch nor
the cap).
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench.timing import best_time

CLIPS, TRACKS, LAYERS, DIM = 2000, 400, 13, 768


def synthetic_features(seed: int = 0):
    from housex.trainer.baselines.layer_probe import FeatureSet, Split

    rng = np.random.default_rng(seed)
    track_of_clip = np.repeat(np.arange(TRACKS), CLIPS // TRACKS)
    genre = rng.integers(0, 8, TRACKS)
    centres = rng.standard_normal((8, DIM)).astype(np.float32)
    strength = np.concatenate([np.linspace(0.005, 0.04, 8), np.linspace(0.04, 0.015, LAYERS - 8)])  # peaks mid-network
    X = rng.standard_normal((CLIPS, LAYERS, DIM)).astype(np.float32)
    X += strength[None, :, None] * centres[genre[track_of_clip]][:, None, :]
    soft = np.eye(8)[genre[track_of_clip]]
    ids = [f"t{t}@{i}" for i, t in enumerate(track_of_clip)]
    tracks = [f"t{t}" for t in track_of_clip]
    is_val = track_of_clip >= int(TRACKS * 0.8)
    split = {name: Split(X[m], [ids[i] for i in np.flatnonzero(m)], [tracks[i] for i in np.flatnonzero(m)], soft[m])
             for name, m in (("train", ~is_val), ("validation", is_val))}
    return FeatureSet("synthetic-13x768", "13 layers", split["train"], split["validation"])


def reference_loop(features, layers, grid_heads, learning_rates, seed=0):
    """One ``torch.nn`` probe at a time, the same epochs/batches/early stopping rule, on ``layers``."""
    import torch

    torch.set_num_threads(1)  # as the sweep's workers (each single-threaded)
    from housex.trainer.baselines.layer_probe import (BATCH_SIZE, MAX_EPOCHS, MLP_DROPOUT, MLP_HIDDEN, PATIENCE,
                                                      _scaled, _standardiser, inner_split)

    inner_train, inner_val = inner_split(features.train, seed)
    tr, va = features.train.take(inner_train), features.train.take(inner_val)
    stats = _standardiser(tr.features)
    Xtr, Xva = torch.from_numpy(_scaled(tr.features, stats)), torch.from_numpy(_scaled(va.features, stats))
    Ytr, Yva = torch.from_numpy(tr.soft_labels.astype(np.float32)), torch.from_numpy(va.soft_labels.astype(np.float32))
    for head in grid_heads:
        for lr in learning_rates:
            for layer in layers:
                torch.manual_seed(seed)
                model = (torch.nn.Linear(DIM, 8) if head == "linear" else torch.nn.Sequential(
                    torch.nn.Linear(DIM, MLP_HIDDEN), torch.nn.ReLU(), torch.nn.Dropout(MLP_DROPOUT),
                    torch.nn.Linear(MLP_HIDDEN, 8)))
                opt = torch.optim.Adam(model.parameters(), lr=lr)
                best, stale = float("inf"), 0
                for _ in range(MAX_EPOCHS):
                    model.train()
                    perm = torch.randperm(len(Xtr))
                    for start in range(0, len(Xtr), BATCH_SIZE):
                        rows = perm[start:start + BATCH_SIZE]
                        loss = -(Ytr[rows] * torch.log_softmax(model(Xtr[rows, layer]), -1)).sum(-1).mean()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                    model.eval()
                    with torch.no_grad():
                        v = float(-(Yva * torch.log_softmax(model(Xva[:, layer]), -1)).sum(-1).mean())
                    best, stale = (v, 0) if v < best - 1e-6 else (best, stale + 1)
                    if stale >= PATIENCE:
                        break


def main() -> None:
    from housex.trainer.baselines.layer_probe import HEADS, LEARNING_RATES, default_grid, run_probe

    features = synthetic_features()
    grid = default_grid(LAYERS)
    cpu0 = time.process_time()
    t_sweep, record = best_time(lambda: run_probe(features, None, grid=grid, seed=0), repeats=1)
    cpu_sweep = time.process_time() - cpu0
    ref_layers = [6]
    cpu0 = time.process_time()
    t_ref, _ = best_time(lambda: reference_loop(features, ref_layers, HEADS, LEARNING_RATES), repeats=1)
    cpu_ref = (time.process_time() - cpu0) / len(ref_layers) * (LAYERS + 1)
    per_layer_candidates = len(HEADS) * len(LEARNING_RATES)
    t_ref_full = t_ref / len(ref_layers) * (LAYERS + 1)  # the weighted sum costs about one layer more
    load = os.getloadavg()[0]
    print(f"layer-probe sweep, {CLIPS} clips ({TRACKS} tracks) x {LAYERS} layers x {DIM}, "
          f"{len(grid)} candidates ({per_layer_candidates} per layer + weighted sum), 2 worker threads of 1 torch "
          f"thread, reference 1 torch thread; load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  batched sweep + refit + validation scoring      {t_sweep:7.1f} s wall, {cpu_sweep:.1f} s CPU "
          f"(target <= 60 s wall on 2 cores; CPU / 2 = {cpu_sweep / 2:.1f} s is the wall time of 2 idle cores)")
    print(f"  reference: one nn.Module at a time (scaled)     {t_ref_full:7.1f} s wall, {cpu_ref:.1f} s CPU "
          f"({t_ref:.1f} s wall for {len(ref_layers)} layer, without the refit and scoring)")
    print(f"  ratio reference / batched                       {t_ref_full / t_sweep:7.2f}x wall, {cpu_ref / cpu_sweep:.2f}x CPU")
    print(f"  chosen: {record['choice']['label']}  validation weighted F1 {record['f1_weighted']:.3f}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.1f} s)")
