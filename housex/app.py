"""The HouseX web app (Gradio Blocks): a Track tab and a Set tab over the one inference path.

* **Track**: upload any file FFmpeg decodes (or pick one from ``library``) → the track's
  distribution over the 8 genres (``housex.inference.classify_track`` on the track's clips), the
  waveform and loudness with the drop sections
  marked (the fallback section flagged), per-drop distributions, and a player for every
  analysed clip.
* **Set**: a long mix → the genre timeline (the PNG ``housex timeline`` writes), the segments
  table, hop / smoothing controls, the cues of ``housex.cues`` and downloads of the CSV / JSON /
  PNG / ``cues.json`` / ``cues.mid`` files; the cues can also be replayed as OSC messages.

Silent, too-short and undecodable files give the inference's one-line message (``gr.Error``),
never a stack trace: the page names the file as uploaded, never a path on the server, and the
app's log gets the same line (logger ``housex.app``) instead of Gradio's traceback.  ``launch`` binds 127.0.0.1 unless told otherwise and limits uploads with
Gradio's ``max_file_size``.  ``export_space`` writes a Hugging Face Space folder (``app.py``,
``requirements.txt``, ``README.md`` with the Space header, the package and the model).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

DEFAULT_MAX_FILE_SIZE = "500mb"
# One analysis at a time: on a CPU one request already uses the cores (two at once take as long as
# two in turn) and each holds a whole decoded track or set; 16 more wait, beyond that "busy, retry".
DEFAULT_CONCURRENCY = 1
DEFAULT_MAX_QUEUE = 16
TITLE = "HouseX-v2: house sub-genres of tracks and DJ sets"
_log = logging.getLogger("housex.app")


def user_message(error: Exception, path=None) -> str:
    """``error`` as one line for the page and the log: the file's server path (an upload's
    temporary copy, or a library file) replaced by its name, any other absolute path cut to its
    last part."""
    text = " ".join(str(error).split())
    if path:
        text = text.replace(str(path), Path(str(path)).name)
    return re.sub(r"(?<![\w.~])/(?:[^\s/'\"():;,]+/)+", "", text)


def _refuse(error: Exception, path=None):
    """The page's error for a file the app cannot analyse, and one log line (no traceback)."""
    import gradio as gr

    message = user_message(error, path)
    _log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def _library_files(library) -> list[str]:
    from .dataset_script.audio import find_audio_files

    if library is None:
        return []
    folder = Path(library)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: --library folder not found")
    return [str(p) for p in find_audio_files([folder])]


def _loudness_figure(mono: np.ndarray, sr: int, sections, fallback: bool):
    """Waveform envelope and frame loudness (dB) with the analysed ``sections`` ((start, end) s:
    the prediction's drops, or its fallback section) shaded."""
    from .dataset_script.drops import frame_rms
    from .trainer.plots import pyplot

    plt = pyplot()
    hop = max(1, sr // 10)
    rms = frame_rms(mono, frame_length=hop * 4, hop_length=hop)
    db = 20 * np.log10(np.maximum(rms, 1e-6) / max(float(rms.max()), 1e-6))
    t = np.arange(rms.size) * hop / sr
    n = mono.size // hop * hop
    blocks = np.abs(mono[:n]).reshape(-1, hop).max(1) if n else np.zeros(1)
    fig, ax = plt.subplots(figsize=(10, 2.6))
    ax.fill_between(np.arange(blocks.size) * hop / sr, -blocks, blocks, color="0.6", linewidth=0, label="waveform")
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("amplitude")
    ax.set_xlabel("time (s)")
    ax2 = ax.twinx()
    ax2.plot(t, db, color="tab:blue", linewidth=1, label="loudness (dB)")
    ax2.set_ylim(-40, 1)
    ax2.set_ylabel("loudness (dB re max)")
    kind = "fallback section (no drop detected)" if fallback else "drop"
    for i, (start, end) in enumerate(sections):
        ax.axvspan(start, end, color="tab:red" if fallback else "tab:orange", alpha=0.25,
                   label=kind if i == 0 else None)
    ax.set_xlim(0, mono.size / sr)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.07, right=0.92, bottom=0.19, top=0.96)  # fixed margins: tight_layout cost ~30 ms a call
    return fig


def _playable(sr: int, clip: np.ndarray) -> tuple[int, np.ndarray]:
    """A mono float clip as Gradio audio: (rate, int16 samples)."""
    return sr, (np.clip(clip, -1.0, 1.0) * 32767).astype(np.int16)


