"""Shared test helpers: small generated audio, the upstream fixture folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def loud_section_track(
    seconds: float = 40.0,
    sr: int = 22050,
    loud: tuple[float, float] = (20.0, 38.0),
    channels: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Sine + noise at -30 dB with a section at 0 dB: a drop that the detector must find.

    Returns float32 (samples, channels) — the soundfile layout.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.03 * np.sin(2 * np.pi * 220 * t) + 0.003 * rng.standard_normal(t.size)
    a, b = (int(x * sr) for x in loud)
    y[a:b] = 0.9 * np.sin(2 * np.pi * 110 * t[a:b]) + 0.05 * rng.standard_normal(b - a)
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
