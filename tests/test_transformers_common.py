"""transformers' own common tests on the HouseX classes: ModelTesterMixin, ConfigTester and the
(sequence) feature-extraction mixins, from the test sources of exactly the installed transformers.

`make setup` downloads that version's source distribution from the package index and unpacks its
``tests/`` folder into ``.venv/share/transformers-tests`` (never into this repository).  Without it
this module is skipped with that reason.  The sdist ships ``tests/*.py`` but not the sub-packages
three of them import (``tests/exporters``, ``tests/generation``, ``tests/utils``); they are provided
here as stated in `_SDIST_GAPS`.

Tiny configs on CPU: the patch_cnn_small and resnet18 backbones, each pooling mode, with and
without an attention mask, 6 model test classes.  Every skip names its reason (`SKIPS`).
"""

from __future__ import annotations

import importlib
import sys
import types
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

TESTS_ROOT = Path(sys.prefix) / "share" / "transformers-tests"
if not (TESTS_ROOT / "tests" / "test_modeling_common.py").is_file():
    pytest.skip(
        f"transformers' common tests are not installed at {TESTS_ROOT}/tests (run `make setup`: it fetches the "
        "sdist of the installed transformers version from the package index)",
        allow_module_level=True,
    )

import transformers  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from housex.modeling import (  # noqa: E402
    HouseXConfig,
    HouseXFeatureExtractor,
    HouseXForAudioClassification,
    HouseXModel,
)

_THREADS = torch.get_num_threads()


def setUpModule():
    torch.set_num_threads(1)  # tiny tensors: threads only contend (see test_modeling.py)


def tearDownModule():
    torch.set_num_threads(_THREADS)


sys.path.insert(0, str(TESTS_ROOT))
importlib.import_module("tests")  # the sdist's tests package (an empty __init__.py from make setup)


class ExportTesterMixin:
    """Not in the sdist (tests/exporters/): HouseX's torch.export is tested in test_modeling.py instead."""


class GenerationTesterMixin:
    """Not in the sdist (tests/generation/): HouseX does not generate, the mixin only marks generative testers."""


# Non-default values of PretrainedConfig's common arguments, for ConfigTester.check_config_arguments_init
# (transformers' own list lives in tests/utils/, which the sdist does not ship).
CONFIG_COMMON_KWARGS = {
    "return_dict": False,
    "output_hidden_states": True,
    "dtype": "float16",
    "problem_type": "multi_label_classification",
    "chunk_size_feed_forward": 5,
    "is_encoder_decoder": True,
    "tie_word_embeddings": False,
}

_SDIST_GAPS = {
    "tests.exporters": {},
    "tests.exporters.test_export": {"ExportTesterMixin": ExportTesterMixin},
    "tests.generation": {},
    "tests.generation.test_utils": {"GenerationTesterMixin": GenerationTesterMixin},
    "tests.utils": {},
    "tests.utils.test_configuration_utils": {"config_common_kwargs": CONFIG_COMMON_KWARGS},
}
for _name, _attrs in _SDIST_GAPS.items():
    try:  # a fuller copy of transformers' tests would bring its own
        importlib.import_module(_name)
        continue
    except ModuleNotFoundError:
        pass
    _module = types.ModuleType(_name)
    _module.__dict__.update(_attrs)
    _module.__path__ = []  # a package, so the next name can sit under it
    sys.modules[_name] = _module

from tests.test_configuration_common import ConfigTester  # noqa: E402
from tests.test_modeling_common import ModelTesterMixin, floats_tensor  # noqa: E402
from tests.test_sequence_feature_extraction_common import SequenceFeatureExtractionTestMixin  # noqa: E402

