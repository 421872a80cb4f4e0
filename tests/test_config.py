import pytest

from attnrec_tf.config import PRESETS, Config, flag, preset
from attnrec_tf.errors import ConfigError


def test_presets_validate():
    for name in PRESETS:
        assert isinstance(preset(name), Config)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"max_len": 0}, "--max-len must be a positive integer"),
        ({"batch_size": -3}, "--batch-size must be a positive integer"),
        ({"embedding_dim": 0}, "--embedding-dim"),
        ({"dropout": 1.0}, r"--dropout must be in \[0, 1\)"),
        ({"learning_rate": 0.0}, "--learning-rate must be positive"),
        ({"variant": "lstm"}, "--variant must be one of"),
        ({"embedding_dim": 10, "num_heads": 3}, "divisible by --num-heads"),
        ({"min_user_interactions": -1}, "--min-user-interactions"),
    ],
)
def test_bad_values_name_the_flag(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**changes)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="--preset must be one of"):
        preset("nope")


def test_flag_names():
    assert flag("max_len") == "--max-len"


def test_ml1m_preset_is_the_sasrec_recipe_within_30_minutes():
    sasrec, ml1m = preset("sasrec"), preset("ml-1m")
    assert ml1m.variant == "sasrec" and ml1m.lr_schedule == "cosine"
    assert 0 < ml1m.time_budget <= 1800
    same = ("max_len", "num_blocks", "num_heads", "dropout", "embedding_dim", "block_norm")
    assert all(getattr(ml1m, name) == getattr(sasrec, name) for name in same)


def test_ml1m_pooling_preset_keeps_the_step_benchmark_math():
    old = preset("ml-1m-pooling")
    assert (old.variant, old.max_len, old.all_windows) == ("self-attention", 200, True)
