import argparse
import ast
import dataclasses
from pathlib import Path

import pytest

from attnrec_tf.config import PRESETS, Config, flag, option_fields, option_type, preset
from attnrec_tf.errors import ConfigError
from attnrec_tf.run_options import RunOptions, option_names, resolve


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
    assert ml1m.context_crops == 3 and sasrec.context_crops == 0  # the short-history recipe
    assert ml1m.skip_first_picks == 5 and sasrec.skip_first_picks == 0
    assert ml1m.relative_position_bias and not sasrec.relative_position_bias


def test_ml1m_pooling_preset_keeps_the_step_benchmark_math():
    old = preset("ml-1m-pooling")
    assert (old.variant, old.max_len, old.all_windows) == ("self-attention", 200, True)


# Every option declared once: the train CLI's flags and `fit`'s keywords come from the fields.

FLAGS_BEFORE_ISSUE_20 = """
--data --cache-dir --user-col --item-col --time-col --feature-cols --delimiter --min-rating
--rating-col --split --split-time --split-fraction --output-dir --preset --sampled-negatives
--export --no-export --model-name --tflite --eval-users --validation-users --resume --no-resume
--backup-every-steps --distribute --verbose --max-len --min-user-interactions
--min-item-interactions --variant --embedding-dim --attention-units --num-blocks --num-heads
--dropout --attention-dropout --position-embedding --no-position-embedding --item-features
--no-item-features --embedding-init-std --embedding-scale --no-embedding-scale
--absolute-positions --no-absolute-positions --dense-init-std --block-norm --concat-last
--no-concat-last --loss --num-negatives --lazy-adam --no-lazy-adam --epochs --batch-size
--learning-rate --lr-schedule --weight-decay --patience --time-budget --seed --exclude-history
--no-exclude-history --top-k --jit-compile --no-jit-compile --all-windows --no-all-windows
--length-buckets --no-length-buckets
""".split()
FLAGS_ADDED_SINCE = [
    "--context-crops",
    "--steps-per-epoch",
    "--stream",
    "--no-stream",
    "--block",
    "--relative-position-bias",
    "--no-relative-position-bias",
    "--skip-first-picks",
]


def _parser_flags() -> dict[str, argparse.Action]:
    from attnrec_tf import train

    parser = train.build_parser()
    return {name: action for action in parser._actions for name in action.option_strings}


def _fields() -> list[tuple[type, dataclasses.Field]]:
    return [(cls, f) for cls in (RunOptions, Config) for f in option_fields(cls)]


def test_the_flags_are_the_fields():
    expected = set()
    for cls, field in _fields():
        expected.add(flag(field.name))
        if option_type(cls, field.name) is bool:
            expected.add("--no-" + field.name.replace("_", "-"))
    assert set(_parser_flags()) - {"-h", "--help"} == expected
    assert sorted(expected) == sorted(FLAGS_BEFORE_ISSUE_20 + FLAGS_ADDED_SINCE)  # none lost
    assert option_names() == {field.name for _, field in _fields()}


def test_each_flag_has_the_fields_type_help_and_default():
    actions = _parser_flags()
    for cls, field in _fields():
        action, kind = actions[flag(field.name)], option_type(cls, field.name)
        assert field.metadata["help"] and action.help.startswith(field.metadata["help"][:20])
        label = "preset default" if cls is Config else "default"
        shown = ",".join(field.default) if kind is tuple else field.default
        assert action.help.endswith(f"({label}: {shown})".replace("%", "%%")), field.name
        if kind is bool:
            assert isinstance(action, argparse.BooleanOptionalAction)
        else:
            assert action.type is (str if kind is tuple else kind), field.name
        assert action.default is argparse.SUPPRESS  # the defaults live in the dataclasses


def test_no_flag_given_is_the_default_run():
    from attnrec_tf import train

    given = vars(train.build_parser().parse_args([]))
    assert given == {}
    config, options = resolve(given)
    assert config == preset("default") == Config()
    assert options == RunOptions()
    assert options.tflite == ("float32", "float16", "dynamic_int8", "int8")
    assert options.output_dir == Path("runs/latest") and not options.tflite_given


def test_the_cli_and_the_api_give_the_same_values_and_errors(tmp_path, capsys):
    import attnrec_tf
    from attnrec_tf import train

    argv = ["--epochs", "3", "--feature-cols", "a,b", "--tflite", "int8", "--no-export"]
    argv += ["--cache-dir", "c", "--preset", "sasrec", "--no-item-features"]
    cli = resolve(vars(train.build_parser().parse_args(argv)))
    api = resolve({"epochs": 3, "feature_cols": ["a", "b"], "tflite": ["int8"], "export": False,
                   "cache_dir": "c", "preset": "sasrec", "item_features": False})  # fmt: skip
    assert cli == api
    assert api[1].tflite_given and api[1].cache_dir == Path("c") and api[0].max_len == 200
    for argv, keywords, message in [
        (["--max-len", "0"], {"max_len": 0}, "--max-len must be a positive integer, got 0"),
        (["--verbose", "1", "--eval-users", "-2"], {"eval_users": -2},
         "--eval-users must be >= 0, got -2"),
        (["--block-norm", "post"], {"block_norm": "post"},
         "--block-norm must be one of pre, sasrec, got 'post'"),
    ]:  # fmt: skip
        assert train.main([*argv, "--output-dir", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
        with pytest.raises(ConfigError) as error:
            attnrec_tf.fit(output_dir=tmp_path / "o", **keywords)
        assert str(error.value) == message


def test_the_api_names_an_unknown_keyword_and_the_closest_option(tmp_path):
    import attnrec_tf

    with pytest.raises(ConfigError, match="fit\\(\\) got an unknown option 'epoch'; did you mean"):
        attnrec_tf.fit(output_dir=tmp_path / "o", epoch=1)
    with pytest.raises(ConfigError, match="unknown option 'bogus'"):
        attnrec_tf.fit(epochs=1, bogus=3)
    with pytest.raises(ConfigError, match="unknown option 'tflite_given'"):
        attnrec_tf.fit(tflite_given=True)  # derived, not an option
    with pytest.raises(ConfigError, match="--distribute must be one of auto, none"):
        attnrec_tf.fit(distribute="everywhere")


def test_config_has_no_extra_and_its_dict_is_its_fields():
    assert set(Config().to_dict()) == {f.name for f in option_fields(Config)}
    assert [f.name for f in dataclasses.fields(Config)] == [f.name for f in option_fields(Config)]


def test_no_module_imports_the_train_cli():
    """`attnrec_tf.train` is the command line only: the API and the run logic live elsewhere."""
    package = Path(__file__).resolve().parents[1] / "attnrec_tf"
    importers = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "attnrec_tf":
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if "train" in names or "attnrec_tf.train" in names:
                importers.append(str(path.relative_to(package)))
    assert importers == []


def test_fit_shows_every_option_as_a_keyword_with_its_field_default():
    import inspect

    import attnrec_tf

    parameters = inspect.signature(attnrec_tf.fit).parameters
    assert list(parameters)[:3] == ["data", "output_dir", "preset"]
    assert set(parameters) == option_names()
    assert parameters["output_dir"].default == RunOptions.output_dir
    assert parameters["eval_users"].default == 0
    assert repr(parameters["epochs"].default) == "<the preset's>"  # Config: the preset decides
