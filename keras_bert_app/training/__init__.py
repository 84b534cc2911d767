"""Training: optimizers, distribution, checkpoints, callbacks, the pre-training and
classifier runs (loaded on first use, with their TensorFlow input pipelines)."""

import importlib

from keras_bert_app.training.checkpointing import CheckpointManager
from keras_bert_app.training.compilation import enable_compilation_cache
from keras_bert_app.training.distribution import (STRATEGIES, Distribution,
                                                  create_distribution, split_host_cpu)
from keras_bert_app.training.keras_workarounds import prepare_for_distribution
from keras_bert_app.training.optimizers import WarmupLinearDecay, create_optimizer
from keras_bert_app.training.startup import mark_imports_done

_LAZY = {"run_pretraining": "pretraining", "PretrainingRunConfig": "pretraining",
         "run_classifier": "classification", "ClassifierRunConfig": "classification",
         "run_squad": "squad", "SquadRunConfig": "squad"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_bert_app.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"keras_bert_app.training.{_LAZY[name]}"), name)
