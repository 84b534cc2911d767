"""`run_demo`'s bookkeeping, with the steps replaced by fakes: which steps run, which
are reused, what a changed setting or a deleted result does. (The real steps run in
tests/demo/demo_end_to_end_test.py.)"""

import json
import os
import sys

import pytest

from keras_bert_app.demo import DemoConfig, runner, steps


@pytest.fixture
def fake_steps(monkeypatch):
    """Every step records its call and writes its OUTPUTS files; returns the calls."""
    calls = []

    def fake(key):
        def run(config, **kwargs):
            calls.append(key)
            for relative in steps.OUTPUTS[key]:
                path = config.path(relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(key)
            return {"made_by": key, "version_dir": config.path("v1")}
        return run

    monkeypatch.setattr(runner, "_RUNNERS", {k: fake(k) for k in runner._RUNNERS})
    monkeypatch.setattr(steps, "export", fake("export"))
    monkeypatch.setattr(steps, "serve", lambda config, version_dir: calls.append(
        "serving") or {"version_dir": version_dir})
    monkeypatch.setattr(runner.summary, "summary", lambda config, state: "summary\n")
    # The real inputs are checked up front; the fakes do not need them.
    monkeypatch.setattr(DemoConfig, "minilm_source", lambda self: "minilm")
    return calls


def test_steps_run_in_order_and_are_remembered(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    state = runner.run_demo(config)
    keys = [key for key, _, _ in runner.STEPS]
    assert fake_steps == keys
    with open(config.path(runner.STATE_FILE)) as f:
        saved = json.load(f)
    assert list(saved["done"]) == keys and saved["done"] == state["done"]
    assert all("seconds" in result for result in saved["done"].values())


def test_a_second_run_reuses_finished_steps_and_runs_serving_and_pictures_again(
        tmp_path, fake_steps, capsys):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == ["serving", "pictures"]
    assert capsys.readouterr().out.count("already done: reusing it") == 6


def test_an_interrupted_run_continues_at_the_step_it_stopped_in(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    # As after a kill during fine-tuning: the state knows the steps before it only.
    with open(config.path(runner.STATE_FILE)) as f:
        state = json.load(f)
    for key in ("fine_tuning", "export", "serving", "pictures"):
        del state["done"][key]
    with open(config.path(runner.STATE_FILE), "w") as f:
        json.dump(state, f)
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == ["fine_tuning", "export", "serving", "pictures"]


def test_a_deleted_result_is_made_again_with_what_depends_on_it(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    os.remove(config.path(steps.OUTPUTS["pretraining_data"][0]))
    fake_steps.clear()
    runner.run_demo(config)
    # The data feeds pre-training; the classifier branch does not depend on it.
    assert fake_steps == ["pretraining_data", "pretraining", "serving", "pictures"]


def test_a_folder_made_with_other_sizes_is_refused(tmp_path, fake_steps):
    runner.run_demo(DemoConfig(output_dir=str(tmp_path / "demo"), quick=True))
    fake_steps.clear()
    with pytest.raises(ValueError, match="other settings.*--quick is off now"):
        runner.run_demo(DemoConfig(output_dir=str(tmp_path / "demo"), quick=False))
    assert fake_steps == []


def test_a_corrupt_state_file_is_an_error_naming_it(tmp_path, fake_steps):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / runner.STATE_FILE).write_text('{"sizes": ')
    with pytest.raises(ValueError, match=f"{runner.STATE_FILE} is not valid JSON"):
        runner.run_demo(DemoConfig(output_dir=str(folder), quick=True))
    assert fake_steps == []


def test_missing_shipped_data_stops_before_the_first_step(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True,
                        data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="shakespeare.txt is missing"):
        runner.run_demo(config)
    assert fake_steps == []


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
