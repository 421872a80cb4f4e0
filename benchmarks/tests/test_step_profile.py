import numpy as np
import pytest

from attnrec_tf.config import Config
from attnrec_tf.data.pipeline import training_dataset
from attnrec_tf.model import build_model
from attnrec_tf.training.optimizer import make_optimizer
from benchmarks import step_profile


def test_useful_flops_count_real_positions_only_by_hand():
    model = build_model(Config(max_len=3, variant="sasrec", embedding_dim=8), 11, None)
    targets = np.array([[0, 1, 2]])
    # 2 real positions, attending to 1 and 2 real keys: per block 2*(4+2)*8*8 + 2*3*8 = 816,
    # two blocks 1632, logits 2*8*11 = 176; x2 FLOP per multiply-add, x3 forward+backward.
    assert step_profile.useful_gflop(model, targets) == pytest.approx(6 * 1808 / 1e9)
    padded = np.array([[0, 0, 0, 0, 1, 2]])
    assert step_profile.useful_gflop(model, padded) == step_profile.useful_gflop(model, targets)


def test_parts_add_up_to_the_step():
    config = Config(max_len=8, variant="self-attention", embedding_dim=8, attention_units=4)
    model = build_model(config, 21, None)
    model.compile(optimizer=make_optimizer(config, 4))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 21, (32, 8)).astype("int32")
    dataset = training_dataset(x, np.roll(x, -1, axis=1), batch_size=8, seed=0, bucket=True)
    profile = step_profile.profile_step(model, dataset, steps=2)
    assert list(profile["seconds"]) == list(step_profile.PARTS)
    assert all(seconds >= 0 for seconds in profile["seconds"].values())
    assert profile["step_seconds"] == pytest.approx(sum(profile["seconds"].values()))
    assert 0 < profile["real_positions"] <= profile["positions"] <= 8 * 8
    rows = step_profile.describe(profile, machine_gflops=100.0)
    assert len(rows) == len(step_profile.PARTS) + 1 and "of the machine's 100 GFLOP/s" in rows[-1]
