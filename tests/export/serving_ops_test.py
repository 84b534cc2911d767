"""Exports use only ops that stock TF Serving 2.19 registers, and nothing that touches
files, the network or Python per request; anything else is refused before it is written.
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.python.framework import op_def_registry

from keras_bert_app.export import serving_ops
from keras_bert_app.export import (build_preprocessor, check_serving_ops,
                                   checked_export_dir, core_op_types,
                                   export_preprocessing, saved_model_op_types)
from keras_bert_app.export.tf_serving_ops import (DENIED_OPS, LOAD_TIME_OPS,
                                                  TF_TEXT_2_12_1_OPS)
from tests.helpers import SHAKESPEARE_VOCAB

_RAGGED = tf.RaggedTensorSpec([None, None], tf.int32, row_splits_dtype=tf.int64)
NOT_IN_2_12_1 = ("TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks",
                 "TFText>Utf8Binarize")


def save(module, path, **kwargs):
    tf.saved_model.save(module, str(path), **kwargs)
    return path


class _RoundRobin(tf.Module):
    @tf.function(input_signature=[_RAGGED] * 3)
    def __call__(self, a, b, c):
        return tf_text.RoundRobinTrimmer(max_seq_length=5).trim([a, b, c])


class _PyFunction(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return tf.py_function(lambda t: t * 2, [x], tf.float32)


class _AddOne(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return x + 1


@pytest.fixture(scope="module")
def preprocessing_export(tmp_path_factory):
    preprocessor = build_preprocessor(vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True,
                                      default_seq_length=16)
    return export_preprocessing(tmp_path_factory.mktemp("export") / "preprocessing",
                                preprocessor)


def test_the_core_op_listing_leaves_out_what_the_pipelines_hide():
    """The listing's interpreter and the pipelines leave out the same optional
    packages (none registers an op); a serving process has neither JAX package."""
    from pipelines import frameworks
    from tests.export.tf_only_check import NOT_IN_A_SERVING_PROCESS

    hidden = frameworks.HIDDEN + frameworks.HIDDEN_UNDER_TENSORFLOW_BACKEND
    assert sorted(serving_ops.OPTIONAL_IMPORTS) == sorted(hidden)
    assert set(NOT_IN_A_SERVING_PROCESS) == set(frameworks.HIDDEN_UNDER_TENSORFLOW_BACKEND)
    assert f"for name in {serving_ops.OPTIONAL_IMPORTS!r}:" in serving_ops._CORE_OPS_SCRIPT


def test_preprocessing_export_uses_only_core_ops_and_tf_text_2_12_1_ops(
        preprocessing_export):
    op_types = saved_model_op_types(preprocessing_export)
    used = set().union(*op_types.values())
    # bert_pack_inputs is traced for 3 segments: round-robin trimming is in the graph.
    assert "FastWordpieceTokenizeWithOffsets" in used
    assert used - TF_TEXT_2_12_1_OPS <= core_op_types()
    assert not used & set(DENIED_OPS)
    # Checkpoint I/O only in the saver's functions, which the check tells apart.
    saver = {place for place in op_types
             if "_traced_save_" in place or "_traced_restore_" in place}
    assert {place for place, ops in op_types.items() if ops & LOAD_TIME_OPS} == saver
    assert check_serving_ops(preprocessing_export) == ["FastWordpieceTokenizeWithOffsets"]


def test_round_robin_trimmer_is_refused_naming_the_op_and_its_function(tmp_path):
    path = save(_RoundRobin(), tmp_path / "model")
    functions = [place for place, ops in saved_model_op_types(path).items()
                 if "TFText>RoundRobinTrim" in ops]
    assert functions and all(f.startswith("__inference_") for f in functions)
    with pytest.raises(ValueError) as error:
        check_serving_ops(path)
    message = str(error.value)
    assert ("TFText>RoundRobinTrim is neither a TF core op nor a TF Text op of "
            "tensorflow-text 2.12.1") in message
    assert functions[0] in message and str(path) in message
    assert "\n" not in message  # pipelines print it as one line


def test_python_calls_are_refused_naming_the_op(tmp_path):
    path = save(_PyFunction(), tmp_path / "model")
    with pytest.raises(ValueError, match=r"EagerPyFunc calls Python \(in __inference_"):
        check_serving_ops(path)


def test_checkpoint_io_outside_the_saver_is_refused(tmp_path):
    class ReadsCheckpoint(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def __call__(self, prefix):
            return tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=["x"],
                                        shape_and_slices=[""], dtypes=[tf.float32])
    path = save(ReadsCheckpoint(), tmp_path / "model")
    with pytest.raises(ValueError, match="RestoreV2 does checkpoint/asset I/O outside"):
        check_serving_ops(path)


class _DecodesProto(tf.Module):
    def __init__(self, descriptor_source):
        super().__init__()
        self.descriptor_source = descriptor_source

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, data):
        return tf.io.decode_proto(data, "tensorflow.Example", ["features"], [tf.string],
                                  descriptor_source=self.descriptor_source).values[0]


def test_proto_ops_may_not_read_a_descriptor_file(tmp_path):
    path = save(_DecodesProto("/etc/descriptors.bin"), tmp_path / "file")
    with pytest.raises(ValueError, match="DecodeProtoV2 reads proto descriptors from "
                                         "'/etc/descriptors.bin' on every call"):
        check_serving_ops(path)
    check_serving_ops(save(_DecodesProto("local://"), tmp_path / "local"))


def test_a_table_read_from_an_asset_at_load_time_is_allowed(tmp_path):
    (tmp_path / "labels.txt").write_text("negative\npositive\n")

    class Labels(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                str(tmp_path / "labels.txt"), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, labels):
            return self.table.lookup(labels)
    module = Labels()
    path = save(module, tmp_path / "model", signatures=module.__call__)
    assert any("InitializeTableFromTextFileV2" in ops
               for ops in saved_model_op_types(path).values())
    assert check_serving_ops(path) == []


def test_a_refused_export_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match=r"export to .*export \(not written\) would not "
                                         r"load .*TFText>RoundRobinTrim"):
        with checked_export_dir(tmp_path / "export") as scratch:
            save(_RoundRobin(), scratch)
    assert list(tmp_path.iterdir()) == []


def test_an_export_replaces_a_savedmodel_but_not_other_directories(tmp_path):
    for _ in range(2):
        with checked_export_dir(tmp_path / "export") as scratch:
            save(_AddOne(), scratch)
    assert sorted(os.listdir(tmp_path)) == ["export"]
    assert tf.saved_model.load(str(tmp_path / "export"))(tf.constant([1.0])).numpy() == 2
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty directory without a saved_model.pb"):
        with checked_export_dir(tmp_path / "data") as scratch:
            save(_AddOne(), scratch)
    assert sorted(os.listdir(tmp_path / "data")) == ["keep.txt"]


def test_allowlist_matches_tf_text_2_12_1_and_lists_real_op_names():
    for name in NOT_IN_2_12_1:
        assert name not in TF_TEXT_2_12_1_OPS
    assert "FastWordpieceTokenizeWithOffsets" in TF_TEXT_2_12_1_OPS
    assert len(TF_TEXT_2_12_1_OPS) == 35
    # Allowlisted names are TF Text ops (registered here, where tensorflow_text is
    # imported, but not by plain tensorflow); denied and load-time ones are core ops.
    listed = set(TF_TEXT_2_12_1_OPS) | set(NOT_IN_2_12_1) | set(DENIED_OPS) | LOAD_TIME_OPS
    assert all(op_def_registry.get(name) is not None for name in listed)
    assert listed - core_op_types() == set(TF_TEXT_2_12_1_OPS) | set(NOT_IN_2_12_1)


def test_core_op_types_are_what_tensorflow_alone_registers():
    # Read through the C API's op list in a child process: pinned against the registry
    # of this process (which also holds tensorflow_text's ops).
    core = core_op_types()
    assert {"AddV2", "StatefulPartitionedCall", "SaveV2", "EagerPyFunc"} <= core
    assert all(op_def_registry.get(name) is not None for name in core)
    assert not {name for name in core if name.startswith("TFText>")}


def _fake_listing(monkeypatch, ops):
    """Makes the child process that lists core ops print `ops`; returns its calls."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "CORE_OPS=" + json.dumps(ops), "")

    monkeypatch.setattr(serving_ops.subprocess, "run", run)
    return calls


