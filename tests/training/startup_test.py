"""What a run logs about the time before its first step — its phases, how its step
compiled, how many traces and programs — and the persistent compilation cache that
lets a second run with the same shapes skip XLA compilation."""

import os
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_bert_app.training import startup
from keras_bert_app.training.compilation import (CPU_XLA_MIN_HIDDEN, CPU_XLA_MIN_STEPS,
                                                 TraceCounter, auto_jit_compile,
                                                 cached_programs, cpu_xla_pays,
                                                 default_cache_dir,
                                                 enable_compilation_cache)
from tests.helpers import run_pipeline, write_tiny_pretrained_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Joined, never replaced: under Bazel PYTHONPATH is how the packages are found.
PYTHONPATH = os.pathsep.join(p for p in [REPO, os.environ.get("PYTHONPATH", "")] if p)


def test_the_process_start_is_before_now_and_the_first_run_counts_imports(monkeypatch):
    started = startup.process_start_time()
    assert started <= time.time()
    monkeypatch.setattr(startup, "_first_run", True)
    log = startup.begin()
    assert log.phases[0][0] == "imports" and log.phases[0][1] >= 0
    log.mark("data")
    log.mark("model")
    line = log.describe("tracing, XLA off")
    assert line.startswith("Start-up: first step ")
    assert "after launch: imports " in line and ", data " in line and ", model " in line
    assert line.endswith("(tracing, XLA off)")
    # A second run in the same process has no import phase and says so.
    second = startup.begin()
    assert second.phases == []
    second.mark("data")
    assert "after the run's start: data " in second.describe()


def test_work_between_the_imports_and_the_run_is_not_counted_as_imports(monkeypatch):
    """A program that marks the end of its imports (the demo, before its first step)
    gets its own work before the run as a phase of its own; the phases add up."""
    now = time.time()
    monkeypatch.setattr(startup, "_first_run", True)
    monkeypatch.setattr(startup, "process_start_time", lambda: now - 5.0)
    monkeypatch.setattr(startup, "_imports_done", now - 2.0)
    startup.mark_imports_done()  # the first mark counts
    log = startup.begin()
    (imports, imported), (before, waited) = log.phases
    assert (imports, before) == ("imports", "before the run")
    assert imported == pytest.approx(3.0, abs=0.05)
    assert waited == pytest.approx(2.0, abs=0.05)
    log.mark("data")
    line = log.describe()
    assert "after launch: imports 3.0 s, before the run 2.0 s, data 0.0 s" in line
    assert float(line.split("first step ")[1].split(" s")[0]) == pytest.approx(5.0, abs=0.1)
    # Without a mark (a pipeline: flags, frameworks, library), or a moment after it,
    # everything before the run is imports.
    for mark in (None, time.time() - 0.01):
        monkeypatch.setattr(startup, "_first_run", True)
        monkeypatch.setattr(startup, "_imports_done", mark)
        (imports, imported), = startup.begin().phases
        assert imports == "imports" and imported == pytest.approx(5.0, abs=0.1)


def tiny_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    return model


def test_first_step_line_is_printed_once(capsys, monkeypatch):
    monkeypatch.setattr(startup, "_first_run", False)
    startup.begin()
    model = tiny_model()
    log = startup.FirstStepLog("tracing, XLA off")
    model.fit(np.zeros((8, 4)), np.zeros((8, 1)), batch_size=2, verbose=0, callbacks=[log])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Start-up:")]
    assert len(lines) == 1 and "first step" in lines[0]


def test_trace_counter_counts_keras_traces():
    # Pins what the count relies on: Keras calls `model.train_step` (looked up on the
    # instance) once per trace, and a shape seen before does not trace again.
    model = tiny_model()
    counter = TraceCounter(model)
    model.fit(np.zeros((8, 4)), np.zeros((8, 1)), batch_size=4, verbose=0)
    assert counter.counts["train"] == 1
    model.fit(np.zeros((8, 4)), np.zeros((8, 1)), batch_size=4, verbose=0)
    assert counter.counts["train"] == 1
    model.predict(np.zeros((3, 4)), verbose=0)
    assert counter.counts["predict"] >= 1
    assert "train step 1x" in counter.describe()
    with pytest.raises(ValueError, match="already built"):
        TraceCounter(model)


