"""Fine-tunes BERT for sentence / sentence-pair classification or regression.

    python -m pipelines.run_classifier --task_name=MRPC --data_dir=glue/MRPC \
        --init_model_dir=models/bert_base --model_dir=runs/mrpc \
        --do_train --do_eval --do_predict

    python -m pipelines.run_classifier --train_file=train.csv --eval_file=dev.csv \
        --text_a_column=review --label_column=stars --init_model_dir=models/minilm \
        --model_dir=runs/reviews --do_train --do_eval

GLUE tasks read `data_dir`'s train.tsv, dev.tsv (MNLI: dev_matched.tsv and
dev_mismatched.tsv) and test.tsv as they ship. Other data: TSV, CSV or JSON lines with
the columns named by the flags (names from the header, or 0-based indices with
--nohas_header). Under --model_dir: checkpoints/ (and checkpoints/best/), logs/train
and logs/eval (TensorBoard), eval_results.json, predictions.tsv, and the fine-tuned
model directory that `export_savedmodel --init_model_dir` takes. The same command
after a kill resumes.
"""

from absl import flags

from pipelines import training_flags
from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("task_name", None, "GLUE task as its folder is spelled (SST-2, CoLA, "
                    "MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI), case-insensitive.")
flags.DEFINE_string("data_dir", None, "The GLUE task's folder.")
flags.DEFINE_string("train_file", None, "Training data (TSV, CSV or JSON lines).")
flags.DEFINE_string("eval_file", None, "Labelled evaluation data.")
flags.DEFINE_string("predict_file", None, "Data to predict (labels optional).")
flags.DEFINE_enum("file_format", "auto", ["auto", "tsv", "csv", "jsonl"],
                  "Format of the files; auto: from the extension.")
flags.DEFINE_string("text_a_column", None, "Column of the (first) text: a header name, "
                    "or a 0-based index with --nohas_header.")
flags.DEFINE_string("text_b_column", None, "Column of the second text of pairs.")
flags.DEFINE_string("label_column", None, "Column of the label.")
flags.DEFINE_bool("has_header", True, "The files start with a header row.")
flags.DEFINE_string("label_separator", None, "Multi-label: the labels of a row are this "
                    "separated list (sigmoid outputs).")
flags.DEFINE_bool("regression", False, "The label is a number (num_classes=1, MSE).")
flags.DEFINE_list("label_names", None, "Label names in id order (default: the training "
                  "labels sorted; GLUE: the task's).")
training_flags.define_finetuning_flags(
    save_checkpoints_steps=None,
    checkpoint_help="Checkpoint (and evaluation) interval; default one epoch.")
flags.DEFINE_bool("do_eval", False, "Evaluate at each checkpoint, keep the best, write "
                  "eval_results.json.")
flags.DEFINE_bool("do_predict", False, "Write predictions.tsv for the predict data.")
flags.DEFINE_bool("dynamic_padding", True, "Pad batches to their length bucket (16, 32, "
                  "64 … max_seq_length) and group similar lengths, instead of always "
                  "padding to max_seq_length.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.")
flags.DEFINE_string("metric", None, "Metric choosing the best checkpoint (accuracy, f1, "
                    "mcc, pearson, spearman …); default: the task's paper metric.")
flags.mark_flags_as_required(["model_dir"])


def _column(value):
    """A column flag: an index when it is a number (files without header)."""
    if value is None:
        return None
    return int(value) if value.strip().lstrip("-").isdigit() and not FLAGS.has_header \
        else value


def main(argv):
    del argv
    training_flags.split_cpu()
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier

    config = ClassifierRunConfig(
        **training_flags.finetuning_fields(), task_name=FLAGS.task_name,
        data_dir=FLAGS.data_dir, train_file=FLAGS.train_file, eval_file=FLAGS.eval_file,
        predict_file=FLAGS.predict_file, file_format=FLAGS.file_format,
        text_a_column=_column(FLAGS.text_a_column),
        text_b_column=_column(FLAGS.text_b_column),
        label_column=_column(FLAGS.label_column), has_header=FLAGS.has_header,
        label_separator=FLAGS.label_separator,
        problem_type="regression" if FLAGS.regression else None,
        label_names=tuple(FLAGS.label_names) if FLAGS.label_names else None,
        do_eval=FLAGS.do_eval, do_predict=FLAGS.do_predict,
        dynamic_padding=FLAGS.dynamic_padding, eval_batch_size=FLAGS.eval_batch_size,
        metric=FLAGS.metric)
    results = run_classifier(config)
    if results:
        print("eval_results: " + ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(results.items())))


if __name__ == "__main__":
    run(main, flags_parser=training_flags.parse_flags)
