"""Table 3 of the paper from finished runs: HouseX models, peer HF models, the probe, zero-shot, MLLMs.

Every source is something a command already wrote:

- a ``housex grid`` folder (``grid.json``): one HouseX row per cell;
- a training run folder (``metrics.json`` + ``config.json``, written by ``trainer/run.py``): a HouseX
  row (backbone, mel / mel+chroma, hard / soft labels) or, for any other ``model_type``, a peer-model row;
- a ``housex probe --json`` file: the linear-probe row;
- a ``housex baseline zero-shot|mllm --out`` folder (``metrics.json`` with ``baseline``).

All rows share one column set (weighted P/R/F1 and accuracy of the sharpened targets, plus top-2 and
the MLLM's unparsed count and intersect rate); a cell that does not apply is "—".  A source that has
not finished yet (a folder without ``metrics.json``) is listed as pending, so rerunning the command
once it has finished completes the table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KINDS = ("HouseX", "peer model", "linear probe", "zero-shot", "MLLM")
HARD_MODES = {"sharpen": "hard", "clean": "hard (clean)", "soft": "soft"}
COLUMNS = (  # (header, row key, format)
    ("Model", "model", "{}"),
    ("Kind", "kind", "{}"),
    ("Features", "features", "{}"),
    ("Labels", "labels", "{}"),
    ("Acc", "accuracy", "{:.3f}"),
    ("P", "precision_weighted", "{:.3f}"),
    ("R", "recall_weighted", "{:.3f}"),
    ("F1", "f1_weighted", "{:.3f}"),
    ("Top-2", "top2_accuracy", "{:.3f}"),
    ("Unparsed", "num_unparsed", "{:d}"),
    ("Intersect", "intersect_rate", "{:.3f}"),
)
SCORES = [key for _, key, fmt in COLUMNS if fmt != "{}"]
NA = "—"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _name(model: str) -> str:
    """A model's display name: a local folder by its name, a Hub id as is."""
    return Path(model).name if Path(model).is_dir() else str(model)


def _row(kind: str, model: str, metrics: dict, source: Path, *, features=None, labels=None) -> dict:
    row = {"kind": kind, "model": model, "features": features, "labels": labels, "source": str(source)}
    row.update({key: metrics.get(key) for key in SCORES})
    return row


def _training_run_row(folder: Path, metrics: dict) -> dict:
    config = _read_json(folder / "config.json")
    labels = HARD_MODES.get(metrics.get("label_mode"), metrics.get("label_mode"))
    if config.get("model_type") == "housex":
        features = "mel+chroma" if config.get("use_chroma") else "mel"
        return _row("HouseX", config.get("backbone", "?"), metrics, folder, features=features, labels=labels)
    name = metrics.get("model_name_or_path") or metrics.get("config_name") or config.get("model_type", "?")
    extractor = folder / "preprocessor_config.json"
    features = _read_json(extractor).get("feature_extractor_type") if extractor.is_file() else None
    return _row("peer model", _name(str(name)), metrics, folder, features=features, labels=labels)


def rows_of(source: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """``(rows, pending)`` of one source (see the module docstring); one-line errors for anything else."""
    path = Path(source)
    if path.is_file():
        data = _read_json(path)
        if "n_mels" in data and "n_train" in data:
            return [_row("linear probe", f"logistic regression, clip-mean {data['n_mels']}-band log-mel", data, path,
                         features="log-mel mean", labels="hard")], []
        if data.get("baseline"):
            return rows_of(path.parent)
        raise ValueError(f"{path}: not a probe result (housex probe --json) nor a baseline metrics.json")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder or result file")
    if (path / "grid.json").is_file():
        grid = _read_json(path / "grid.json")
        rows = [_row("HouseX", r["backbone"], r.get("metrics") or {}, Path(r["output_dir"]), features=r["features"],
                     labels=r["labels"]) for r in grid.get("runs", [])]
        return rows, []
    if not (path / "metrics.json").is_file():
        return [], [str(path)]
    metrics = _read_json(path / "metrics.json")
    baseline = metrics.get("baseline")
    if baseline == "zero-shot":
        features = "names + descriptions" if metrics.get("descriptions") else "genre names"
        return [_row("zero-shot", f"CLAP {_name(metrics['model'])}", metrics, path, features=features)], []
    if baseline == "mllm":
        return [_row("MLLM", f"{_name(metrics['model'])} ({metrics['prompt_version']})", metrics, path,
                     features=f"{metrics.get('clip_seconds')} s audio + prompt", labels="hard")], []
    if (path / "config.json").is_file():
        return [_training_run_row(path, metrics)], []
    raise ValueError(f"{path}/metrics.json: neither a training run (no config.json) nor a baseline (no 'baseline' key)")


def collect(sources) -> tuple[list[dict], list[str]]:
    rows, pending = [], []
    for source in sources:
        r, p = rows_of(source)
        rows += r
        pending += p
    rows.sort(key=lambda r: KINDS.index(r["kind"]))  # stable: the given order within a kind
    return rows, pending


def format_table(rows: list[dict]) -> str:
    """Markdown, one column set for every kind of row; the best weighted F1 in bold."""
    f1s = [r["f1_weighted"] for r in rows if r.get("f1_weighted") is not None]
    best = max(f1s) if f1s else None
    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "|".join("---" if fmt == "{}" else "---:" for _, _, fmt in COLUMNS) + "|"]
    for r in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            v = r.get(key)
            text = NA if v is None else fmt.format(v)
            if key == "f1_weighted" and v is not None and v == best:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(sources, out_dir: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Write ``out_dir/table.md`` and ``out_dir/table.json``; returns ``(rows, pending)``."""
    rows, pending = collect(sources)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = ("# HouseX Table 3\n\nWeighted precision / recall / F1 and accuracy on the validation clips "
              "(targets sharpened, ties to the last genre; the same metric module for every row). "
              "MLLM: unparsed answers count as wrong; intersect = share of clips whose answer has a non-zero "
              "weight in the soft label.\n\n")
    note = f"\nPending (not finished yet): {', '.join(pending)}\n" if pending else ""
    (out / "table.md").write_text(header + format_table(rows) + note, encoding="utf-8")
    payload = {"columns": [key for _, key, _ in COLUMNS], "rows": rows, "pending": pending}
    (out / "table.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return rows, pending
