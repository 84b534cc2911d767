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
    """Every step records its call (with `resume` for export) and writes the files
    `steps.outputs` names; returns the calls."""
    calls = []

    def fake(key):
        def run(config, **kwargs):
            calls.append((key, kwargs["resume"]) if "resume" in kwargs else key)
            result = {"version_dir": "saved_models/sst2/1"} if key == "export" else {}
            for relative in steps.outputs(key, result):
                path = config.path(relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(key)
            return result
        return run

    monkeypatch.setattr(runner, "_RUNNERS", {k: fake(k) for k in runner._RUNNERS})
    monkeypatch.setattr(steps, "export", fake("export"))
    monkeypatch.setattr(steps, "serve", lambda config, version_dir: calls.append(
        "serving") or {"version_dir": version_dir})
    monkeypatch.setattr(runner.summary, "summary", lambda config, state: "summary\n")
    # The real inputs are checked up front; the fakes do not need them.
    monkeypatch.setattr(DemoConfig, "minilm_source", lambda self: "minilm")
    return calls


ALL = ["vocabulary", "pretraining_data", "pretraining", "import", "fine_tuning",
       ("export", False), "serving", "pictures"]


def read_state(config):
    with open(config.path(runner.STATE_FILE)) as f:
        return json.load(f)


def write_state(config, state):
    with open(config.path(runner.STATE_FILE), "w") as f:
        json.dump(state, f)


def test_steps_run_in_order_and_are_remembered(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    state = runner.run_demo(config)
    assert fake_steps == ALL
    saved = read_state(config)
    assert list(saved["done"]) == [key for key, _, _ in runner.STEPS]
    assert saved["done"] == state["done"]
    assert all("seconds" in result for result in saved["done"].values())
    # Each records the run of every step it read.
    assert saved["done"]["export"]["inputs"] == {
        "fine_tuning": saved["done"]["fine_tuning"]["run_id"]}


def test_a_second_run_reuses_finished_steps_and_runs_serving_and_pictures_again(
        tmp_path, fake_steps, capsys):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == ["serving", "pictures"]
    assert capsys.readouterr().out.count("already done: reusing it") == 6


def test_the_state_does_not_depend_on_the_working_directory(tmp_path, fake_steps,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner.run_demo(DemoConfig(output_dir="demo", quick=True))
    monkeypatch.chdir(tmp_path / "demo")
    fake_steps.clear()
    runner.run_demo(DemoConfig(output_dir=str(tmp_path / "demo"), quick=True))
    assert fake_steps == ["serving", "pictures"]


def test_an_interrupted_run_continues_at_the_step_it_stopped_in(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    # As after a kill during fine-tuning: started from the same import, not finished.
    state = read_state(config)
    for key in ("fine_tuning", "export", "serving", "pictures"):
        del state["done"][key]
    for key in ("export", "serving", "pictures"):
        del state["started"][key]
    write_state(config, state)
    os.makedirs(config.path(steps.CLASSIFIER, "checkpoints"))
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == ["fine_tuning", ("export", False), "serving", "pictures"]
    # Resumed: its folder (with the checkpoints) was kept.
    assert os.path.isdir(config.path(steps.CLASSIFIER, "checkpoints"))


def test_an_export_interrupted_after_writing_its_version_reuses_it(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    state = read_state(config)
    for key in ("export", "serving", "pictures"):
        del state["done"][key]
    write_state(config, state)
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == [("export", True), "serving", "pictures"]


def test_a_deleted_result_is_made_again_with_what_depends_on_it(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    os.remove(config.path(steps.outputs("pretraining_data", {})[0]))
    fake_steps.clear()
    runner.run_demo(config)
    # The data feeds pre-training; the classifier branch does not depend on it.
    assert fake_steps == ["pretraining_data", "pretraining", "serving", "pictures"]


def test_a_step_made_again_starts_over_in_an_emptied_folder(tmp_path, fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    old_checkpoint = config.path(steps.CLASSIFIER, "checkpoints", "ckpt-32.weights.h5")
    os.makedirs(os.path.dirname(old_checkpoint))
    open(old_checkpoint, "w").close()
    os.remove(config.path(steps.outputs("import", {})[0]))
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == ["import", "fine_tuning", ("export", False), "serving", "pictures"]
    # Fine-tuning on a new import trains anew instead of resuming the old run's end.
    assert not os.path.exists(old_checkpoint)


def test_a_kill_after_a_step_was_redone_never_serves_the_old_export(tmp_path, fake_steps,
                                                                    monkeypatch):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    first_export = read_state(config)["done"]["export"]["run_id"]
    # Run 2: the classifier's results are gone, so fine-tuning is redone; the run is
    # killed as export starts.
    os.remove(config.path(steps.outputs("fine_tuning", {})[0]))
    real_export = steps.export

    def killed(config, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "export", killed)
    with pytest.raises(KeyboardInterrupt):
        runner.run_demo(config)
    # The old classifier's export was removed before the new export began.
    assert not os.path.exists(config.path(steps.EXPORT_BASE))
    # Run 3 continues that export (of the new classifier): nothing old is left to reuse.
    monkeypatch.setattr(steps, "export", real_export)
    fake_steps.clear()
    runner.run_demo(config)
    assert fake_steps == [("export", True), "serving", "pictures"]
    state = read_state(config)
    assert state["done"]["export"]["run_id"] != first_export
    assert state["done"]["export"]["inputs"] == {
        "fine_tuning": state["done"]["fine_tuning"]["run_id"]}


def test_a_folder_made_with_other_sizes_is_refused(tmp_path, fake_steps):
    runner.run_demo(DemoConfig(output_dir=str(tmp_path / "demo"), quick=True))
    fake_steps.clear()
    with pytest.raises(ValueError, match=r"other settings: .*pretrain_steps=40 \(now 300\)"
                                         r".*\(it was run with --quick\)"):
        runner.run_demo(DemoConfig(output_dir=str(tmp_path / "demo"), quick=False))
    assert fake_steps == []


def test_sizes_changed_between_versions_are_named_without_blaming_quick(tmp_path,
                                                                       fake_steps):
    config = DemoConfig(output_dir=str(tmp_path / "demo"), quick=True)
    runner.run_demo(config)
    state = read_state(config)
    state["sizes"]["eval_rows"] = 200  # as an older version of the demo recorded
    write_state(config, state)
    with pytest.raises(ValueError) as error:
        runner.run_demo(config)
    assert "eval_rows=200 (now 300)" in str(error.value)
    assert "--quick" not in str(error.value)


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