def test_xla_is_chosen_on_a_cpu_only_where_it_was_measured_to_pay():
    assert cpu_xla_pays(CPU_XLA_MIN_STEPS, CPU_XLA_MIN_HIDDEN)[0]
    assert not cpu_xla_pays(CPU_XLA_MIN_STEPS - 1, CPU_XLA_MIN_HIDDEN)[0]
    assert not cpu_xla_pays(10_000, CPU_XLA_MIN_HIDDEN // 2)[0]  # not measured: Keras' rule
    on = auto_jit_compile("tensorflow", ["CPU"], None, cpu_xla_pays(1000, 512))
    assert on.jit_compile and "1000 steps" in on.describe()
    off = auto_jit_compile("tensorflow", ["CPU"], None, cpu_xla_pays(20, 512))
    assert not off.jit_compile and "from 100 steps" in off.describe()
    # Fine-tuning passes nothing: Keras' CPU rule; accelerators keep XLA on.
    assert not auto_jit_compile("tensorflow", ["CPU"], None).jit_compile
    assert auto_jit_compile("tensorflow", ["CPU", "GPU"], None, cpu_xla_pays(1, 1)).jit_compile


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == os.path.join(str(tmp_path), "keras_bert_app", "xla")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache",
                                               "keras_bert_app", "xla")


PROBE = textwrap.dedent("""
    import os, sys
    from keras_bert_app.training.compilation import (_tensorflow_started,
                                                     cached_programs,
                                                     enable_compilation_cache)
    import tensorflow as tf
    if sys.argv[2] == "after_an_op":
        tf.constant(1.0) + 1.0
    print("started", _tensorflow_started())
    folder = enable_compilation_cache(sys.argv[1])
    f = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)), jit_compile=True)
    f(tf.ones((4, 4)))
    print("folder", folder, cached_programs(folder))
""")


@pytest.mark.parametrize("when", ["before_any_op", "after_an_op"])
def test_the_cache_holds_programs_only_when_set_before_tensorflow_starts(tmp_path, when):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, KERAS_BACKEND="tensorflow")
    env.pop("TF_XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), when], env=env,
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines()
                 if line.startswith(("started", "folder")))
    if when == "before_any_op":
        assert lines["started"] == "False"
        folder, count = lines["folder"].rsplit(" ", 1)
        assert folder.startswith(str(tmp_path)) and int(count) == 1
    else:  # TensorFlow already read its flags: refused, not silently ignored
        assert lines["started"] == "True"
        assert lines["folder"] == "None 0"


def test_an_unwritable_cache_folder_means_no_cache_not_a_failed_step(tmp_path, capsys):
    # TensorFlow fails the training step when it cannot write a program (Bazel's
    # sandbox mounts ~/.cache read-only): such a folder is refused up front. A path
    # under a regular file is unwritable even for root.
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert enable_compilation_cache(str(blocker / "cache")) is None
    assert "is not writable" in capsys.readouterr().out


def test_a_second_run_loads_its_programs_from_the_cache(tmp_path):
    """Two XLA runs of `run_classifier` into new model directories: the first
    compiles its programs into the cache, the second compiles none; both logs say
    where the time to their first step went."""
    model = write_tiny_pretrained_dir(str(tmp_path / "tiny"))
    train = tmp_path / "train.tsv"
    rows = [f"{'to be or not to be ' * (1 + i % 3)}\t{i % 2}" for i in range(16)]
    train.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    cache = str(tmp_path / "cache")
    logs = []
    for run in ("first", "second"):
        result = run_pipeline(
            "run_classifier", f"--train_file={train}", "--text_a_column=sentence",
            "--label_column=label", f"--init_model_dir={model}",
            f"--model_dir={tmp_path / run}", "--do_train", "--num_train_steps=2",
            "--train_batch_size=4", "--max_seq_length=32", "--jit_compile",
            f"--compilation_cache_dir={cache}")
        logs.append(result.stdout)
    for log in logs:
        assert "XLA on: jit_compile=True given; compilation cache " in log
        assert "Start-up: first step " in log and ", first step " in log
    first = [l for l in logs[0].splitlines() if l.startswith("Compilation:")]
    second = [l for l in logs[1].splitlines() if l.startswith("Compilation:")]
    assert len(first) == len(second) == 1
    assert "0 programs compiled" not in first[0]
    assert "0 programs compiled into the cache" in second[0]
    folder = os.path.join(cache, os.listdir(cache)[0])
    assert cached_programs(folder) >= 1


FAST_HELP = ("build_vocab", "convert_checkpoint", "create_pretraining_data",
             "create_pretraining_data_beam", "demo", "export_savedmodel",
             "extract_features", "make_multiple_choice_data", "plot_logs",
             "run_classifier", "run_multiple_choice", "run_ner", "run_pretraining",
             "run_squad")
HELP_PROBE = textwrap.dedent("""
    import runpy, sys
    name = sys.argv[1]
    sys.argv = [name, "--help"]
    try:
        runpy.run_module("pipelines." + name, run_name="__main__")
    except SystemExit:  # absl's --help exits (with status 1)
        pass
    print("tensorflow imported:", "tensorflow" in sys.modules)
""")


@pytest.mark.parametrize("name", FAST_HELP)
def test_help_answers_without_importing_tensorflow(name):
    out = subprocess.run([sys.executable, "-c", HELP_PROBE, name], cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=PYTHONPATH), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tensorflow imported: False" in out.stdout
    assert "--" in out.stdout  # the flags were listed


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
