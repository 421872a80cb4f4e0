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
