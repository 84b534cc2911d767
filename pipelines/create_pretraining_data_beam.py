"""Creates masked-LM + NSP/SOP pre-training TFRecords from a corpus of any size with
Apache Beam: the same records format, metadata and algorithm as
`create_pretraining_data`, on the DirectRunner here or on Dataflow, Flink or Spark.

    python -m pipelines.create_pretraining_data_beam \
        --input_file='corpus/*.txt' --output_file=data/train --num_output_shards=16 \
        --vocab_file=vocab.txt --do_lower_case=true --max_seq_length=128 \
        --max_predictions_per_seq=20 --dupe_factor=10 \
        --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2

Writes `<output_file>-00000-of-00016`, … and `pretraining_metadata.json` beside them.
Flags this program does not define are Beam's pipeline options (`--runner`,
`--direct_num_workers`, `--project`, `--region`, `--temp_location`, …) and are passed
to Beam; a flag neither knows is an error. `--direct_num_workers` without
`--direct_running_mode` runs the workers as processes (multi_processing). The
DirectRunner is run as Beam's FnApiRunner, never its Prism runner (which downloads a
binary). Needs `pip install .[beam]`.
"""

import sys

from absl import flags

from pipelines.errors import run
from pipelines.pretraining_data_flags import data_config

FLAGS = flags.FLAGS
flags.DEFINE_list("input_file", None, "Input text shards (comma separated, globs "
                  "allowed; local or any Beam file system such as gs://). Google's layout "
                  "(a sentence per line, a blank line between documents) or WikiExtractor's "
                  "(<doc> … </doc>), decided per shard from its content.")
flags.DEFINE_string("output_file", None, "Output prefix: shards are "
                    "<prefix>-00000-of-NNNNN.")
flags.DEFINE_integer("num_output_shards", 16, "Output TFRecord shards.")
flags.DEFINE_integer("documents_per_pool", 1000, "Documents per pool that NSP draws its "
                     "random B from (a uniform random sample of the corpus; one worker "
                     "holds one pool in memory).")
flags.mark_flags_as_required(["input_file", "output_file", "vocab_file"])


def parse_flags(argv):
    """Our flags; the rest are Beam's pipeline options (checked: a typo is an error)."""
    rest = FLAGS(argv, known_only=True)
    beam_args = rest[1:]
    if any(a.startswith("--direct_num_workers") for a in beam_args) and not any(
            a.startswith("--direct_running_mode") for a in beam_args):
        # Beam's default mode runs its workers as threads of one process (the GIL
        # makes them one core); processes are what a user asking for workers means.
        beam_args.append("--direct_running_mode=multi_processing")
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(beam_args)
    known = options.get_all_options()
    unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(known))
    if unknown:
        print(f"{argv[0]}: error: unknown flag(s) --{', --'.join(unknown)} (neither this "
              "program's nor a Beam pipeline option)", file=sys.stderr)
        sys.exit(2)
    if known.get("num_workers") and known.get("runner") in (None, "DirectRunner", "direct"):
        # Beam reads it as Dataflow's worker count; here it would be ignored.
        print(f"{argv[0]}: error: --num_workers is a cluster runner's worker count; on "
              "the DirectRunner give --direct_num_workers", file=sys.stderr)
        sys.exit(2)
    return [argv[0], options]


def main(argv):
    options = argv[1]
    from keras_bert_app.data.pretraining_beam_run import (
        check_outputs, expand_inputs, run_pretraining_data_pipeline, shard_files)

    outputs = shard_files(FLAGS.output_file, FLAGS.num_output_shards)
    check_outputs(FLAGS.output_file, FLAGS.num_output_shards)
    config = data_config(expand_inputs(FLAGS.input_file), outputs,
                         skip_bad_records=True)  # dropped lines are counted and named
    metadata, _ = run_pretraining_data_pipeline(config, options,
                                                documents_per_pool=FLAGS.documents_per_pool)
    print(f"Wrote {metadata['num_instances']} instances from "
          f"{metadata['num_documents']} documents to {FLAGS.output_file}-*-of-"
          f"{FLAGS.num_output_shards:05d}")


if __name__ == "__main__":
    run(main, flags_parser=parse_flags)