class HouseXApp:
    """The app's analysis functions around one loaded model (used by the Gradio callbacks)."""

    def __init__(self, model, feature_extractor=None, *, device=None, batch_size: int = 16, work_dir=None):
        from .inference import extractor_clip_seconds, label_names, load_classifier

        self.model, self.fe = load_classifier(model, feature_extractor, device=device)
        self.device = device
        self.batch_size = batch_size
        self.sr = int(self.fe.sampling_rate)
        self.clip_seconds = extractor_clip_seconds(self.fe)
        self.labels = label_names(self.model)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="housex-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)

    # ---- track ----------------------------------------------------------------------------

    def analyse_track(self, path, progress=None):
        """Path → ``(TrackPrediction, TrackClips, mono)``: ``classify_track`` of the track's clips, cut
        here so that the signal (for the loudness plot) is decoded once; the same result and notes."""
        from .inference import classify_track
        from .track_audio import clips_from_mono, read_audio

        step = progress or (lambda *a, **k: None)
        step(0.05, desc="decoding")
        mono, name, notes = read_audio(path, None, self.sr, min_seconds=1.0)
        step(0.3, desc="finding the drops")
        track = clips_from_mono(mono, name, notes, self.sr, self.clip_seconds)
        step(0.5, desc=f"classifying {len(track.clips)} clips")
        pred = classify_track(track, self.model, self.fe, batch_size=self.batch_size, device=self.device)
        return pred, track, mono

    def track_outputs(self, path, progress=None):
        pred, track, mono = self.analyse_track(path, progress)
        rows = []
        for i, d in enumerate(pred.drops, 1):
            rows.append(["fallback" if pred.fallback else f"drop {i}", round(d.start, 1), round(d.end, 1), d.genre,
                         *(round(float(p), 3) for p in d.probabilities)])
        clips = [f"clip {k + 1}: {'fallback' if pred.fallback else 'drop ' + str(track.drop_index[k] + 1)} "
                 f"@ {s:.1f} s" for k, s in enumerate(track.clip_starts)]
        notes = "\n".join(f"- {n}" for n in pred.notes)
        summary = f"**{pred.genre}** ({pred.probabilities.max():.2f}) · {pred.duration:.1f} s · " \
                  f"{len(pred.drops)} {'fallback section' if pred.fallback else 'drop(s)'}, {len(track.clips)} clips"
        return {
            "label": {g: float(p) for g, p in zip(self.labels, pred.probabilities)},
            "summary": summary + ("\n\n" + notes if notes else ""),
            "figure": _loudness_figure(mono, self.sr, [(d.start, d.end) for d in pred.drops], pred.fallback),
            "drops": rows,
            "clips": clips,
            "json": pred.to_dict(),
            "track": track,
        }

    # ---- set ------------------------------------------------------------------------------

    def analyse_set(self, path, hop: float = 2.5, smooth: float = 15.0, smoothing: str = "median",
                    min_segment: float = 30.0, progress: bool = False):
        """Path → ``(Timeline, SetCues, {format: path})``: timeline + cues, all files written."""
        from .cues import set_cues

        tl, cues = set_cues(path, self.model, self.fe, hop_seconds=float(hop), smooth_seconds=float(smooth),
                            smoothing=smoothing, min_segment_seconds=float(min_segment), batch_size=self.batch_size,
                            device=self.device, progress=progress)
        out = Path(tempfile.mkdtemp(prefix="set-", dir=self.work_dir))
        stem = Path(str(path)).stem
        files = tl.write(out / f"{stem}-timeline")
        files.update({f"cues-{k}": v for k, v in cues.write(out).items()})
        return tl, cues, files


