"""Issue 26, ``housex embed``: ``kill -9`` while the final file (the manifest) is written, a full disk
(up front and mid-run), a second run at once.  A kill mid-run is ``test_encoders``'s
(``test_embed_cache_reuses_refuses_overwrites_and_resumes_after_sigkill``)."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from pathlib import Path

import pytest
from fault_tools import HOUSEX, fill, kill_on_create, lock_held, one_line_disk_error, snapshot, start, tmpfs
from test_baselines import clips_dir  # noqa: F401  (session fixture)
from test_encoders import _housex
from test_trainer import tiny  # noqa: F401  (clips_dir's)

from housex.cli import main as housex_main
from housex.trainer.embeddings import load_embeddings


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return _housex(tmp_path_factory.mktemp("embed-encoder") / "housex")


def _argv(encoder: Path, dataset: Path, out: Path) -> list[str]:
    return ["embed", "--encoder", str(encoder), "--dataset", str(dataset), "--out", str(out), "--device", "cpu",
            "--shard-size", "1", "--batch-size", "4"]


def _cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = housex_main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def reference(encoder, clips_dir, tmp_path_factory) -> dict[str, str]:  # noqa: F811
    out = tmp_path_factory.mktemp("embed-ref") / "emb"
    assert _cli(_argv(encoder, clips_dir, out))[0] == 0
    return snapshot(out)


@pytest.mark.slow
def test_embed_killed_while_writing_the_manifest_reruns_to_the_same_bytes(encoder, clips_dir, reference, tmp_path):  # noqa: F811
    out = tmp_path / "emb"
    out.mkdir()
    assert kill_on_create(start([*HOUSEX, *_argv(encoder, clips_dir, out)]), out, ".embeddings.json.tmp-")
    assert not (out / "embeddings.json").exists()
    with pytest.raises(FileNotFoundError, match="has not finished"):
        load_embeddings(out)  # never looks complete
    assert _cli(_argv(encoder, clips_dir, out))[0] == 0
    assert snapshot(out) == reference  # every shard reused, the temporary file gone


@pytest.mark.slow
def test_embed_on_a_full_disk_is_one_line_and_keeps_whole_shards(encoder, clips_dir, reference):  # noqa: F811
    with tmpfs(16_384) as disk:  # room for provenance.json, not for the shards
        code, err = _cli(_argv(encoder, clips_dir, disk / "emb"))
        assert code == 2 and "no shard was written" in one_line_disk_error(err, disk / "emb")
        assert not list((disk / "emb" / "shards").iterdir())
    with tmpfs(4_000_000) as disk:
        out = disk / "emb"

        def fill_after_the_first_shard():
            deadline = time.monotonic() + 120
            while not list((out / "shards").glob("*.parquet")) if (out / "shards").is_dir() else True:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)
            fill(disk, leave=0)

        threading.Thread(target=fill_after_the_first_shard, daemon=True).start()
        code, err = _cli(_argv(encoder, clips_dir, out))
        assert code == 2
        line = one_line_disk_error(err, out)
        assert "rerun to embed the rest" in line
        written = sorted(p.stem for p in (out / "shards").glob("*.parquet"))
        assert 1 <= len(written) < len([k for k in reference if k.endswith(".parquet")])
        assert all((out / "shards" / f"{stem}.safetensors").is_file() for stem in written)  # whole shards only
        assert not [p for p in out.rglob(".*")] and not (out / "embeddings.json").exists()
        (disk / "filler.bin").unlink()
        assert _cli(_argv(encoder, clips_dir, out))[0] == 0
        assert snapshot(out) == reference


def test_second_embed_run_into_the_same_output_is_refused(encoder, clips_dir, tmp_path):  # noqa: F811
    out = tmp_path / "emb"
    with lock_held(out, "housex embed --out emb") as holder:
        rc, err = _cli(_argv(encoder, clips_dir, out))
        assert rc == 2 and f"PID {holder.pid}: housex embed --out emb" in err
        assert not out.exists()
