"""``pipeline("housex-track-classification", model=folder)``: whole tracks, as ``housex predict``.

The stock ``audio-classification`` pipeline classifies one clip (the feature extractor pads or
crops its input to ``clip_seconds``).  This task is ``housex.classify_track`` as a pipeline:
``preprocess`` decodes the input (path or array), detects the drops and samples clips per drop
(``track_clips``); ``_forward`` classifies them (``classify_track`` of those clips,
``clip_batch_size`` per forward pass: the mean per drop, then per track); ``postprocess`` adds the
top genres.

    import housex  # registers the task
    from transformers import pipeline

    classify = pipeline("housex-track-classification", model="demo-out/model")
    classify("track.mp3", top_k=3)
    # {"source": "track.mp3", "duration": 181.2, "genre": "Tech House",
    #  "top": [{"label": "Tech House", "score": 0.61}, ...], "probabilities": {...8 genres...},
    #  "drops": [{"start": 45.1, "end": 75.9, "genre": ..., "probabilities": {...}, ...}], ...}

One track is one pipeline item: the pipeline's own ``batch_size`` must stay 1 (clips of a track
are batched by ``clip_batch_size``).
"""

from __future__ import annotations

from transformers import AutoModelForAudioClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .audio_pipeline import register_audio_classification_pipeline
from .inference import DEFAULT_BATCH_SIZE, classify_track, extractor_clip_seconds, label_names
from .track_audio import track_clips

TASK = "housex-track-classification"
_PREPROCESS_OPTIONS = ("sampling_rate", "clips_per_section", "seed", "min_seconds", "drop_options")


class HouseXTrackClassificationPipeline(Pipeline):
    """Whole-track genre distribution from the drops (see the module docstring).

    Call options: ``top_k`` (genres listed under ``"top"``, default all), ``sampling_rate`` (for
    array input), ``clips_per_section``, ``seed``, ``min_seconds``, ``drop_options`` (as
    ``classify_track``), ``clip_batch_size`` (clips per forward pass).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def __call__(self, inputs, **kwargs):
        if (kwargs.get("batch_size") or 1) > 1:
            raise ValueError(
                f"{TASK}: batch_size={kwargs['batch_size']} is not supported (one track is one item); "
                "use clip_batch_size to set how many clips go through the model at once"
            )
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, clip_batch_size=None, **kwargs):
        unknown = sorted(set(kwargs) - set(_PREPROCESS_OPTIONS))
        if unknown:
            raise TypeError(f"{TASK}: unknown option(s) {unknown}; known: {sorted(_PREPROCESS_OPTIONS)}, top_k, clip_batch_size")
        preprocess = {k: v for k, v in kwargs.items() if v is not None}
        forward = {"clip_batch_size": clip_batch_size} if clip_batch_size is not None else {}
        postprocess = {"top_k": top_k} if top_k is not None else {}
        return preprocess, forward, postprocess

    def preprocess(self, inputs, **options):
        fe = self.feature_extractor
        return {"track": track_clips(inputs, int(fe.sampling_rate), extractor_clip_seconds(fe), **options)}

    def _forward(self, model_inputs, clip_batch_size: int = DEFAULT_BATCH_SIZE):
        # classify_track featurises and runs the model one batch of clips at a time
        if clip_batch_size < 1:
            raise ValueError(f"{TASK}: clip_batch_size must be >= 1, got {clip_batch_size}")
        return {"prediction": classify_track(model_inputs["track"], self.model, self.feature_extractor,
                                             batch_size=clip_batch_size)}

    def postprocess(self, model_outputs, top_k: int | None = None):
        labels = label_names(self.model)
        prediction = model_outputs["prediction"]
        out = prediction.to_dict()
        out["top"] = [{"label": g, "score": p} for g, p in prediction.top(top_k or len(labels))]
        return out


def register_track_pipeline() -> None:
    """Make ``pipeline("housex-track-classification", ...)`` known to transformers (idempotent)."""
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            TASK, pipeline_class=HouseXTrackClassificationPipeline, pt_model=AutoModelForAudioClassification, type="audio"
        )


register_track_pipeline()  # importing this module registers the task (see housex/__init__.py)
register_audio_classification_pipeline()  # and resampling without torchaudio for "audio-classification"