def build_app(model, feature_extractor=None, *, library=None, device=None, batch_size: int = 16, work_dir=None):
    """The Gradio ``Blocks`` of the app for a model folder (or a loaded model + feature extractor)."""
    import gradio as gr

    from .inference import AudioInputError

    core = HouseXApp(model, feature_extractor, device=device, batch_size=batch_size, work_dir=work_dir)
    library_files = _library_files(library)
    errors = (AudioInputError, ValueError, OSError, RuntimeError)

    def run_track(upload, picked, progress=gr.Progress()):
        path = upload or picked
        if not path:
            raise gr.Error("Upload a track (or pick one from the library) first.")
        try:
            out = core.track_outputs(path, progress)
        except errors as e:
            raise _refuse(e, path) from None
        choices = out["clips"]
        return (out["label"], out["summary"], out["figure"], out["drops"],
                gr.update(choices=choices, value=choices[0] if choices else None), out["json"], out["track"],
                _playable(core.sr, out["track"].clips[0]) if choices else None)

    def play_clip(choice, track):
        if track is None or not choice:
            return None
        k = int(choice.split(":")[0].split()[1]) - 1
        return _playable(core.sr, track.clips[k])

    def run_set(upload, hop, smooth, smoothing, min_segment, progress=gr.Progress(track_tqdm=True)):
        if not upload:
            raise gr.Error("Upload a mix first.")
        try:
            tl, cues, files = core.analyse_set(upload, hop, smooth, smoothing, min_segment, progress=True)
        except errors as e:
            raise _refuse(e, upload) from None
        rows = [[round(s.start, 1), round(s.end, 1), s.genre, round(s.score, 3)] for s in tl.segments]
        summary = (f"{tl.duration / 60:.1f} min · {len(tl.window_starts)} windows · {len(tl.segments)} segments · "
                   f"{cues.tempo:.1f} BPM · {len(cues.grid.bars)} bars · {len(cues.drops)} drops")
        return str(files["png"]), summary, rows, [str(p) for p in files.values()], cues

    def send_osc(cues, target, speed):
        from .cues import parse_host_port, replay_osc

        if cues is None:
            raise gr.Error("Analyse a set first.")
        try:
            host, port = parse_host_port(target)
            if not float(speed or 0) > 0:
                raise ValueError(f"speed must be > 0, got {speed}")
        except ValueError as e:
            raise _refuse(e) from None
        threading.Thread(target=replay_osc, args=(cues, host, port), kwargs={"speed": float(speed)},
                         daemon=True).start()
        return f"sending {len(cues.osc_messages())} OSC messages to {host}:{port} at {float(speed):g}x"

    genre_cols = list(core.labels)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nModel: `{getattr(core.model, 'name_or_path', '') or 'in memory'}` · "
                    f"clips of {core.clip_seconds:g} s at {core.sr} Hz")
        with gr.Tab("Track"):
            with gr.Row():
                with gr.Column(scale=1):
                    track_in = gr.File(label="Track (any format FFmpeg decodes)", type="filepath")
                    picked = gr.Dropdown(library_files, label="…or a track from the library", value=None,
                                         visible=bool(library_files))
                    track_btn = gr.Button("Classify track", variant="primary")
                with gr.Column(scale=2):
                    label = gr.Label(num_top_classes=len(genre_cols), label="Genre distribution (all 8)")
                    summary = gr.Markdown()
            loud = gr.Plot(label="Waveform and loudness, analysed sections marked")
            drops = gr.Dataframe(headers=["section", "start (s)", "end (s)", "genre", *genre_cols],
                                 label="Per-drop distributions", interactive=False)
            with gr.Row():
                clip_pick = gr.Dropdown([], label="Analysed clip")
                clip_audio = gr.Audio(label="Clip", type="numpy", interactive=False)
            with gr.Accordion("Result (JSON)", open=False):
                track_json = gr.JSON()
            track_state = gr.State()
            track_btn.click(run_track, [track_in, picked],
                            [label, summary, loud, drops, clip_pick, track_json, track_state, clip_audio],
                            api_name="classify_track")
            clip_pick.change(play_clip, [clip_pick, track_state], clip_audio, api_name=False)
        with gr.Tab("Set"):
            with gr.Row():
                with gr.Column(scale=1):
                    set_in = gr.File(label="DJ set / mix", type="filepath")
                    hop = gr.Slider(0.5, 10, value=2.5, step=0.5, label="hop (s)")
                    smooth = gr.Slider(0, 60, value=15, step=2.5, label="smoothing span (s)")
                    smoothing = gr.Radio(["median", "mean"], value="median", label="smoothing")
                    min_segment = gr.Slider(0, 120, value=30, step=5, label="shortest segment (s)")
                    set_btn = gr.Button("Analyse set", variant="primary")
                with gr.Column(scale=2):
                    set_summary = gr.Markdown()
                    timeline_png = gr.Image(label="Genre timeline", type="filepath", interactive=False)
            segments = gr.Dataframe(headers=["start (s)", "end (s)", "genre", "score"], label="Segments",
                                    interactive=False)
            downloads = gr.File(label="Downloads: timeline CSV / JSON / PNG, cues.json, cues.mid",
                                file_count="multiple", interactive=False)
            with gr.Accordion("Cues over OSC (python-osc, UDP)", open=False):
                with gr.Row():
                    osc_target = gr.Textbox("127.0.0.1:9000", label="HOST:PORT")
                    osc_speed = gr.Number(1.0, label="speed (x real time)", minimum=0.01)
                    osc_btn = gr.Button("Send cues")
                osc_status = gr.Markdown()
            cue_state = gr.State()
            set_btn.click(run_set, [set_in, hop, smooth, smoothing, min_segment],
                          [timeline_png, set_summary, segments, downloads, cue_state], api_name="analyse_set")
            osc_btn.click(send_osc, [cue_state, osc_target, osc_speed], osc_status, api_name=False)
    return demo


