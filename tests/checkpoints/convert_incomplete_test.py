"""`convert_checkpoint` on a source that lacks encoder weights: an error with the
import report, and nothing written; missing pre-training heads only warn."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from keras_bert_app import names
from keras_bert_app.checkpoints import MissingEncoderWeightsError, convert_checkpoint
from tests.checkpoints.checkpoint_files import write_tiny_hf_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_converter(*flags):
    return subprocess.run([sys.executable, "-m", "pipelines.convert_checkpoint", *flags],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.fixture(scope="module")
def wrapped_dir(tmp_path_factory):
    """Hugging Face BERT keys under `model.` (as a wrapper module saves them)."""
    directory = tmp_path_factory.mktemp("wrapped")
    write_tiny_hf_dir(directory, key_prefix="model.")
    return str(directory)


def test_library_raises_and_creates_no_output_directory(wrapped_dir, tmp_path):
    output = tmp_path / "model"
    with pytest.raises(MissingEncoderWeightsError, match="lacks 39 of the encoder's"):
        convert_checkpoint("hf", wrapped_dir, str(output))
    assert not output.exists()


def test_library_leaves_an_existing_output_directory_as_it_was(wrapped_dir, tmp_path):
    output = tmp_path / "model"
    output.mkdir()
    (output / names.WEIGHTS_FILE).write_bytes(b"earlier model")
    with pytest.raises(MissingEncoderWeightsError):
        convert_checkpoint("hf", wrapped_dir, str(output))
    assert os.listdir(output) == [names.WEIGHTS_FILE]
    assert (output / names.WEIGHTS_FILE).read_bytes() == b"earlier model"


def test_pipeline_exits_2_with_one_line_error_and_the_report(wrapped_dir, tmp_path):
    output = tmp_path / "model"
    proc = run_converter("--source_format=hf", f"--input_path={wrapped_dir}",
                         f"--output_dir={output}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines()
                   if line.startswith("pipelines.convert_checkpoint: error:")]
    assert len(error_lines) == 1
    assert f"{wrapped_dir}/model.safetensors lacks 39 of the encoder's 39 weights" in \
        error_lines[0]
    report = proc.stderr[proc.stderr.index(error_lines[0]) + len(error_lines[0]):]
    assert report.splitlines()[1:4] == [
        f"Imported {wrapped_dir}/model.safetensors", "  loaded: 0 weights",
        "  not used from the source: 46"]
    assert "    model.bert.encoder.layer.0.attention.self.query.weight" in report
    assert "  missing from the source (initialised): 46" in report
    assert "Wrote the model directory" not in proc.stdout
    assert not output.exists()


def test_pipeline_warns_about_missing_heads_and_writes_the_model(tmp_path):
    source = tmp_path / "bare"
    write_tiny_hf_dir(source, heads=False)
    proc = run_converter("--source_format=hf", f"--input_path={source}",
                         f"--output_dir={tmp_path / 'model'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "missing from the source (initialised): 7" in proc.stdout
    assert "warning: the source lacks 7 pre-training head weights" in proc.stderr
    assert {names.BERT_CONFIG_FILE, names.VOCAB_FILE, names.TEXT_CONFIG_FILE,
            names.WEIGHTS_FILE} <= set(os.listdir(tmp_path / "model"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
