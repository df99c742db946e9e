"""Training, evaluation and baselines of the HouseX classifier (``housex.trainer``).

``CONFIGS_DIR`` holds the shipped training recipes (``cpu.yaml``, ``paper.yaml``), package data of
``housex.trainer.configs``, so a regular (non-editable) install finds them too.
"""

from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
