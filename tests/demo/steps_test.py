"""The demo's data steps on the shipped data: what is trained on, what is held out, and
what the labels mean."""

import os
import shutil
import sys

import pytest

from keras_bert_app.demo import DemoConfig, settings, steps


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    return header, [row.split("\t") for row in rows]


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_shipped_sst2_rows_are_split_into_training_and_held_out_rows(tmp_path, quick):
    config = DemoConfig(output_dir=str(tmp_path), quick=quick)
    sizes = config.sizes
    made = steps.split_sst2(config)
    _, shipped = read_tsv(os.path.join(settings.DEFAULT_DATA_DIR, settings.SST2_FILE))
    header, train = read_tsv(config.path("sst2", "train.tsv"))
    _, dev = read_tsv(config.path("sst2", "dev.tsv"))
    assert header == "sentence\tlabel"
    assert [t for t, _ in train] == [t.strip() for t, _ in shipped[:sizes.finetune_rows]]
    # Held out: the last rows, less those that are a training phrase or inside one.
    training_phrases = [f" {t} " for t, _ in train]
    held_back = [t.strip() for t, _ in shipped[-sizes.eval_rows:]]
    kept = [t for t in held_back if not any(f" {t} " in p for p in training_phrases)]
    assert [t for t, _ in dev] == kept
    assert made == {"train_rows": sizes.finetune_rows, "eval_rows": len(kept),
                    "eval_rows_in_training_phrases": sizes.eval_rows - len(kept)}
    assert 0 < made["eval_rows_in_training_phrases"] < sizes.eval_rows / 3
    if not quick:  # a row of the last 1,000 that is also a training row, word for word
        assert "efficient" in held_back and "efficient" not in [t for t, _ in dev]


def test_sst2_label_1_is_positive_and_0_negative(tmp_path):
    config = DemoConfig(output_dir=str(tmp_path), quick=True)
    steps.split_sst2(config)
    _, shipped = read_tsv(os.path.join(settings.DEFAULT_DATA_DIR, settings.SST2_FILE))
    _, train = read_tsv(config.path("sst2", "train.tsv"))
    assert shipped[0] == ["hide new secretions from the parental units ", "0"]
    assert train[0] == ["hide new secretions from the parental units", "negative"]
    assert shipped[2][1] == "1" and train[2][1] == "positive"  # "that loves its characters…"
    assert [label for _, label in train] == [
        ("negative", "positive")[int(label)] for _, label in shipped[:1000]]
    assert settings.SST2_LABEL_NAMES == ("negative", "positive")  # id order = GLUE's ids


def test_a_malformed_sst2_row_is_an_error_naming_file_and_line(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(settings.DEFAULT_DATA_DIR, data_dir)
    path = data_dir / settings.SST2_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = "a row without its label\n"
    path.write_text("".join(lines), encoding="utf-8")
    config = DemoConfig(output_dir=str(tmp_path / "out"), quick=True, data_dir=str(data_dir))
    with pytest.raises(ValueError, match=r"sst2_sample.tsv, line 5: expected"):
        steps.split_sst2(config)
    assert not os.path.exists(config.path("sst2", "train.tsv"))  # nothing half-written


def test_the_last_speeches_are_held_out_from_pre_training(tmp_path):
    config = DemoConfig(output_dir=str(tmp_path), quick=True)
    made = steps.split_corpus(config)
    with open(os.path.join(settings.DEFAULT_DATA_DIR, settings.CORPUS_FILE)) as f:
        speeches = [s.strip("\n") for s in f.read().split("\n\n") if s.strip()]
    with open(config.path("corpus", steps.CORPUS_TRAIN)) as f:
        train = [s for s in f.read().split("\n\n") if s.strip()]
    with open(config.path("corpus", steps.CORPUS_HELDOUT)) as f:
        heldout = [s for s in f.read().split("\n\n") if s.strip()]
    assert made == {"train_documents": len(train), "heldout_documents": len(heldout)}
    assert [s.strip("\n") for s in train + heldout] == speeches
    assert len(heldout) == int(len(speeches) * steps.HELDOUT_SHARE)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