# Why each inherited test does not apply to HouseX; every one is reported as skipped with this reason.
SKIPS = {
    "test_attention_outputs": "the encoder is torch's fused nn.TransformerEncoderLayer: no attention weights "
    "(output_attentions=True raises, tested in test_modeling.py)",
    "test_retain_grad_hidden_states_attentions": "no attention outputs (torch's fused encoder layer)",
    "test_can_init_all_missing_weights": "a fresh HouseX model keeps torch's/torchvision's constructor init (so seeds "
    "reproduce earlier trained weights); _init_weights applies the same rules to keys a checkpoint lacks, not the same "
    "random draws (tested in test_modeling.py: finite, LayerNorm 1/0, BatchNorm 0/1, deterministic)",
    "test_inputs_embeds": "no token embeddings: inputs are spectrogram planes",
    "test_inputs_embeds_matches_input_ids": "no token embeddings: inputs are spectrogram planes",
    "test_model_get_set_embeddings": "no token embeddings: inputs are spectrogram planes",
    "test_resize_tokens_embeddings": "no token embeddings: inputs are spectrogram planes",
    "test_resize_embeddings_untied": "no token embeddings: inputs are spectrogram planes",
    "test_resize_embeddings_untied_no_reinit_on_post_init": "no token embeddings: inputs are spectrogram planes",
    "test_enable_input_require_grads": "no token embeddings for enable_input_require_grads to hook",
    "test_enable_input_require_grads_with_gradient_checkpointing": "no token embeddings for enable_input_require_grads",
    "test_feed_forward_chunking": "torch's nn.TransformerEncoderLayer has no feed-forward chunking",
    "test_can_load_ignoring_mismatched_shapes": "a fresh HouseX model keeps torch's default init of its classifier "
    "(same trained weights as earlier releases), so this test's bias-mean check on the zero-init config does not "
    "hold; the size-mismatch reload itself is test_load_with_mismatched_shapes",
    "test_torch_compile_for_training": "compile is tested in test_modeling.py (fullgraph, with/without mask); this one "
    "builds Inductor kernels: minutes on a small CPU",
}
# resnet18 (torchvision has no width option: 11.7 M parameters) runs the tests of the forward, outputs,
# training and checkpointing; the save/load/offload/init tests, which write and rebuild 45 MB models
# many times, run on the patch_cnn_small classes (same modeling code).
RESNET_TESTS = {
    "test_config", "test_batching_equivalence", "test_determinism", "test_hidden_states_output",
    "test_model_outputs_equivalence", "test_training", "test_training_gradient_checkpointing",
    "test_training_gradient_checkpointing_use_reentrant_false", "test_model_main_input_name",
    "test_model_forward_default_config_values", "test_problem_types", "test_init_weights_can_init_buffers",
}
# Tests of transformers' loading code that do not depend on the pooling/mask: once, in the first class.
ONCE = {"test_bc_torch_dtype": "loads the model 14 times in every dtype: run once, in HouseX_patch_cnn_small_first_mask"}
RESNET_SKIP = "resnet18 runs the forward/training tests only (11.7 M parameters); this one runs on patch_cnn_small"


