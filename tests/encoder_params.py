"""The parameter count of a BERT encoder, as a formula the tests state once."""


def expected_parameter_count(c):
    """Encoder + pooler parameters of a BertConfig, counted by hand."""
    e, h, i = c.effective_embedding_size, c.hidden_size, c.intermediate_size
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * e
    embeddings += 2 * e  # LayerNorm
    if e != h:
        embeddings += e * h + h  # factorisation projection
    block = (4 * (h * h + h)      # query, key, value, attention output
             + 2 * h              # attention LayerNorm
             + h * i + i + i * h + h  # feed-forward
             + 2 * h)             # output LayerNorm
    blocks = block * (1 if c.share_layers else c.num_hidden_layers)
    return embeddings + blocks + h * h + h  # + pooler
