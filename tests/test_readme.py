"""The README's commands are real: each parses with its command, the log ones run.

The `--data events.csv` commands run here, as written, on a log this test writes. `make train`
and `make test` run in `.ci/run`, which also checks the README's table against the run's
report and runs the README's commands on `runs/latest` (`.ci/readme_commands.py`); the Python
example runs in `tests/test_recommend_all.py`. The MovieLens commands parse here and run in the
benchmarks. This test also keeps the README from naming a flag, module, make target, extra or
file that does not exist.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def shell_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


def test_shell_commands_joins_continuations_and_drops_comments() -> None:
    text = "```bash\n# note\nmake a   # why\npython -m x --a 1 \\\n    --b 2\n(cd d && npm ci)\n```"
    assert shell_commands(text) == ["make a", "python -m x --a 1      --b 2", "(cd d", "npm ci)"]


COMMANDS = shell_commands(README.read_text(encoding="utf-8"))
MODULE_COMMANDS = [c for c in COMMANDS if c.startswith("python -m attnrec_tf.")]


def test_the_readme_has_the_commands_it_promises() -> None:
    assert "make train" in " ".join(COMMANDS) and "make test" in " ".join(COMMANDS)
    assert len(MODULE_COMMANDS) >= 8


@pytest.mark.parametrize("command", MODULE_COMMANDS)
def test_each_module_command_parses_with_its_own_parser(command: str) -> None:
    words = shlex.split(command)
    module = importlib.import_module(words[2])
    if not hasattr(module, "build_parser"):
        module = importlib.import_module(words[2] + ".__main__")
    module.build_parser().parse_args(words[3:])  # an unknown flag or bad value exits 2


def test_make_targets_extras_and_scripts_exist() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    for command in COMMANDS:
        words = shlex.split(command.strip("()"))
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.M), command
        elif words[:2] == ["pip", "install"]:
            for extra in re.findall(r"\[([\w,-]+)\]", command)[0].split(","):
                assert extra in extras, command
        elif words[0] == "python" and words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), command
        elif words[0] == "cd":
            assert (ROOT / words[1]).is_dir(), command


def test_every_linked_file_exists() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)\)", text)
    assert links and [link for link in links if not (ROOT / link).exists()] == []


def _events_csv(path: Path, named: bool) -> None:
    """A log of 60 users, 40 items in 2024, ratings 1-5; `named`: the README's column names."""
    import numpy as np

    rng = np.random.default_rng(0)
    header = "uid,sku,ts" if named else "user_id,item_id,timestamp"
    lines = [header + ",category,brand,stars"]
    for user in range(60):
        items = rng.choice(40, size=12, replace=False)
        days = np.sort(rng.choice(300, size=12, replace=False))
        for item, day in zip(items, days, strict=True):
            month, mday = divmod(int(day), 28)
            stars = int(rng.integers(1, 6))
            day_text = f"2024-{month + 1:02d}-{mday + 1:02d}"
            lines.append(f"u{user},s{item},{day_text},c{item % 4},b{item % 3},{stars}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


EVENTS_COMMANDS = [c for c in MODULE_COMMANDS if " --data events.csv" in c]
TINY = "--epochs 1 --no-export --max-len 8 --embedding-dim 8 --attention-units 4 --verbose 0"


@pytest.mark.parametrize("command", EVENTS_COMMANDS)
def test_the_readme_commands_on_a_log_of_your_own_run(command: str, tmp_path: Path, monkeypatch):
    """Each `--data events.csv` command, as written, on a small log with those columns."""
    from attnrec_tf import train

    monkeypatch.chdir(tmp_path)
    _events_csv(tmp_path / "events.csv", named="--user-col uid" in command)
    words = shlex.split(command)[3:] + shlex.split(TINY) + ["--output-dir", "run"]
    assert train.main(words) == 0
    assert (tmp_path / "run" / "report.json").is_file()


def test_the_readme_runs_its_log_commands() -> None:
    assert len(EVENTS_COMMANDS) >= 3
