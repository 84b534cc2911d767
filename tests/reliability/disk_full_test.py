"""A full disk while a checkpoint or an export is written: the previous checkpoint
stays intact and is the one a resume picks, no half-written SavedModel version
appears for TF Serving to load, and the user is told in one line what happened.

The full disk is a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): a write past it
fails with EFBIG, as one on a full disk fails with ENOSPC; no root, no tmpfs.
"""

import os
import sys

import pytest

from keras_bert_app import names
from tests.reliability import faults

STEPS, SAVE = 40, 10



def is_one_line_error(child, pipeline, path):
    """Status 2, no traceback, and a `pipelines.<name>: error:` line naming `path`."""
    lines = [line for line in child.lines if f"pipelines.{pipeline}: error:" in line]
    return (child.process.returncode == 2 and "Traceback" not in child.output
            and len(lines) == 1 and path in lines[0])


@pytest.fixture(scope="module")
def checkpoint_on_full_disk(tmp_path_factory):
    """A run killed after its step-10 checkpoint, resumed on a disk too small for the
    next one."""
    root = tmp_path_factory.mktemp("full_disk")
    workspace = faults.pretraining_workspace(str(root / "data"))
    model_dir = root / "run"
    flags = faults.pretraining_flags(workspace, model_dir, STEPS, SAVE)
    checkpoints = str(model_dir / "checkpoints")
    first = faults.Child("run_pretraining", flags)
    assert first.kill_when(faults.when_checkpoint_exists(checkpoints, SAVE)), first.output
    assert faults.checkpoint_steps(checkpoints) == [SAVE]
    before = faults.read_weights(os.path.join(checkpoints, f"ckpt-{SAVE}.weights.h5"))
    size = os.path.getsize(os.path.join(checkpoints, f"ckpt-{SAVE}.weights.h5"))
    # Room for the logs and settings files (a few KB), not for a checkpoint.
    full = faults.Child("run_pretraining", flags, max_file_bytes=size // 2)
    full.wait()
    return dict(flags=flags, model_dir=model_dir, checkpoints=checkpoints, before=before,
                child=full, partials=faults.partial_checkpoints(checkpoints))


def test_a_failed_checkpoint_write_leaves_the_previous_one_to_resume_from(
        checkpoint_on_full_disk):
    run = checkpoint_on_full_disk
    assert run["child"].process.returncode != 0, run["child"].output[-3000:]
    assert "steps 10 → 40" in run["child"].output  # it resumed, then failed to save
    checkpoints = run["checkpoints"]
    assert faults.checkpoint_steps(checkpoints) == [SAVE]
    assert faults.unreadable_checkpoints(checkpoints) == {}
    after = faults.read_weights(os.path.join(checkpoints, f"ckpt-{SAVE}.weights.h5"))
    assert faults.max_abs_diff(run["before"], after) == 0.0
    assert not os.path.exists(run["model_dir"] / names.WEIGHTS_FILE)
    # With space again, the same command resumes from that checkpoint and finishes.
    again = faults.Child("run_pretraining", run["flags"])
    assert again.wait() == 0, again.output[-3000:]
    assert f"steps {SAVE} → {STEPS}" in again.output
    assert faults.checkpoint_steps(checkpoints)[-1] == STEPS
    assert faults.unreadable_checkpoints(checkpoints) == {}


def test_a_failed_checkpoint_write_is_one_line_naming_the_file(checkpoint_on_full_disk):
    run = checkpoint_on_full_disk
    assert is_one_line_error(run["child"], "run_pretraining", run["checkpoints"]), \
        run["child"].output[-3000:]


def test_a_failed_checkpoint_write_frees_its_partial_file(checkpoint_on_full_disk):
    assert checkpoint_on_full_disk["partials"] == []  # as the failed run left them


@pytest.fixture(scope="module")
def export_on_full_disk(tmp_path_factory):
    """Version 1 exported, then an export too large for the disk."""
    import keras

    from keras_bert_app.config import BertConfig
    from keras_bert_app.model_dir import save_classifier_dir
    from keras_bert_app.models import BertClassifier, BertEncoder
    from keras_bert_app.task_config import TaskConfig
    from keras_bert_app.text.text_config import TextConfig
    from tests.helpers import SHAKESPEARE_VOCAB

    root = tmp_path_factory.mktemp("full_disk_export")
    keras.utils.set_random_seed(0)
    classifier = BertClassifier(BertEncoder(BertConfig(**faults.TINY_BERT)), num_classes=2)
    model_dir = str(root / "classifier")
    save_classifier_dir(model_dir, classifier, SHAKESPEARE_VOCAB,
                        TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                        TaskConfig.for_classifier(classifier, ["neg", "pos"], 16,
                                                  [names.TEXT_A]))
    export_base = root / "exports"
    flags = ["--export_type=classifier", f"--init_model_dir={model_dir}",
             f"--export_path={export_base}"]
    first = faults.Child("export_savedmodel", flags)
    assert first.wait() == 0, first.output[-3000:]
    before = sorted(os.listdir(export_base / "1"))
    size = os.path.getsize(os.path.join(model_dir, names.WEIGHTS_FILE))
    full = faults.Child("export_savedmodel", flags, max_file_bytes=size // 4)
    full.wait()
    return dict(export_base=export_base, before=before, child=full)


def test_a_failed_export_leaves_no_version_and_the_previous_one_intact(
        export_on_full_disk):
    run = export_on_full_disk
    assert run["child"].process.returncode != 0, run["child"].output[-3000:]
    # TF Serving serves the highest integer-named directory: still version 1, whole;
    # the scratch directory the export was written in (`.2.writing-…`) is gone too.
    assert sorted(os.listdir(run["export_base"])) == ["1"]
    assert sorted(os.listdir(run["export_base"] / "1")) == run["before"]


def test_a_failed_export_is_one_line_naming_the_export(export_on_full_disk):
    run = export_on_full_disk
    assert is_one_line_error(run["child"], "export_savedmodel", str(run["export_base"])), \
        run["child"].output[-3000:]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
