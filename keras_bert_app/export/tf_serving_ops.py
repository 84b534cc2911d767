"""Which op types a SavedModel may use to load and serve in stock TF Serving.

tensorflow_model_server registers TF core ops plus every op of one pinned tensorflow-text
release: 2.12.1 up to TF Serving 2.19, 2.20.0 from TF Serving 2.20 (`@org_tensorflow_text`
in tensorflow/serving's `tensorflow_serving/workspace.bzl`; ../shared/notes/facts.md).
A graph with an op the server does not register fails to load ("Op type not
registered"; tensorflow/serving#2267 is exactly that for `TFText>RoundRobinTrim`).
`serving_ops.check_serving_ops` applies the lists below.
"""

# The TF Text ops that tensorflow-text 2.12.1 registers, of those that the tensorflow-text
# we build with (2.21.1) can put in a graph. How this list was obtained (2026-12-03):
#   pip download --no-deps tensorflow-text==2.12.1 -d /tmp/tft212 --python-version 3.11 \
#       --only-binary=:all: --platform manylinux2014_x86_64
#   -> tensorflow_text-2.12.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl,
#      sha256 9d5751ff8ad3eea2f32641e65bf29814a1b6059f0dc0ccb09d44676f26fbf6ac
#   1. The op names tensorflow-text 2.21.1 registers: the OpList of
#      `pywrap_tf_session.TF_GetAllOpList()` after `import tensorflow_text` minus the one
#      after `import tensorflow` alone (TF 2.21.0): 38 names.
#   2. Unzipped the 2.12.1 wheel and, for each of the 38, looked for the name as a whole
#      NUL-terminated string (the `REGISTER_OP("...")` literal) in its op libraries
#      (`strings -a tensorflow_text/python/{ops,metrics}/_*.so | grep -xF NAME`): 35
#      found, each in the library of its kernel (e.g. FastWordpieceTokenizeWithOffsets
#      in _fast_wordpiece_tokenizer.so); `TFText>RoundRobinTrim`,
#      `TFText>RoundRobinGenerateMasks` and `TFText>Utf8Binarize` are in none (2.12.1
#      has no trimmer op library at all: its RoundRobinTrimmer was Python over core ops).
#   Cross-check: the 2.12.1 Python wrappers call exactly these ops (`gen_*.<snake_case>`),
#   and ../shared/notes/facts.md states the same 35 present / 3 absent.
#   Ops that 2.12.1 has but 2.21.1 dropped cannot appear in our graphs, so are not listed.
TF_TEXT_2_12_1_OPS = frozenset({
    "CaseFoldUTF8",
    "ConstrainedSequence",
    "FastBertNormalize",
    "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets",
    "MaxSpanningTree",
    "NormalizeUTF8",
    "NormalizeUTF8WithOffsetsMap",
    "PhraseTokenize",
    "RegexSplitWithOffsets",
    "RougeL",
    "SentenceFragments",
    "SentenceFragmentsV2",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceOp",
    "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp",
    "SplitMergeTokenizeWithOffsets",
    "TFText>BoiseTagsToOffsets",
    "TFText>ByteSplitByOffsets",
    "TFText>ByteSplitWithOffsets",
    "TFText>FastSentencepieceDetokenize",
    "TFText>FastSentencepieceTokenize",
    "TFText>FastWordpieceDetokenize",
    "TFText>NgramsStringJoin",
    "TFText>OffsetsToBoiseTags",
    "TFText>PhraseDetokenize",
    "TFText>WhitespaceTokenizeWithOffsetsV2",
    "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
})

# Checkpoint and asset I/O that a SavedModel needs once, when the server loads it: the
# saver functions (`saver_def`: TF Serving runs the restore function, never the save one)
# and the functions behind the `__saved_model_init_op` (tables filled from asset files).
# Allowed only in those; anywhere else they would touch files on every request.
LOAD_TIME_OPS = frozenset({
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "DTensorRestoreV2", "MergeV2Checkpoints", "Restore", "RestoreSlice", "RestoreV2", "Save", "SaveSlices",
    "SaveV2",
})

# Proto ops whose `descriptor_source` attribute may name a descriptor file read on
# every call; only the binary's own descriptor pool ("local://", the default) is safe.
DESCRIPTOR_OPS = frozenset({"DecodeProtoV2", "EncodeProto"})
LOCAL_DESCRIPTORS = b"local://"

# Op types (TF 2.21 core) that read or write files, use the network or call back into
# Python, refused anywhere in an export. A serving process has no Python interpreter
# (PyFunc ops fail there), and per-request file or network access makes the model depend
# on the machine it runs on. Op types only: a `CacheDatasetV2` that spills to a file, say,
# differs from an in-memory one by an input value, which this check does not see.
DENIED_OPS = {
    **dict.fromkeys(["EagerPyFunc", "PyFunc", "PyFuncStateless"], "calls Python"),
    **dict.fromkeys([
        "CSVDataset", "CSVDatasetV2", "CalibrationStatisticsSaver", "DatasetToTFRecord",
        "DistributedSave", "DumpTensor", "ExperimentalCSVDataset",
        "ExperimentalDatasetToTFRecord", "ExperimentalLMDBDataset",
        "ExperimentalMatchingFilesDataset", "ExperimentalSqlDataset",
        "FileSystemSetConfiguration", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "GenerateVocabRemapping", "ImmutableConst",
        "LMDBDataset", "LMDBReader", "ListSnapshotChunksDataset", "LoadAndRemapMatrix",
        "LoadDataset", "MatchingFiles", "MatchingFilesDataset", "ReadFile", "RecordInput",
        "SaveDataset", "SaveDatasetV2", "SnapshotChunkDataset", "SnapshotDataset",
        "SnapshotDatasetReader", "SnapshotDatasetV2", "SnapshotNestedDatasetReader",
        "SqlDataset", "TFRecordDataset", "TFRecordDatasetV2", "TFRecordReader",
        "TFRecordReaderV2", "TextLineDataset", "TextLineReader", "TextLineReaderV2",
        "WholeFileReader", "WholeFileReaderV2", "WriteFile",
    ], "reads or writes files"),
    **dict.fromkeys([
        "CloseSummaryWriter", "CreateSummaryDbWriter", "CreateSummaryFileWriter",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "DebugNumericSummaryV2", "FlushSummaryWriter", "ImportEvent",
        "Print", "PrintV2", "StatsAggregatorSetSummaryWriter", "WriteAudioSummary",
        "WriteGraphSummary", "WriteHistogramSummary", "WriteImageSummary",
        "WriteRawProtoSummary", "WriteScalarSummary", "WriteSummary",
    ], "writes logs, summaries or debug dumps on every call"),
    **dict.fromkeys([
        "_HostRecv", "_HostSend", "_Recv", "_Send", "CollectiveAllToAllV2",
        "CollectiveAllToAllV3", "CollectiveAssignGroupV2", "CollectiveBcastRecv",
        "CollectiveBcastRecvV2", "CollectiveBcastSend", "CollectiveBcastSendV2",
        "CollectiveGather", "CollectiveGatherV2", "CollectiveInitializeCommunicator",
        "CollectivePermute", "CollectiveReduce", "CollectiveReduceScatterV2",
        "CollectiveReduceV2", "CollectiveReduceV3", "DataServiceDataset",
        "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4", "Recv",
        "RegisterDataset", "RegisterDatasetV2", "RemoteCall", "RpcCall",
        "RpcCheckStatus", "RpcClient", "RpcGetValue", "RpcServer", "RpcServerRegister",
        "RpcServerStart", "Send",
    ], "uses the network"),
}
