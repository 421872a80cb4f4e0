"""Data layer: sources -> interactions -> vocabulary -> sequences -> split (numpy only).

`pipeline.py` (tf.data) is the only module here that imports TensorFlow; it is not imported by
this package, so `import attnrec_tf.data` stays light.
"""

from attnrec_tf.data.download import KNOWN_DATASETS, fetch
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.data.item_features import item_feature_matrix
from attnrec_tf.data.loaded import Interactions, ItemMetadata, LoadedData
from attnrec_tf.data.movielens import detect_movielens, read_movielens
from attnrec_tf.data.sequences import (
    FilterStats,
    LeaveOneOutSplit,
    UserSequences,
    build_sequences,
    leave_one_out,
)
from attnrec_tf.data.sources import load
from attnrec_tf.data.synthetic import generate as generate_synthetic
from attnrec_tf.data.vocabulary import Vocabulary

__all__ = [
    "KNOWN_DATASETS",
    "FilterStats",
    "Interactions",
    "ItemMetadata",
    "LeaveOneOutSplit",
    "LoadedData",
    "UserSequences",
    "Vocabulary",
    "build_sequences",
    "detect_movielens",
    "fetch",
    "generate_synthetic",
    "item_feature_matrix",
    "leave_one_out",
    "load",
    "read_interaction_file",
    "read_movielens",
]
