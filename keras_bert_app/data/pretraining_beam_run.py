"""Running the Beam pre-training data pipeline (`pretraining_beam`): inputs and
outputs checked and named before anything starts, the runner chosen, the counters and
metadata read back when it ends."""

import json
import os
import re
import sys
import tempfile

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from keras_bert_app.data.pretraining_beam import (COUNTER_NAMESPACE, DOCUMENTS,
                                                  DEFAULT_DOCUMENTS_PER_POOL,
                                                  build_pipeline)
from keras_bert_app.data.pretraining_records import (metadata_paths, pretraining_metadata,
                                                     remove_stale_metadata)
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.vocab import load_vocab, special_token_ids, vocab_fingerprint


def read_vocab(path):
    """The tokens of a vocabulary file, local or on any Beam file system (gs://…),
    with `load_vocab`'s checks."""

    if "://" not in path:
        tokens = load_vocab(path)
    else:
        with FileSystems.open(path) as f, tempfile.TemporaryDirectory() as scratch:
            local = os.path.join(scratch, "vocab.txt")
            with open(local, "wb") as out:
                out.write(f.read())
            tokens = load_vocab(local)
    special_token_ids(tokens, path)  # the special tokens masking needs are there
    return tokens


def expand_inputs(patterns):
    """The sorted files of `patterns` (globs, local or on any Beam file system); an
    error naming a pattern that matches nothing."""
    files = set()
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        found = [m.path for m in result.metadata_list]
        if not found:
            raise FileNotFoundError(f"--input_file {pattern} matches no file.")
        files.update(found)
    return tuple(sorted(files))


def shard_files(prefix, num_shards):
    """Beam's shard names: `<prefix>-00000-of-00016`, …"""
    if num_shards < 1:
        raise ValueError(f"num_output_shards={num_shards} must be positive.")
    return tuple(f"{prefix}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards))


def check_outputs(prefix, num_shards):
    """Refuses to write beside shards of the same prefix but another shard count: a
    glob over the prefix would read both runs' records under one metadata file."""
    pattern = re.compile(re.escape(prefix) + r"-\d{5}-of-(\d{5})$")
    existing = [m.path for result in FileSystems.match([prefix + "-*-of-*"])
                for m in result.metadata_list]
    other = sorted(p for p in existing
                   if (found := pattern.match(p)) and int(found.group(1)) != num_shards)
    if other:
        raise ValueError(f"{other[0]} (and {len(other) - 1} more) are shards of an earlier "
                         f"run with another --num_output_shards; remove them or use "
                         f"another --output_file prefix.")


LOCAL_RUNNERS = (None, "DirectRunner", "direct")


def check_paths(config, runner):
    """Refuses paths the run could not use, before anything starts (and before a
    cluster job is paid for): outputs go through `tf.io.gfile` (local or gs://; other
    file systems need tensorflow-io), and Dataflow's workers do not see this
    machine's disk."""
    output = config.output_files[0]
    if "://" in output and not output.startswith("gs://"):
        raise ValueError(f"--output_file {output.rsplit('-', 3)[0]}: the records are "
                         "written with tf.io.gfile, which writes local paths and gs:// "
                         "(other file systems need tensorflow-io).")
    if runner == "DataflowRunner":
        local = [p for p in (output,) + tuple(config.input_files) if "://" not in p]
        if local:
            raise ValueError(f"{local[0]} is a local path, which Dataflow's workers cannot "
                             "see: give --input_file and --output_file on gs://.")


def run_pretraining_data_pipeline(config, pipeline_options=None,
                                  documents_per_pool=DEFAULT_DOCUMENTS_PER_POOL,
                                  verbose=1):
    """Runs the pipeline for `config` (a `PretrainingDataConfig` whose
    `output_files` are `shard_files(...)`) and waits for it.

    Returns `(metadata, counters)`: the metadata written beside the records and the
    pipeline's counters by name. Raises when no document was read, naming the
    problems found in the inputs.
    """

    if documents_per_pool < 2:
        raise ValueError(f"documents_per_pool={documents_per_pool} must be at least 2 "
                         "(NSP draws its random B from other documents of the pool).")
    # Read here, once: a wrong vocabulary fails before any worker starts, and the
    # workers get its tokens (a local --vocab_file is not on a cluster's workers).
    vocab = read_vocab(config.vocab_file)
    text_config = TextConfig(do_lower_case=bool(config.do_lower_case),
                             vocab_sha256=vocab_fingerprint(vocab))
    base = pretraining_metadata(config, text_config, len(vocab), num_instances=0,
                                num_documents=0, files=config.output_files)
    options = pipeline_options or PipelineOptions([])
    runner_name = options.view_as(StandardOptions).runner
    check_paths(config, runner_name)
    remove_stale_metadata(config.output_files)
    runner = None
    if runner_name in LOCAL_RUNNERS:
        # Beam's DirectRunner first tries its Prism runner, which downloads a binary
        # from GitHub; the FnApiRunner it falls back to is the one that honours
        # --direct_num_workers / --direct_running_mode, and needs no download.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_pipeline(pipeline, config, vocab, base, documents_per_pool)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for counter in result.metrics().query(
            MetricsFilter().with_namespace(COUNTER_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + value
    if verbose:
        print("Counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    path = metadata_paths(config.output_files)[0]  # the shards share one folder
    directory = path.rsplit("/", 1)[0]
    # Partial files of killed or retried writers (hidden names; a GCS glob of `*`
    # would still match them).
    prefix = config.output_files[0].rsplit("-", 3)[0]
    for partial in tf.io.gfile.glob(f"{directory}/.{prefix.rsplit('/', 1)[-1]}-*.partial-*"):
        tf.io.gfile.remove(partial)
    if not tf.io.gfile.exists(path) and counters.get(DOCUMENTS):
        raise ValueError(f"The pipeline made {counters.get('instances', 0)} instances from "
                         f"{counters[DOCUMENTS]} documents, but {path} is not there: on a "
                         "cluster, --output_file must be a path every worker and this "
                         "machine share (gs://…), not a local disk.")
    if not tf.io.gfile.exists(path):
        raise ValueError(f"No document in the {len(config.input_files)} input file(s) "
                         f"{config.input_files[0]}{', …' if len(config.input_files) > 1 else ''}"
                         f" (counters: {counters}); no metadata was written, so the "
                         "records will not be read.")
    with tf.io.gfile.GFile(path) as f:
        metadata = json.load(f)
    for problem in metadata.get("input_problems", []):
        print(f"WARNING: {problem['file']}: {problem['problem']}"
              + (f" ({problem['lines']} lines)" if "lines" in problem else "")
              + (f"; the first: {problem['first']}" if problem.get("first") else ""),
              file=sys.stderr)
    return metadata, counters
