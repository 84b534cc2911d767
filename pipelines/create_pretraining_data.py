"""Creates masked-LM + next-sentence pre-training TFRecords (Google's algorithm/flags).

    python -m pipelines.create_pretraining_data --input_file=corpus.txt \
        --output_file=data/train.tfrecord --vocab_file=vocab.txt --do_lower_case=true \
        --max_seq_length=128 --max_predictions_per_seq=20 --masked_lm_prob=0.15 \
        --dupe_factor=10 --random_seed=12345

Input: one sentence per line, a blank line between documents. Writes the records and
`pretraining_metadata.json` beside them (vocabulary fingerprint, lengths, casing,
masking), which `kba.data.pretraining_dataset` checks. The records are written under
`.partial` names and renamed when complete, the metadata last: a failed run leaves no
partial record file. Lines that are not UTF-8 are an error naming the file and line;
--skip_bad_records drops (and counts) them instead.
"""

import glob

from absl import flags

from pipelines.errors import run
from pipelines.pretraining_data_flags import data_config

FLAGS = flags.FLAGS
flags.DEFINE_list("input_file", None, "Input text files (comma separated, globs allowed).")
flags.DEFINE_list("output_file", None, "Output TFRecord files (comma separated); "
                  "instances are spread over them round robin.")
flags.DEFINE_bool("sentence_order_prediction", False, "Same as --sentence_prediction=sop.")
flags.DEFINE_integer("num_workers", 1, "Processes making instances; the records are the "
                     "same for any number.")
flags.DEFINE_bool("skip_bad_records", False, "Drop input lines that are not UTF-8 text "
                  "(latin-1, UTF-16, binary) instead of stopping at the first; the count "
                  "is logged and recorded as skipped_lines in pretraining_metadata.json. "
                  "A corpus with no good line is still an error.")
flags.mark_flags_as_required(["input_file", "output_file", "vocab_file"])


def main(argv):
    del argv
    # Here, not at the top: `--help` answers without importing TensorFlow.
    from keras_bert_app.data import create_pretraining_data

    inputs = sorted({f for pattern in FLAGS.input_file for f in (glob.glob(pattern) or [pattern])})
    config = data_config(
        inputs, FLAGS.output_file,
        sentence_prediction="sop" if FLAGS.sentence_order_prediction else None,
        num_workers=FLAGS.num_workers, skip_bad_records=FLAGS.skip_bad_records)
    metadata = create_pretraining_data(config)
    print(f"Wrote {metadata['num_instances']} instances from "
          f"{metadata['num_documents']} documents to {', '.join(FLAGS.output_file)}")


if __name__ == "__main__":
    run(main)
