"""Issue 26, the web app under load (scaled down; the full load and its figures are
``bench/bench_app.py``'s): ``housex app`` in its own process with a queue of 3; a long set keeps it
busy while bad uploads and 8 track requests arrive at once.  Every request succeeds or is told
"queue is full, try again"; bad uploads get their one-line messages; the server stays up and its
memory bounded.  (An OSC target that does not listen: ``test_cues``.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port, loud_section_track
from test_inference import tiny_model

SR = 16000
MAX_QUEUE = 3


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("app-load")
    out = {"model": tiny_model(folder / "model", sr=SR, clip_seconds=3.0, backbone="patch_cnn_small")}
    out["track"] = folder / "track.flac"
    sf.write(out["track"], loud_section_track(40.0, SR, seed=3), SR)
    out["set"] = folder / "set.flac"
    sf.write(out["set"], np.concatenate([loud_section_track(40.0, SR, seed=s, channels=1) for s in range(4)]), SR)
    out["empty"] = folder / "empty.wav"
    out["empty"].write_bytes(b"")
    out["text"] = folder / "notes.mp3"
    out["text"].write_text("not audio at all\n" * 100)
    out["big"] = folder / "big.wav"
    sf.write(out["big"], np.zeros((SR * 90, 2), np.float32), SR)  # 5.8 MB > the 4 MB limit
    return out


def _outcome(fn) -> str:
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    try:
        fn()
        return "ok"
    except QueueError as e:
        assert "Queue is full" in str(e) and "try again" in str(e)
        return "busy"
    except AppError as e:
        return f"error: {e}"
    except Exception as e:  # noqa: BLE001  (e.g. the upload refused for its size)
        return f"refused: {type(e).__name__}: {e}"


@pytest.mark.slow
def test_app_under_load_answers_every_request_or_says_busy(files):
    from gradio_client import Client, handle_file

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "housex.cli", "app", "--model", str(files["model"]), "--port",
                               str(port), "--max-queue", str(MAX_QUEUE), "--max-file-size", "4mb"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)

        def client():
            return Client(url, verbose=False, download_files=False)

        def track(path=files["track"]):
            return lambda: client().predict(handle_file(str(path)), None, api_name="/classify_track")

        def analyse_set():
            return client().predict(handle_file(str(files["set"])), 2.5, 15.0, "median", 30.0, api_name="/analyse_set")

        with ThreadPoolExecutor(12) as pool:
            long_set = pool.submit(_outcome, analyse_set)
            time.sleep(1.0)  # the set is being analysed (1 at a time): what follows queues or is turned away
            bad = {name: pool.submit(_outcome, track(files[name])) for name in ("empty", "text", "big")}
            tracks = [pool.submit(_outcome, track()) for _ in range(8)]
            results = [f.result(timeout=300) for f in tracks]
            assert long_set.result(timeout=300) == "ok"
            bad = {name: f.result(timeout=300) for name, f in bad.items()}
        assert set(results) <= {"ok", "busy"}, results
        assert "busy" in results and "ok" in results, results  # the cap turned some away, the queue served the rest
        assert bad["big"].startswith("refused") and "exceeds the maximum file size" in bad["big"], bad["big"]
        for name in ("empty", "text"):
            assert bad[name] == "busy" or (bad[name].startswith("error: ") and "\n" not in bad[name]), bad[name]
        assert "empty" in bad["empty"] or bad["empty"] == "busy"
        # the server is up and answers the next request; its memory stayed bounded
        assert server.poll() is None
        assert _outcome(track()) == "ok"
        assert _peak_rss(server.pid) < 2 * 2**30
    finally:
        server.terminate()
        server.wait(timeout=60)
