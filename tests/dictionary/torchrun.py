"""Launch a test worker script under `torchrun --standalone --nproc-per-node N` (gloo, one thread each)."""

import os
import subprocess
import sys
from pathlib import Path


def run_torchrun(script: Path, *args: str, nproc: int = 2, timeout: int = 180) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(script),
           *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