class HouseXModelTester:
    """Tiny HouseX configs and inputs for ModelTesterMixin: 16 mels, 48 frames -> 5 patches of 16x16."""

    def __init__(self, parent, backbone: str, pooling: str, use_mask: bool):
        self.parent = parent
        self.backbone, self.pooling, self.use_mask = backbone, pooling, use_mask
        self.batch_size = 3
        self.num_channels = 3
        self.patch_size = 16
        self.patch_hop = 8
        self.frames = 48
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_attention_heads = 2
        self.num_labels = 8
        self.is_training = True
        num_patches = 1 + (self.frames - self.patch_size) // self.patch_hop
        self.seq_length = num_patches + (pooling == "cls")

    def get_config(self) -> HouseXConfig:
        return HouseXConfig(
            backbone=self.backbone,
            num_channels=self.num_channels,
            patch_size=self.patch_size,
            patch_hop=self.patch_hop,
            d_model=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=32,
            hidden_dropout_prob=0.0,
            pooling=self.pooling,
            backbone_head="replace" if self.backbone == "resnet18" else "imagenet",
        )

    def prepare_config_and_inputs_for_common(self):
        features = floats_tensor([self.batch_size, self.num_channels, self.patch_size, self.frames])
        inputs = {"input_features": features}
        if self.use_mask:
            mask = torch.ones(self.batch_size, self.frames, dtype=torch.long)
            mask[-1, self.frames // 2 :] = 0  # the last clip is half padding
            inputs["attention_mask"] = mask
        return self.get_config(), inputs


class _HouseXModelTest(ModelTesterMixin):
    """HouseX listed in transformers' name tables (for the duration of the class) as if it were one of its
    own models: the mixin then treats HouseXModel as a base model and gives the classifier labels."""

    all_model_classes = (HouseXModel, HouseXForAudioClassification)
    has_attentions = False
    test_resize_embeddings = False
    test_torch_exportable = False  # the ExportTesterMixin is not in the sdist; see test_modeling.py
    backbone = pooling = None
    use_mask = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._names = [
            mock.patch.dict(modeling_auto.MODEL_MAPPING_NAMES, {"housex": "HouseXModel"}),
            mock.patch.dict(modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
                            {"housex": "HouseXForAudioClassification"}),
        ]
        for patch in cls._names:
            patch.start()

    @classmethod
    def tearDownClass(cls):
        for patch in cls._names:
            patch.stop()
        super().tearDownClass()

    def setUp(self):
        self.model_tester = HouseXModelTester(self, self.backbone, self.pooling, self.use_mask)
        self.config_tester = ConfigTester(
            self, config_class=HouseXConfig, has_text_modality=False, d_model=16, num_attention_heads=2
        )
        reason = SKIPS.get(self._testMethodName)
        if not reason and self.backbone == "resnet18" and self._testMethodName not in RESNET_TESTS:
            reason = RESNET_SKIP
        if not reason and (self.backbone, self.pooling) != ("patch_cnn_small", "first"):
            reason = ONCE.get(self._testMethodName)
        if reason:
            self.skipTest(reason)

    def test_config(self):
        self.config_tester.run_common_tests()


def _model_test_class(backbone: str, pooling: str, use_mask: bool) -> type:
    name = f"HouseX_{backbone}_{pooling}_{'mask' if use_mask else 'nomask'}_ModelTest"
    return type(name, (_HouseXModelTest, unittest.TestCase),
                {"backbone": backbone, "pooling": pooling, "use_mask": use_mask, "__module__": __name__})


# each backbone in each pooling mode; each backbone with and without masks
for _backbone, _pooling, _mask in [
    ("patch_cnn_small", "first", True),
    ("patch_cnn_small", "cls", False),
    ("patch_cnn_small", "mean", True),
    ("resnet18", "first", False),
    ("resnet18", "cls", True),
    ("resnet18", "mean", False),
]:
    _cls = _model_test_class(_backbone, _pooling, _mask)
    globals()[_cls.__name__] = _cls
del _cls


class HouseXFeatureExtractorTester:
    """Tiny extractor settings and (frames, n_mels) feature sequences for the sequence mixin's padding tests."""

    def __init__(self, parent):
        self.parent = parent
        self.batch_size = 4
        self.feature_size = 16  # = n_mels
        self.min_seq_length, self.max_seq_length = 20, 60
        self.seq_length_diff = (self.max_seq_length - self.min_seq_length) // (self.batch_size - 1)
        self.padding_value = 0.0
        self.sampling_rate = 16000

    def prepare_feat_extract_dict(self) -> dict:
        return {
            "n_mels": self.feature_size,
            "sampling_rate": self.sampling_rate,
            "n_fft": 512,
            "hop_length": 128,
            "clip_seconds": 1.0,
            "padding_value": self.padding_value,
        }

    def prepare_inputs_for_common(self, equal_length: bool = False, numpify: bool = False):
        rng = np.random.default_rng(0)
        lengths = [self.max_seq_length] * self.batch_size if equal_length else range(
            self.min_seq_length, self.max_seq_length, self.seq_length_diff
        )
        inputs = [rng.random((length, self.feature_size)).astype(np.float32) for length in lengths]
        return inputs if numpify else [x.tolist() for x in inputs]


class HouseXFeatureExtractionTest(SequenceFeatureExtractionTestMixin, unittest.TestCase):
    feature_extraction_class = HouseXFeatureExtractor

    def setUp(self):
        self.feat_extract_tester = HouseXFeatureExtractorTester(self)

    def test_call_matches_model_inputs(self):
        """Our own addition to the mixin: raw audio in, the model's input names out."""
        fe = self.feature_extraction_class(**self.feat_extract_dict)
        out = fe([np.zeros(8000, np.float32), np.ones(16000, np.float32) * 0.1], sampling_rate=16000, return_tensors="pt")
        self.assertEqual(list(out.keys()), fe.model_input_names)
        self.assertEqual(tuple(out["input_features"].shape), (2, 3, 16, fe.num_frames))


def test_common_tests_match_installed_transformers():
    """The mixins come from the sdist of the installed transformers version (`make setup` records it)."""
    recorded = (TESTS_ROOT / "VERSION").read_text().strip()
    assert recorded == transformers.__version__, (
        f"{TESTS_ROOT} holds the tests of transformers {recorded}, installed is {transformers.__version__}: run `make setup`"
    )
    common = importlib.import_module("tests.test_modeling_common")
    assert Path(common.__file__).resolve().is_relative_to(TESTS_ROOT.resolve())
