"""LRA Text without a sequence model: logistic regression on log(1 + count) of byte unigrams and bigrams of
the same inputs the runs train and test on (the first 1000 bytes; the runs' validation hold-out of 2,000
training reviews and their 5,000-review test sample, seed 0). It checks that the loaded texts and labels are
aligned, and says what the first 1000 bytes hold for a model that has not yet learnt to read.

    python results/lra/text-baseline/bow.py [IMDB_DIR [CACHE_DIR]]   # defaults: ../shared/data/lra/imdb runs/lra-data
"""

import sys
import warnings

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from tokenmix.lra.data import load_task_splits
from tokenmix.lra.splits import DataOptions
from tokenmix.lra.tasks import BYTE_VOCAB_SIZE, get_lra_task


def features(ids: np.ndarray) -> sparse.csr_matrix:
    """log(1 + count) of every byte id and every pair of neighbouring ids (padding included: it encodes length)."""
    ids = ids.astype(np.int64)
    n, length = ids.shape
    v = BYTE_VOCAB_SIZE
    unigrams = sparse.csr_matrix((np.ones(ids.size), (np.repeat(np.arange(n), length), ids.ravel())), shape=(n, v))
    pairs = ids[:, :-1] * v + ids[:, 1:]
    bigrams = sparse.csr_matrix((np.ones(pairs.size), (np.repeat(np.arange(n), length - 1), pairs.ravel())),
                                shape=(n, v * v))
    x = sparse.hstack([unigrams, bigrams]).tocsr()
    x.data = np.log1p(x.data)
    return x


def main() -> None:
    imdb = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/lra/imdb"
    cache = sys.argv[2] if len(sys.argv) > 2 else "runs/lra-data"
    task = get_lra_task("text")
    data = load_task_splits(task, DataOptions(data_dir=imdb, cache_dir=cache, seed=0, pooling=task.pooling,
                                              eval_size=5000, max_len=1000))
    for name, split in data.items():
        print(f"{name}: {split.input_ids.shape[0]} reviews x {split.input_ids.shape[1]} tokens, "
              f"labels {np.bincount(split.labels).tolist()}")
    warnings.filterwarnings("ignore", message="lbfgs failed to converge")
    model = LogisticRegression(C=0.5, max_iter=300).fit(features(data["train"].input_ids), data["train"].labels)
    for name in ("val", "test"):
        accuracy = (model.predict(features(data[name].input_ids)) == data[name].labels).mean()
        print(f"{name} accuracy: {100 * accuracy:.2f}%")


if __name__ == "__main__":
    main()
