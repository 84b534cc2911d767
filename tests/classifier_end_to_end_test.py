"""The classification path a user takes, end to end, on real weights and real data:
import the MiniLM BERT, fine-tune it on a few hundred real SST-2 rows with
`run_classifier`, export the text-in SavedModel, and classify raw sentences in a
process that has only TensorFlow and TF Text's ops (as TF Serving does) — with the
fine-tuned model's own answers."""

import json
import os
import sys

import numpy as np
import pytest

from keras_bert_app import names
from tests.export.tf_only_check import run_check
from tests.helpers import require_shared_data, run_pipeline

TRAIN_ROWS, DEV_ROWS = 320, 96
SENTENCES = ["a gripping , beautifully acted film", "a dull and lifeless mess", "",
             "it 's not bad at all"]


def write_sst2_subset(source, folder):
    """train.tsv = the first rows of the real SST-2 train set, dev.tsv = rows held back
    from its end (GLUE's dev labels are not shipped), both in GLUE's layout."""
    with open(source, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    os.makedirs(folder)
    for name, part in (("train.tsv", rows[:TRAIN_ROWS]), ("dev.tsv", rows[-DEV_ROWS:])):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write("\n".join([header] + part) + "\n")


def test_fine_tune_export_and_serve_real_minilm_on_sst2(minilm_dir, tmp_path):
    data = require_shared_data()
    glue = tmp_path / "SST-2"
    write_sst2_subset(os.path.join(data, "glue", "SST-2", "train.tsv"), str(glue))
    # MiniLM imported as `convert_checkpoint` imports it (tests/conftest.py; the
    # README's tutorial chain runs the pipeline itself).
    pretrained, model_dir, export = minilm_dir, tmp_path / "run", tmp_path / "export"
    run_pipeline("run_classifier", "--task_name=sst-2", f"--data_dir={glue}",
                 f"--init_model_dir={pretrained}", f"--model_dir={model_dir}",
                 "--do_train", "--do_eval", "--max_seq_length=64", "--num_train_epochs=2",
                 "--train_batch_size=16", "--learning_rate=1e-4", "--eval_batch_size=32")
    results = json.loads((model_dir / names.EVAL_RESULTS_FILE).read_text())
    # 640 examples seen: well above chance on held-out rows (the majority class of
    # these 96 rows is ~55%).
    assert results["accuracy"] > 0.7, results
    assert results["eval_examples"] == DEV_ROWS

    exported = run_pipeline("export_savedmodel", "--export_type=classifier",
                            f"--init_model_dir={model_dir}", f"--export_path={export}")
    version = export / "1"
    assert version.is_dir(), exported.stdout
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()

    result = run_check({"models": {"sst2": str(version)}, "warmup": ["sst2"],
                        "cases": [{"id": "sentences", "model": "sst2",
                                   "call": "serving_default",
                                   "inputs": {names.TEXT_A: SENTENCES}}]}, str(tmp_path))
    assert not [m for m in result["modules"] if m.split(".")[0] != "tensorflow_text"]
    answers = result["cases"]["sentences"]
    assert "error" not in answers["eager"], answers["eager"]
    served = answers["eager"]["outputs"]
    np.testing.assert_allclose(answers["session"]["outputs"][names.PROBABILITIES],
                               served[names.PROBABILITIES], atol=1e-6)

    # The same as the fine-tuned Keras model on the same text.
    import keras_bert_app as kba

    classifier = kba.load_classifier(str(model_dir))
    logits = np.asarray(classifier.predict(SENTENCES, verbose=0), np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served[names.PROBABILITIES], expected, atol=1e-5)
    labels = [v.decode() if isinstance(v, bytes) else v for v in served[names.LABEL]]
    assert labels == [["0", "1"][i] for i in expected.argmax(axis=1)]
    assert labels[0] == "1" and labels[1] == "0"  # SST-2: 1 = positive
    assert result["warmup"]["sst2"], "the warmup records did not replay"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
