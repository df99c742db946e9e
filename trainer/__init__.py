"""Training, evaluation and baselines of the HouseX classifier (``housex.trainer``).

``CONFIGS_DIR`` holds the shipped training recipes (``cpu.yaml``, ``paper.yaml``), package data of
``housex.trainer.configs``, so a regular (non-editable) install finds them too. ``METRIC_FILE`` is the ``evaluate`` metric module
that training, the baselines and the table all score with (loaded by path, no Hub fetch).
"""

from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
METRIC_FILE = Path(__file__).resolve().parent / "housex_metric.py"
