"""`create_pretraining_data` as an Apache Beam pipeline: the same instances, from a
corpus of any size, on the DirectRunner or unchanged on Dataflow, Flink or Spark.

    shards ─ read documents ─ tokenize ─ pool by key ─ make instances ─ shard by key ─ write
                                                                                 └ metadata

- Documents are read per text shard (Google's layout or WikiExtractor's, decided from
  the content: `corpus_documents`), so a shard is the unit of reading; give many.
- NSP/SOP draw their random B from a *pool*: documents are spread over
  `ceil(documents / documents_per_pool)` pools by a hash of their key (relative file
  name + position), so each pool is a uniform random sample of the whole corpus, and a
  worker holds one pool, never the corpus. A corpus smaller than one pool is a single
  pool: Google's draw over all documents.
- Every document has its own random stream per round (`seed/round/key`) and every
  instance a hashed sort key that picks its output shard and its place in it: the
  records are the same bytes for any runner split and any number of workers.
- Lines that are not UTF-8, empty shards and text outside WikiExtractor's `<doc>`
  are dropped, counted and named (in the counters and `pretraining_metadata.json`),
  never a crash; a corpus with no document left is an error.
"""

import bz2
import contextlib
import dataclasses
import gzip
import hashlib
import lzma
import math
import random
import uuid
import zlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from keras_bert_app.data.corpus_documents import DROPPED, ShardReader
from keras_bert_app.data.instances import InstanceMaker
from keras_bert_app.data.pretraining_data import (batch_tokenizer, instance_maker_args,
                                                  tokenize_documents)
from keras_bert_app.data.pretraining_records import serialize_instance, write_metadata

COUNTER_NAMESPACE = "pretraining_data"
PROBLEMS = "problems"
DOCUMENTS = "documents"
DEFAULT_DOCUMENTS_PER_POOL = 1000


def _counter(name):
    return Metrics.counter(COUNTER_NAMESPACE, name)


def _hash64(text):
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def relative_names(paths):
    """Each path relative to the deepest folder all `paths` share ("a/wiki_00" for
    ".../AA/wiki_00"): document keys that do not change when the corpus moves, and
    differ for equal basenames in different folders (WikiExtractor's AA/wiki_00,
    AB/wiki_00)."""
    parts = [p.split("/") for p in paths]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) for p in parts]


_DECOMPRESSORS = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}


