"""The pipelines' flag choices and defaults that mirror the library's constants are
written out in the pipelines (importing the library imports TensorFlow, and `--help`
must answer without it: tests/training/startup_test.py); they must stay equal to the
library's. Read from the sources, since two pipelines defining their flags in one
process would clash."""

import ast
import os
import sys

import pytest

from keras_bert_app import names
from keras_bert_app.checkpoints import SOURCE_FORMATS
from keras_bert_app.feature_extraction import DEFAULT_LAYERS, POOLING_MODES
from keras_bert_app.training.distribution import STRATEGIES
from keras_bert_app.training.optimizers import OPTIMIZERS
from keras_bert_app.training.runner import PRECISIONS

PIPELINES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "pipelines")


def parsed(module):
    with open(os.path.join(PIPELINES, module + ".py")) as f:
        return ast.parse(f.read())


def constants(module):
    """The module-level names a pipeline assigns literals to (`A, B = 1, 2` too)."""
    found = {}
    for node in parsed(module).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                pairs = [(target, node.value)]
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts))
            else:
                continue
            for name, value in pairs:
                try:
                    found[name.id] = ast.literal_eval(value)
                except ValueError:
                    pass  # not a literal
    return found


def enum_choices(module, flag):
    """The choices of `flags.DEFINE_enum(flag, default, choices, ...)` in `module`."""
    for node in ast.walk(parsed(module)):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "DEFINE_enum"
                and ast.literal_eval(node.args[0]) == flag):
            return ast.literal_eval(node.args[2])
    raise AssertionError(f"pipelines/{module}.py defines no enum flag {flag!r}")


def test_convert_checkpoint_offers_the_library_s_source_formats():
    assert constants("convert_checkpoint")["SOURCE_FORMATS"] == SOURCE_FORMATS


@pytest.mark.parametrize("module", ["export_savedmodel", "extract_features"])
def test_the_pooling_modes_are_the_library_s(module):
    assert constants(module)["POOLING_MODES"] == names.POOLING_MODES == POOLING_MODES


def test_the_embedder_export_pools_by_the_mean_by_default():
    assert constants("export_savedmodel")["MEAN_POOLING"] == names.MEAN_POOLING


def test_extract_features_writes_the_library_s_default_layers():
    assert constants("extract_features")["DEFAULT_LAYERS"] == DEFAULT_LAYERS


@pytest.mark.parametrize("flag, library", [("optimizer", OPTIMIZERS),
                                           ("distribution_strategy", STRATEGIES),
                                           ("mixed_precision", PRECISIONS)])
def test_the_training_flags_offer_what_the_library_accepts(flag, library):
    assert tuple(enum_choices("training_flags", flag)) == tuple(library)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
