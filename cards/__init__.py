"""Card templates (``dataset_card.md``, ``model_card.md``), shipped as package data of ``housex.cards``
so that a regular (non-editable) install finds them too."""

from pathlib import Path

CARDS_DIR = Path(__file__).resolve().parent
