"""CLI runs do not print transformers' spurious "pass an attention_mask" warning; the library alone still would."""

from __future__ import annotations

import subprocess
import sys

from mechscope.cli.common import PADDING_WARNING
from tests.helpers import REPO

FORWARD = ("import torch, mechscope; m = mechscope.load('organism:tiny-gpt2', device='cpu'); "
           "t = torch.randint(1, 100, (2, 8)); t[:, 0] = m.hf_model.config.pad_token_id; m(t)")


def _stderr(code: str) -> str:
    env = {"PYTHONPATH": str(REPO / "src"), "MECHSCOPE_PROGRESS": "0", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_warning_is_filtered_in_cli_runs_and_only_there():
    assert PADDING_WARNING in _stderr(FORWARD)  # control: the forward pass does trigger it
    assert PADDING_WARNING not in _stderr("import mechscope.cli; " + FORWARD)


def test_other_transformers_warnings_still_show():
    code = ("import mechscope.cli; from transformers.utils import logging; "
            "logging.get_logger('transformers.modeling_utils').warning('another warning')")
    assert "another warning" in _stderr(code)
