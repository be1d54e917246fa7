"""TF Hub's BERT preprocessing, rebuilt with the code that made it, as the tokenizer's oracle."""

from pathlib import Path

import numpy as np


def build(vocab_file: Path, do_lower_case: bool, out_dir: Path, seq_length: int = 128):
    """Exports and loads the preprocessing SavedModel (as ``bert_*_preprocess`` were made)."""
    import tensorflow as tf

    from fixtures.tutorial import preprocessing

    return tf.saved_model.load(str(preprocessing(vocab_file, do_lower_case, out_dir, seq_length)))


def run(pre, texts, pairs=None, seq_length=128) -> dict:
    import tensorflow as tf

    if pairs is None and seq_length == 128:
        out = pre(tf.constant(texts))
    else:
        segs = [pre.tokenize(tf.constant(texts))]
        if pairs is not None:
            segs.append(pre.tokenize(tf.constant(pairs)))
        out = pre.bert_pack_inputs(segs, seq_length=tf.constant(seq_length))
    return {k: np.asarray(v.numpy()) for k, v in out.items()}