@contextlib.contextmanager
def open_shard(path):
    """A shard's bytes (any Beam file system), decompressed by its extension.

    Python's own readers, not Beam's: Beam's reads a .gz cut short (an interrupted
    copy) to the cut without an error, where these raise `EOFError` at the cut, so
    the shard is named instead of silently read in part."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        opener = next((o for suffix, o in _DECOMPRESSORS.items()
                       if path.lower().endswith(suffix)), None)
        if opener is None:
            yield raw
        else:
            with opener(fileobj=raw) if opener is gzip.GzipFile else opener(raw) as f:
                yield f


class ReadDocuments(beam.DoFn):
    """(path, name) → (key, [sentence, …]) per document; problems (a dict naming
    the file) to the `PROBLEMS` output."""

    def __init__(self):
        self.files = _counter("files")
        self.lines = _counter("lines")
        self.bad_lines = _counter("bad_lines")
        self.bad_files = _counter("files_with_bad_lines")
        self.empty_files = _counter("empty_files")
        self.stray_lines = _counter("lines_outside_doc")
        self.read = _counter("documents_read")
        self.unreadable = _counter("unreadable_files")

    def process(self, shard):
        path, name = shard
        reader = ShardReader(path, advice=DROPPED)
        count, unreadable = 0, None
        try:
            with open_shard(path) as f:
                for count, document in enumerate(
                        reader.documents(iter(f.readline, b"")), 1):
                    yield f"{name}#{count:09d}", document
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as error:
            # A corrupt or cut .gz/.bz2, a file gone or unreadable: the documents read
            # before it are kept (the same ones on a retry), the rest is named.
            unreadable = f"{type(error).__name__}: {error}"
        self.files.inc()
        self.lines.inc(reader.lines)
        self.read.inc(count)
        problems = []
        if unreadable:
            self.unreadable.inc()
            problems.append(dict(problem="unreadable after line "
                                 f"{reader.lines}, the rest dropped", first=unreadable))
        elif reader.lines == 0:
            self.empty_files.inc()
            problems.append(dict(problem="empty file"))
        if reader.bad_lines:
            self.bad_lines.inc(reader.bad_lines)
            self.bad_files.inc()
            problems.append(dict(problem="lines that are not UTF-8 dropped",
                                 lines=reader.bad_lines, first=reader.first_error))
        if reader.stray_lines:
            self.stray_lines.inc(reader.stray_lines)
            problems.append(dict(problem="text outside <doc> … </doc> dropped",
                                 lines=reader.stray_lines))
        for problem in problems:
            yield beam.pvalue.TaggedOutput(PROBLEMS, dict(file=path, **problem))


class TokenizeDocuments(beam.DoFn):
    """A batch of (key, [sentence, …]) → (key, [[id, …], …]) with the project's
    in-graph tokenizer (Google-exact); documents left without a token are counted
    and dropped."""

    def __init__(self, vocab, do_lower_case):
        self.vocab, self.do_lower_case = vocab, do_lower_case
        self.tokens = _counter("tokens")
        self.documents = _counter(DOCUMENTS)
        self.empty = _counter("skipped_empty_documents")

    def setup(self):
        from keras_bert_app.text.tokenizer import BertTokenizer

        self._tokenize = batch_tokenizer(BertTokenizer(self.vocab,
                                                       lower_case=self.do_lower_case))

    def process(self, batch):
        keys = [key for key, _ in batch]
        for key, document in zip(keys, tokenize_documents([d for _, d in batch],
                                                          self._tokenize)):
            if not document:
                self.empty.inc()
                continue
            self.documents.inc()
            self.tokens.inc(sum(len(sentence) for sentence in document))
            yield key, document


def assign_pool(document, seed, documents_per_pool, num_documents):
    key, _ = document
    pools = max(1, math.ceil(num_documents / documents_per_pool))
    return _hash64(f"{seed}/pool/{key}") % pools, document


class MakeInstances(beam.DoFn):
    """(pool, documents) → (shard, (sort key, serialized example)) for every round
    of `dupe_factor`: Google's algorithm (`InstanceMaker`) over the pool, sorted by
    key, each document with its own random stream."""

    def __init__(self, config, vocab):
        # The settings, not the (perhaps tens of thousands of) input names: the
        # pickled DoFn goes into the job graph, whose size runners limit.
        self.config = dataclasses.replace(config, input_files=config.input_files[:1])
        self.vocab = vocab
        self.instances = _counter("instances")
        self.truncated = _counter("truncated_instances")
        self.pools = _counter("pools")

    def setup(self):
        from keras_bert_app.text.tokenizer import BertTokenizer

        tokenizer = BertTokenizer(self.vocab, lower_case=self.config.do_lower_case)
        self._maker_args = instance_maker_args(self.config, tokenizer)

    def process(self, pool):
        _, members = pool
        members = sorted(members)  # by key: the order no runner split can change
        documents = [document for _, document in members]
        c, shards = self.config, len(self.config.output_files)
        self.pools.inc()
        for round_ in range(c.dupe_factor):
            for index, (key, _) in enumerate(members):
                maker = InstanceMaker(rng=random.Random(f"{c.random_seed}/{round_}/{key}"),
                                      **self._maker_args)
                made = maker.from_document(documents, index)
                for number, instance in enumerate(made):
                    order = _hash64(f"{c.random_seed}/order/{round_}/{key}/{number}")
                    yield order % shards, (order, serialize_instance(
                        instance, c.max_seq_length, c.max_predictions_per_seq))
                self.instances.inc(len(made))
                self.truncated.inc(maker.truncated)


class WriteShard(beam.DoFn):
    """(shard, records) → the number written: one TFRecord file, records in their
    sort-key order, written under a temporary name and renamed when whole (a retried
    bundle rewrites the same bytes)."""

    def __init__(self, output_files):
        self.output_files = output_files

    def process(self, shard):
        import tensorflow as tf

        index, records = shard
        records = sorted(r for r in records if r is not None)
        path = self.output_files[index]
        directory, name = path.rsplit("/", 1) if "/" in path else (".", path)
        # A hidden name: a glob over the prefix never picks up a killed writer's file.
        partial = f"{directory}/.{name}.partial-{uuid.uuid4().hex}"
        tf.io.gfile.makedirs(directory)
        try:
            with tf.io.TFRecordWriter(partial) as writer:
                for _, record in records:
                    writer.write(record)
            tf.io.gfile.rename(partial, path, overwrite=True)
        except BaseException:
            if tf.io.gfile.exists(partial):
                tf.io.gfile.remove(partial)
            raise
        yield len(records)


def _write_metadata(num_instances, base, output_files, num_documents, problems):
    """The last step: the metadata beside the shards, once every shard is written
    (none when no document was read: the records are then refused by readers, and
    the driver reports the error)."""
    if num_documents == 0:
        return
    metadata = dict(base, num_instances=num_instances, num_documents=num_documents)
    metadata["skipped_lines"] = sum(p.get("lines", 0) for p in problems
                                    if p["problem"].startswith("lines that"))
    if problems:
        metadata["input_problems"] = sorted(problems, key=lambda p: (p["file"],
                                                                     p["problem"]))
    write_metadata(output_files, metadata)


def build_pipeline(pipeline, config, vocab, base_metadata,
                   documents_per_pool=DEFAULT_DOCUMENTS_PER_POOL):
    """Adds the steps that turn `config.input_files` into `config.output_files` and
    their metadata to `pipeline` (a `beam.Pipeline`); `vocab`: the tokens of
    `config.vocab_file`, shipped to the workers (which may not see the file)."""
    files = list(config.input_files)
    read = (pipeline
            | "List shards" >> beam.Create(list(zip(files, relative_names(files))))
            | "Spread shards" >> beam.Reshuffle()
            | "Read documents" >> beam.ParDo(ReadDocuments()).with_outputs(
                PROBLEMS, main=DOCUMENTS))
    documents = (read[DOCUMENTS]
                 | "Batch documents" >> beam.BatchElements(min_batch_size=8,
                                                           max_batch_size=256)
                 | "Tokenize" >> beam.ParDo(TokenizeDocuments(vocab, config.do_lower_case)))
    count = documents | "Count documents" >> beam.combiners.Count.Globally()
    records = (documents
               | "Assign pools" >> beam.Map(assign_pool, config.random_seed,
                                            documents_per_pool,
                                            beam.pvalue.AsSingleton(count))
               | "Group pools" >> beam.GroupByKey()
               | "Make instances" >> beam.ParDo(MakeInstances(config, vocab)))
    every_shard = pipeline | "Every shard" >> beam.Create(
        [(index, None) for index in range(len(config.output_files))])
    written = ((records, every_shard)
               | "Join shards" >> beam.Flatten()
               | "Group shards" >> beam.GroupByKey()
               | "Write shards" >> beam.ParDo(WriteShard(list(config.output_files))))
    problems = read[PROBLEMS] | "Collect problems" >> beam.combiners.ToList()
    (written
     | "Count instances" >> beam.CombineGlobally(sum)
     | "Write metadata" >> beam.Map(_write_metadata, base_metadata,
                                    list(config.output_files),
                                    beam.pvalue.AsSingleton(count),
                                    beam.pvalue.AsSingleton(problems)))
