"""Prints the README's commands that work on `runs/latest`, one a line, for `.ci/run` to run.

    python3 .ci/readme_commands.py README.md     # e.g. python -m attnrec_tf.recommend ...

Standard library only. The commands are those of the ```bash blocks that name `runs/latest`
and start with `python -m attnrec_tf.`; `.ci/run` runs each in the `make train` venv after
`make train`, so the README's recommend examples are run on the run it made.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def commands(text: str) -> list[str]:
    """The README's `python -m attnrec_tf.` commands on runs/latest, continuations joined."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("python -m attnrec_tf.") and "runs/latest" in line:
                found.append(line)
    return found


if __name__ == "__main__":
    found = commands(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if not found:
        sys.exit("readme_commands: the README has no command on runs/latest")
    print("\n".join(found))
