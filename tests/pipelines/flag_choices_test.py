"""Every enum flag of the pipelines offers exactly what the library accepts. The
pipelines write the choices out (importing the library imports TensorFlow, and
`--help` must answer without it: tests/training/startup_test.py), so they are
compared here with the library's constants, as each `flags.DEFINE_enum` call receives
them. Read from the sources, since two pipelines defining their flags in one process
would clash."""

import ast
import glob
import os
import sys

import pytest

from keras_bert_app import names
from keras_bert_app.checkpoints import SOURCE_FORMATS
from keras_bert_app.data.classification_data import FILE_FORMATS
from keras_bert_app.data.multiple_choice_data import DISTRACTORS
from keras_bert_app.feature_extraction import DEFAULT_LAYERS, POOLING_MODES
from keras_bert_app.text.packing import TRUNCATION_STRATEGIES
from keras_bert_app.training.distribution import STRATEGIES
from keras_bert_app.training.optimizers import OPTIMIZERS
from keras_bert_app.training.pretraining import INPUT_FORMATS
from keras_bert_app.training.runner import PRECISIONS

PIPELINES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "pipelines")
# (pipeline, flag): the library's choices. Every DEFINE_enum of pipelines/ is here
# but export_savedmodel's export_type (the pipeline's own list of what it exports).
LIBRARY_CHOICES = {
    ("convert_checkpoint", "source_format"): SOURCE_FORMATS,
    ("export_savedmodel", "truncation"): TRUNCATION_STRATEGIES,
    ("export_savedmodel", "pooling"): names.POOLING_MODES,
    ("extract_features", "pooling"): POOLING_MODES,
    ("make_multiple_choice_data", "distractors"): DISTRACTORS,
    ("pretraining_data_flags", "sentence_prediction"): names.SENTENCE_PREDICTION_MODES,
    ("run_classifier", "file_format"): FILE_FORMATS,
    ("run_pretraining", "input_format"): INPUT_FORMATS,
    ("run_pretraining", "sentence_prediction"): names.SENTENCE_PREDICTION_MODES,
    ("training_flags", "optimizer"): OPTIMIZERS,
    ("training_flags", "distribution_strategy"): STRATEGIES,
    ("training_flags", "mixed_precision"): PRECISIONS,
}
OWN_CHOICES = {("export_savedmodel", "export_type")}


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


def value(node, known, where):
    """A literal, a module constant, or `list(...)`/`tuple(...)` of one."""
    if isinstance(node, ast.Name) and node.id in known:
        return known[node.id]
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("list", "tuple"):
        return tuple(value(node.args[0], known, where))
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(value(element, known, where) for element in node.elts)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AssertionError(f"{where}: {ast.unparse(node)} is neither a literal nor a "
                             "literal constant of the pipeline: write it out") from None


def enum_flags(module):
    """`{flag: (default, choices)}` of every `DEFINE_enum` call in `module`
    (`flags.DEFINE_enum` or a bare `DEFINE_enum`, arguments by position or name)."""
    known, found = constants(module), {}
    for node in ast.walk(parsed(module)):
        func = node.func if isinstance(node, ast.Call) else None
        if getattr(func, "attr", getattr(func, "id", None)) != "DEFINE_enum":
            continue
        arguments = dict(zip(("name", "default", "enum_values"), node.args))
        arguments.update((k.arg, k.value) for k in node.keywords)
        where = f"pipelines/{module}.py:{node.lineno}"
        name = value(arguments["name"], known, where)
        found[name] = (value(arguments["default"], known, where),
                       value(arguments["enum_values"], known, where))
    return found


def test_every_enum_flag_is_compared_with_the_library():
    defined = {(os.path.basename(path)[:-3], flag)
               for path in glob.glob(os.path.join(PIPELINES, "*.py"))
               for flag in enum_flags(os.path.basename(path)[:-3])}
    assert defined == set(LIBRARY_CHOICES) | OWN_CHOICES


@pytest.mark.parametrize("module, flag", sorted(LIBRARY_CHOICES))
def test_the_flag_offers_what_the_library_accepts(module, flag):
    default, choices = enum_flags(module)[flag]
    assert choices == tuple(LIBRARY_CHOICES[module, flag])
    assert default is None or default in choices


def test_the_embedder_export_pools_by_the_mean_by_default():
    assert enum_flags("export_savedmodel")["pooling"][0] == names.MEAN_POOLING


def test_extract_features_writes_the_library_s_default_layers():
    assert constants("extract_features")["DEFAULT_LAYERS"] == DEFAULT_LAYERS


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
