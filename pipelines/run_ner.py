"""Fine-tunes BERT for named-entity recognition (token tagging, BERT's first-piece
recipe) and scores it by seqeval's rules.

    python -m pipelines.run_ner --train_file=wnut17/train.conll \
        --eval_file=wnut17/dev.conll --predict_file=wnut17/dev.conll \
        --init_model_dir=models/minilm --model_dir=runs/wnut17 \
        --do_train --do_eval --do_predict

Input: CoNLL columns (`token … TAG`, tab or space separated, a blank line between
sentences, `-DOCSTART-` skipped; the tag in --tag_column, default the last) or JSON
lines (`{"words": [...], "tags": [...]}`, or `"ner"`), decided from the content. IOB1
files (CoNLL-2003) are converted to IOB2. The tags: --labels_file (one a line) or
the training tags. Each word's first piece carries its tag; a sentence longer than
--max_seq_length is predicted through windows --doc_stride pieces apart, every word
once. Under --model_dir: checkpoints/ (and checkpoints/best/), logs/train and
logs/eval (TensorBoard), ner_run.json, the fine-tuned model directory that
`export_savedmodel --export_type=ner --init_model_dir` takes, eval_results.json
(entity precision, recall, F1, micro and per type: conlleval's chunks, or
--strict_iob2) and predictions.txt (the predict file's lines with the predicted tag
appended: conlleval scores it as it is). The same command after a kill resumes.
"""

from absl import flags

from pipelines import training_flags
from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training data (CoNLL columns or JSON lines).")
flags.DEFINE_string("eval_file", None, "Tagged evaluation data.")
flags.DEFINE_string("predict_file", None, "Data to tag (its tags, if any, are kept "
                    "in predictions.txt).")
flags.DEFINE_integer("tag_column", None, "CoNLL: 0-based column of the tag (negative: "
                     "from the end). Default: the last.")
flags.DEFINE_string("labels_file", None, "The tags in id order, one a line (default: "
                    "the training tags, O first, the others sorted).")
flags.DEFINE_bool("strict_iob2", False, "Score entities in seqeval's strict IOB2 mode "
                  "(an I- after O starts no entity) instead of conlleval's chunks.")
training_flags.define_finetuning_flags(
    save_checkpoints_steps=None, length_help="Window length in pieces, [CLS] and [SEP] "
    "included; longer sentences are predicted through overlapping windows.",
    example="sentence",
    checkpoint_help="Checkpoint (and evaluation) interval; default one epoch.")
flags.DEFINE_integer("doc_stride", None, "Pieces between the starts of a long "
                     "sentence's windows (default max_seq_length // 2).")
flags.DEFINE_bool("do_eval", False, "Evaluate at each checkpoint, keep the best F1, "
                  "write eval_results.json.")
flags.DEFINE_bool("do_predict", False, "Write predictions.txt for --predict_file.")
flags.DEFINE_integer("eval_batch_size", 32, "Evaluation batch size (windows).")
flags.mark_flags_as_required(["model_dir"])


def main(argv):
    del argv
    training_flags.split_cpu()
    from keras_bert_app.training.ner import NerRunConfig, run_ner

    config = NerRunConfig(
        **training_flags.finetuning_fields(), train_file=FLAGS.train_file,
        eval_file=FLAGS.eval_file, predict_file=FLAGS.predict_file,
        do_eval=FLAGS.do_eval, do_predict=FLAGS.do_predict,
        tag_column=FLAGS.tag_column, labels_file=FLAGS.labels_file,
        strict_iob2=FLAGS.strict_iob2, doc_stride=FLAGS.doc_stride,
        eval_batch_size=FLAGS.eval_batch_size)
    run_ner(config)


if __name__ == "__main__":
    run(main, flags_parser=training_flags.parse_flags)