def launch(model, feature_extractor=None, *, host: str = "127.0.0.1", port: int | None = 7860, library=None,
           device=None, max_file_size: str | int = DEFAULT_MAX_FILE_SIZE, block: bool = True, quiet: bool = False,
           concurrency: int = DEFAULT_CONCURRENCY, max_queue: int = DEFAULT_MAX_QUEUE):
    """Build and serve the app; returns ``(demo, url)`` (with ``block=False`` the server runs in a thread).

    Under load: ``concurrency`` requests are analysed at once (each holds a decoded track or set in
    memory, so memory stays bounded), at most ``max_queue`` more wait in Gradio's queue, and any
    beyond that get Gradio's "queue is full, try again" at once (HTTP 503)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app(model, feature_extractor, library=library, device=device)
    allowed = [library] if library else None
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    _, url, _ = demo.launch(server_name=host, server_port=port, max_file_size=max_file_size,
                                    prevent_thread_lock=not block, quiet=quiet, allowed_paths=allowed,
                                    footer_links=["api"])
    return demo, url


# --------------------------------------------------------------------------------------------
# Hugging Face Space export
# --------------------------------------------------------------------------------------------

SPACE_APP = '''"""Hugging Face Space entry point: the HouseX-v2 web app on the model in ./model."""

import os

from housex.app import build_app

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
demo = build_app(os.environ.get("HOUSEX_MODEL", "model"))

if __name__ == "__main__":
    demo.queue(default_concurrency_limit={concurrency}, max_size={max_queue})
    demo.launch(max_file_size=os.environ.get("HOUSEX_MAX_FILE_SIZE", "{max_file_size}"))
'''

SPACE_README = """---
title: HouseX-v2 genres
emoji: 🎧
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
license: bsd-3-clause
---

# HouseX-v2: house sub-genres of tracks and DJ sets

Track tab: the genre distribution of a track from its drops. Set tab: the genre timeline of a mix
and bar-aligned cues for visuals (cues.json, cues.mid). Model: `model/` (a HouseX classifier saved
with `save_pretrained`). Made with `housex app --space`.
"""

_SPACE_PACKAGES = ("housex", "housex.dataset_script", "housex.modeling", "housex.cards")
# What loading the model for inference reads (the files save_pretrained writes): its config, the
# weights (one safetensors file, or shards and their index), the feature extractor's config and the
# model's code.  A training run's folder also holds checkpoint-*/ (optimizer state), runs/,
# trainer_state.json, metrics and predictions: none of them goes into a Space.
_MODEL_FILES = ("config.json", "preprocessor_config.json", "*.safetensors", "model.safetensors.index.json", "*.py")


def _copy_model_files(model: Path, dst: Path) -> None:
    names = sorted(p.name for p in model.iterdir()
                   if p.is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in _MODEL_FILES))
    if not any(name.endswith(".safetensors") for name in names):
        raise FileNotFoundError(f"{model}: no model weights (model.safetensors written by save_pretrained)")
    shutil.rmtree(dst, ignore_errors=True)  # a previous export's files must not linger
    dst.mkdir(parents=True)
    for name in names:
        shutil.copy2(model / name, dst / name)


def _requirements() -> list[str]:
    """The package's dependencies: from pyproject.toml in a source checkout, else the installed metadata."""
    import importlib.metadata
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])
    try:
        return [r for r in importlib.metadata.requires("housex-v2") or [] if "extra ==" not in r]
    except importlib.metadata.PackageNotFoundError:
        return []


def export_space(folder, model, *, max_file_size: str = DEFAULT_MAX_FILE_SIZE) -> Path:
    """Write a Space folder: ``app.py``, ``requirements.txt``, ``README.md`` (Space header), the
    ``housex`` package (source files) and ``model/`` (the files inference reads from the model
    folder, ``_MODEL_FILES``: no checkpoints, logs or training state)."""
    import importlib

    import gradio

    folder, model = Path(folder), Path(model)
    if not (model / "config.json").is_file():
        raise FileNotFoundError(f"{model}: not a model folder (expected config.json written by save_pretrained)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(SPACE_APP.replace("{max_file_size}", str(max_file_size))
                                   .replace("{concurrency}", str(DEFAULT_CONCURRENCY))
                                   .replace("{max_queue}", str(DEFAULT_MAX_QUEUE)))
    (folder / "README.md").write_text(SPACE_README.format(gradio_version=gradio.__version__))
    deps = _requirements()
    (folder / "requirements.txt").write_text("\n".join(deps) + "\n")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in _SPACE_PACKAGES:  # the package's source files, laid out as installed
        src = Path(importlib.import_module(name).__file__).parent
        dst = folder.joinpath(*name.split("."))
        dst.mkdir(parents=True, exist_ok=True)
        for path in src.iterdir():
            if path.is_file() and path.suffix in (".py", ".md"):
                shutil.copy2(path, dst / path.name)
    shutil.copytree(Path(importlib.import_module("housex.commands").__file__).parent, folder / "housex" / "commands",
                    dirs_exist_ok=True, ignore=ignore)
    _copy_model_files(model, folder / "model")
    return folder
