"""The SavedModel's `explain` signature: the counterfactual explanation, served."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnrec_tf.counterfactual import counterfactuals
from attnrec_tf.evaluate import keras_score_fn


def test_explain_signature_equals_the_counterfactual_module(exported_run, trained_run):
    import tensorflow as tf

    version = Path(exported_run["artifacts"]["saved_model"]["path"])
    explain = tf.saved_model.load(str(version)).signatures["explain"]
    model, vocabulary = trained_run.model, trained_run.vocabulary
    score_fn = keras_score_fn(model, model.max_len)
    for history in trained_run.split.histories("test")[:6]:
        history = np.asarray(history, np.int64)
        candidates = np.array([3, 17, 40, 88])
        raw = lambda x: tf.constant([vocabulary.decode(x).tolist()], tf.int64)  # noqa: E731
        out = {
            k: v.numpy()[0]
            for k, v in explain(history=raw(history), candidates=raw(candidates)).items()
        }
        expected = counterfactuals(score_fn, history, candidates, max_len=model.max_len)
        removed = vocabulary.encode(out["removed"])
        window = history[-model.max_len :]
        assert removed[-len(window) :].tolist() == window.tolist()  # the window, oldest first
        np.testing.assert_array_equal(out["ranks"], expected.ranks)
        for item, drops, ranks in zip(
            expected.items, expected.drops, expected.ranks_without, strict=True
        ):
            position = int(np.flatnonzero(removed == item)[-1])
            np.testing.assert_allclose(out["score_drops"][position], drops, atol=1e-4)
            np.testing.assert_array_equal(out["ranks_without"][position], ranks)
        padding = removed == 0
        assert not out["score_drops"][padding].any()
        assert (out["ranks_without"][padding] == out["ranks"]).all()


def test_a_candidate_id_not_in_the_catalog_gets_no_drop(exported_run, trained_run):
    import tensorflow as tf

    version = Path(exported_run["artifacts"]["saved_model"]["path"])
    explain = tf.saved_model.load(str(version)).signatures["explain"]
    history = trained_run.split.histories("test")[0]
    raw = trained_run.vocabulary.decode(np.asarray(history, np.int64)).tolist()
    out = explain(
        history=tf.constant([raw], tf.int64), candidates=tf.constant([[10**12]], tf.int64)
    )
    assert out["score_drops"].shape[-1] == 1
    assert not out["score_drops"].numpy().any() and not out["ranks"].numpy().any()


def test_a_batch_of_short_and_long_histories_explains_each_as_alone(exported_run, trained_run):
    """The model call is cut to the batch's longest window; shorter rows keep their answer."""
    import tensorflow as tf

    version = Path(exported_run["artifacts"]["saved_model"]["path"])
    explain = tf.saved_model.load(str(version)).signatures["explain"]
    vocabulary = trained_run.vocabulary
    histories = trained_run.split.histories("test")
    short, long = histories[0][-3:], np.concatenate(histories[1:4])  # 3 and > max_len items
    width = len(long)
    batch = [np.pad(vocabulary.decode(h), (width - len(h), 0)).tolist() for h in (short, long)]
    candidates = tf.constant([vocabulary.decode(np.array([3, 17, 40])).tolist()] * 2, tf.int64)
    together = explain(history=tf.constant(batch, tf.int64), candidates=candidates)
    for row, history in enumerate(batch):
        alone = explain(history=tf.constant([history], tf.int64), candidates=candidates[:1])
        for name, value in alone.items():
            np.testing.assert_allclose(together[name].numpy()[row], value.numpy()[0], atol=1e-5)