def test_the_core_op_list_is_kept_in_the_user_cache_for_this_tensorflow(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    listed = serving_ops.core_op_types.__wrapped__()  # the real child process
    cache_file = serving_ops._core_ops_cache_file()
    assert cache_file.startswith(str(tmp_path / "keras_bert_app" / "tf_core_ops"))
    with open(cache_file) as f:
        assert json.load(f) == {"tensorflow": tf.__version__, "core_ops": sorted(listed)}
    # A later export, in any process, reads it: no child process.
    calls = _fake_listing(monkeypatch, ["Never"])
    assert serving_ops.core_op_types.__wrapped__() == listed and not calls
    # Another TensorFlow installation has a file of its own.
    monkeypatch.setattr(tf, "__version__", tf.__version__ + ".other")
    assert serving_ops._core_ops_cache_file() != cache_file
    # The key reads TensorFlow's own list of plugin folders; without it, no cache.
    assert isinstance(tf._site_packages_dirs, list) and tf._site_packages_dirs
    monkeypatch.delattr(tf, "_site_packages_dirs")
    assert serving_ops._core_ops_cache_file() is None
    calls = _fake_listing(monkeypatch, sorted(serving_ops._SENTINEL_OPS))
    assert serving_ops.core_op_types.__wrapped__() == serving_ops._SENTINEL_OPS
    assert len(calls) == 1


@pytest.mark.parametrize("content", ["not json", "[]", '{"tensorflow": "0.0", '
                                     '"core_ops": ["AddV2"]}', "SAME_VERSION_NO_OPS"])
def test_a_damaged_or_foreign_cache_file_is_listed_again(tmp_path, monkeypatch, content):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_file = serving_ops._core_ops_cache_file()
    os.makedirs(os.path.dirname(cache_file))
    if content == "SAME_VERSION_NO_OPS":  # right version, but not a core op list
        content = json.dumps({"tensorflow": tf.__version__, "core_ops": ["MyOp"]})
    with open(cache_file, "w") as f:
        f.write(content)
    ops = sorted(serving_ops._SENTINEL_OPS | {"Listed"})
    calls = _fake_listing(monkeypatch, ops)
    assert serving_ops.core_op_types.__wrapped__() == frozenset(ops) and len(calls) == 1
    with open(cache_file) as f:
        assert json.load(f)["core_ops"] == ops  # replaced by the new listing


def test_an_unwritable_cache_still_gives_the_list(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # no folder can be made in it
    ops = sorted(serving_ops._SENTINEL_OPS)
    calls = _fake_listing(monkeypatch, ops)
    assert serving_ops.core_op_types.__wrapped__() == frozenset(ops)
    assert serving_ops.core_op_types.__wrapped__() == frozenset(ops) and len(calls) == 2


def test_missing_saved_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="saved_model.pb does not exist"):
        check_serving_ops(tmp_path)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
