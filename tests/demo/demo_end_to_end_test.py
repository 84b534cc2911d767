"""`python -m pipelines.demo --quick`, as CI and a newcomer run it: every step for real
on the shipped data and the installed MiniLM wheel, killed in the middle and run again
(it picks up where it stopped), run a third time (it reuses everything), and refused
in the same folder with other sizes."""

import json
import os
import signal
import sys
import time

import pytest

from keras_bert_app import names
from keras_bert_app.demo import runner, settings
from tests.helpers import assert_start_up_logged, require_minilm, run_pipeline

USER_SENTENCE = "what a waste of a great cast, honestly"  # a comma stays in it


def wait_for(path, process, seconds=600):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        assert process.poll() is None, "the demo ended before " + path + ":\n" + \
            process.stdout.read()[-3000:]
        assert time.time() < deadline, f"no {path} after {seconds} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    require_minilm()
    out = tmp_path_factory.mktemp("demo") / "bert_demo_quick"
    flags = ("--quick", f"--output_dir={out}", f"--sentences={USER_SENTENCE}")
    # 1. Killed (SIGKILL) once fine-tuning has written its first checkpoint.
    first = run_pipeline("demo", *flags, background=True)
    wait_for(out / "sst2_classifier" / "checkpoints" / "ckpt-40.weights.h5", first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_output = first.stdout.read()
    # 2. The same command again: continues; 3. and once more: reuses everything.
    resumed = run_pipeline("demo", *flags)
    began = time.time()
    reused = run_pipeline("demo", *flags)
    return {"out": out, "killed": killed_output, "resumed": resumed.stdout,
            "reused": reused.stdout, "reused_seconds": time.time() - began}


def state_of(out):
    with open(out / runner.STATE_FILE) as f:
        return json.load(f)


def test_the_demo_fine_tunes_a_classifier_that_beats_chance_on_held_out_rows(demo_runs):
    out = demo_runs["out"]
    tuned = state_of(out)["done"]["fine_tuning"]
    with open(out / "sst2" / "dev.tsv") as f:
        labels = [line.rstrip("\n").rpartition("\t")[2] for line in f][1:]
    assert tuned["train_rows"] == 1000 and tuned["eval_rows"] == len(labels) > 250
    majority = max(labels.count("positive"), labels.count("negative")) / len(labels)
    assert tuned["accuracy"] > majority + 0.05, (tuned, majority)
    with open(demo_runs["out"] / "sst2_classifier" / names.TASK_CONFIG_FILE) as f:
        assert json.load(f)["label_names"] == ["negative", "positive"]


def test_the_exported_model_answers_in_a_tensorflow_only_process(demo_runs):
    out = demo_runs["out"]
    version = out / "saved_models" / "sst2" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    served = state_of(out)["done"]["serving"]
    assert served["sentences"] == list(settings.DEFAULT_SENTENCES) + [USER_SENTENCE]
    for label, probabilities in zip(served["labels"], served["probabilities"]):
        assert label == settings.SST2_LABEL_NAMES[probabilities.index(max(probabilities))]
    # The clearest two of the built-in sentences, read with SST-2's label meanings.
    assert served["labels"][:2] == ["positive", "negative"], served


def test_a_killed_demo_resumes_fine_tuning_from_its_checkpoint(demo_runs):
    assert "[5/8]" in demo_runs["killed"] and "Summary" not in demo_runs["killed"]
    # Pre-training's start-up line keeps the demo's vocabulary and data steps apart
    # from the imports.
    first = [line for line in demo_runs["killed"].splitlines()
             if line.startswith("Start-up:")][0]
    assert "after launch: imports " in first and ", before the run " in first, first
    resumed = demo_runs["resumed"]
    assert resumed.count("already done: reusing it") == 4  # steps 1-4
    assert "Resuming at step 40" in resumed
    assert_start_up_logged(resumed)  # fine-tuning's, the only run of this process
    assert "━━ Summary" in resumed and USER_SENTENCE in resumed


def test_a_finished_demo_run_again_reuses_every_step(demo_runs):
    reused = demo_runs["reused"]
    assert reused.count("already done: reusing it") == 6
    assert "Resuming" not in reused and "New best" not in reused
    assert "━━ Summary" in reused
    assert reused.count(USER_SENTENCE) >= 1  # the served model answered again


def test_the_summary_says_where_things_are_and_how_to_look_further(demo_runs):
    out = demo_runs["out"]
    text = (out / "summary.txt").read_text()
    for expected in ("tensorboard --logdir", "tensorflow_model_server",
                     "saved_model_cli", "localhost:8501/v1/models/sst2:predict",
                     str(out / "saved_models" / "sst2")):
        assert expected in text
    pictures = state_of(out)["done"]["pictures"]["pictures"]
    assert {os.path.basename(p) for p in pictures} >= {"training_curves.png",
                                                       "confusion_matrix.png"}
    for picture in pictures:
        with open(out / picture, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_saved_model_cli_command_of_the_summary_runs_as_printed(demo_runs):
    """The command uses TensorFlow's saved_model_cli module (not public API): run
    exactly what the summary prints, so a TensorFlow upgrade that moves it fails here."""
    import subprocess

    lines = (demo_runs["out"] / "summary.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "saved_model_cli" in line)
    command = lines[start].rstrip("\\") + lines[start + 1]
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Result for output key label:" in done.stdout
    assert "b'positive'" in done.stdout or "b'negative'" in done.stdout


def test_the_same_folder_with_other_sizes_is_refused_in_one_line(demo_runs):
    result = run_pipeline("demo", f"--output_dir={demo_runs['out']}", check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("pipelines.demo: error:")]
    assert len(errors) == 1 and "other settings" in errors[0], result.stderr[-2000:]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
