"""transformers' ``audio-classification`` pipeline, able to resample without torchaudio.

The stock pipeline resamples audio given at another rate (a ``datasets`` row of our 44.1 kHz
clips, ``{"raw": x, "sampling_rate": 44100}``) with torchaudio, which this package cannot depend
on (no torchaudio build matches the torch it pins).  This subclass resamples such input with
``librosa.resample`` (soxr_hq, what the HouseX feature extractor uses) when torchaudio is
missing, and is otherwise the stock pipeline; ``import housex`` makes it the task's class.
"""

from __future__ import annotations

import sys

import numpy as np
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import is_torchaudio_available

TASK = "audio-classification"


def _as_dict(inputs):
    """A torchcodec ``AudioDecoder`` (how ``datasets`` 5 gives audio) as ``{"array", "sampling_rate"}``."""
    torchcodec = sys.modules.get("torchcodec")
    if torchcodec is not None and isinstance(inputs, torchcodec.decoders.AudioDecoder):
        samples = inputs.get_all_samples()
        return {"array": samples.data.numpy(), "sampling_rate": samples.sample_rate}
    return inputs


class ResamplingAudioClassificationPipeline(AudioClassificationPipeline):
    """:class:`AudioClassificationPipeline` that resamples with librosa (soxr_hq) when torchaudio is absent."""

    def preprocess(self, inputs):
        inputs = _as_dict(inputs)
        target = self.feature_extractor.sampling_rate
        if isinstance(inputs, dict) and "sampling_rate" in inputs and inputs["sampling_rate"] != target:
            if not is_torchaudio_available():
                import librosa

                audio = inputs.get("raw", inputs.get("array"))
                if audio is None:
                    return super().preprocess(inputs)  # the stock pipeline names the missing key
                audio = np.asarray(audio.numpy() if hasattr(audio, "numpy") else audio, dtype=np.float32)
                if audio.ndim == 2 and min(audio.shape) <= 2:  # (channels, samples) or (samples, channels)
                    audio = audio.mean(axis=int(np.argmin(audio.shape)))
                audio = librosa.resample(audio, orig_sr=inputs["sampling_rate"], target_sr=target, res_type="soxr_hq")
                inputs = {"raw": audio, "sampling_rate": target}
        return super().preprocess(inputs)


def register_audio_classification_pipeline() -> None:
    """Make ``pipeline("audio-classification")`` use :class:`ResamplingAudioClassificationPipeline` (idempotent)."""
    PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] = ResamplingAudioClassificationPipeline
