"""The CLI on a terminal without UTF-8 (LC_ALL=C with Python's UTF-8 mode off): package data is
read as UTF-8 and symbols it cannot print become '?', never a UnicodeError."""

from __future__ import annotations

import os
import subprocess
import sys

RUN_CLI = "import sys; from sonoedge.cli import main; sys.argv[0] = 'sonoedge'; main()"


def test_cli_runs_on_an_ascii_terminal() -> None:
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    env.pop("LANG", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
        env=env,
        capture_output=True,
        check=True,
    )
    assert probe.stdout.strip().lower() in (b"ascii", b"ansi_x3.4-1968")  # the setting holds
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "devices"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    assert b"Error" not in proc.stderr
    code = RUN_CLI.replace("main()", "_tolerate_legacy_terminals(); print('3 \\u00d7 4 \\u2192 x')")
    code = code.replace("import main", "import _tolerate_legacy_terminals")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == b"3 ? 4 ? x"
