"""`mechscope info` in a subprocess: --json output, and a bad path is one line on stderr (exit 2), no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import STORIES260K


def test_cli_info_json(tmp_path):
    out = tmp_path / "info.json"
    proc = subprocess.run([sys.executable, "-m", "mechscope", "info", str(STORIES260K), "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["config"]["n_kv_heads"] == 4 and "blocks.4.attn.hook_pattern" in data["hook_names"]


def test_cli_bad_path_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mechscope", "info", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: no model directory" in proc.stderr and "Traceback" not in proc.stderr
