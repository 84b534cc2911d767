"""A training run SIGKILLed at any moment — here the worst ones: while a checkpoint
file is half-written, and mid-interval — resumes with the same command, ends at the
requested step with the weights of an uninterrupted run (≤ 1e-5), trains at most one
checkpoint interval again and leaves no unreadable checkpoint.

CI size: one trial each (a kill during a checkpoint write of run_pretraining, a kill
mid-interval of run_classifier); `benchmarks/kill_trials.py` runs ≥ 20 of each
pipeline at random moments, checkpoint writes included.
"""

import os
import sys

import pytest

from keras_bert_app import names
from tests.reliability import faults

STEPS, SAVE = 40, 10


def uninterrupted(name, flags):
    child = faults.Child(name, flags)
    assert child.wait() == 0, child.output[-3000:]
    model_dir = next(f.split("=", 1)[1] for f in flags if f.startswith("--model_dir="))
    return faults.read_weights(os.path.join(model_dir, names.WEIGHTS_FILE))


@pytest.fixture(scope="module")
def pretraining(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining")
    workspace = faults.pretraining_workspace(str(root / "data"))
    reference = uninterrupted("run_pretraining", faults.pretraining_flags(
        workspace, root / "reference", STEPS, SAVE))
    return workspace, reference


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    workspace = faults.classifier_workspace(str(root / "data"))
    reference = uninterrupted("run_classifier", faults.classifier_flags(
        workspace, root / "reference", STEPS, SAVE))
    return workspace, reference


def assert_resumed_like_uninterrupted(trial):
    assert trial["killed"], "the run finished before the kill moment"
    assert trial["unreadable"] == {}
    assert trial["final_step"] == STEPS
    assert trial["lost"] <= SAVE, trial
    assert trial["max_abs_diff"] <= 1e-5, trial


def test_pretraining_killed_while_writing_a_checkpoint(pretraining, tmp_path):
    workspace, reference = pretraining
    model_dir = tmp_path / "run"
    flags = faults.pretraining_flags(workspace, model_dir, STEPS, SAVE)
    trial = faults.kill_trial(
        lambda: faults.Child("run_pretraining", flags), str(model_dir),
        lambda child: faults.while_checkpoint_is_written(str(model_dir / "checkpoints")),
        STEPS, SAVE, reference)
    # The kill caught a half-written file: it is not a checkpoint (resume ignores it).
    assert trial["partials"], trial
    assert f"steps {trial['resumed_at']} → {STEPS}" in trial["resume_output"]
    assert_resumed_like_uninterrupted(trial)


def test_classifier_killed_mid_interval_after_a_checkpoint(classifier, tmp_path):
    workspace, reference = classifier
    model_dir = tmp_path / "run"
    flags = faults.classifier_flags(workspace, model_dir, STEPS, SAVE)
    checkpoints = str(model_dir / "checkpoints")
    # Killed once the step-20 checkpoint is in and training goes on towards step 30.
    trial = faults.kill_trial(
        lambda: faults.Child("run_classifier", flags), str(model_dir),
        lambda child: faults.when_checkpoint_exists(checkpoints, 2 * SAVE),
        STEPS, SAVE, reference)
    assert trial["resumed_at"] == 2 * SAVE
    assert f"Resuming at step {2 * SAVE} of {STEPS}" in trial["resume_output"]
    assert_resumed_like_uninterrupted(trial)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
