"""FSDP on CPU: a GPT-2-small-size model (12 layers, d_model 768, vocabulary 50,257, random weights)
sharded across 2 gloo ranks against the same model in one process.

Work: attribution patching (resid_pre and z, every layer) and EAP edge scores on 8 random clean /
corrupt prompt pairs of 16 tokens (logit difference at the last position). Recorded: seconds of
each (one run; CPU, OMP_NUM_THREADS=1 per rank), the parameters each rank holds (local shards of
the blocks, the root unit whole), and the largest difference of the sharded results from the
1-process ones relative to the largest value. This measures correctness and memory per rank on
CPU, not GPU speed (gloo all-gathers through host memory).

    python bench/bench_fsdp.py          -> bench/results/fsdp.json   (launches the 2-rank run itself)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("TQDM_DISABLE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_hooked import _NoTokenizer, gpt2_small  # noqa: E402
from harness import write  # noqa: E402
from mechscope import HookedModel  # noqa: E402
from mechscope import distributed as ddp  # noqa: E402
from mechscope.circuits import CircuitSetup, attribute  # noqa: E402
from mechscope.model.sharding import shard_across_ranks  # noqa: E402
from mechscope.patching.attribution import attribution_patching  # noqa: E402
from mechscope.tasks.base import Task  # noqa: E402


def make_task(n: int = 8, seq: int = 16) -> Task:
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (n, seq), generator=gen)
    corrupt = clean.clone()
    corrupt[:, [3, seq // 2]] = torch.randint(0, 50257, (n, 2), generator=gen)
    return Task(name="bench", clean_tokens=clean, corrupt_tokens=corrupt,
                answer_ids=torch.randint(0, 50257, (n,), generator=gen),
                wrong_ids=torch.randint(0, 50257, (n,), generator=gen))


def held(module: torch.nn.Module) -> int:
    """Parameters this rank holds for `module` (local shards of sharded ones)."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in module.parameters())


def worker(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    model = HookedModel(gpt2_small(12, 768), _NoTokenizer())
    n_blocks = held(model.structure.layers)
    if ddp.is_distributed():
        shard_across_ranks(model)
    task = make_task()
    start = time.perf_counter()
    attr = attribution_patching(model, task, sites=("resid_pre", "z"))
    t_attr = time.perf_counter() - start
    start = time.perf_counter()
    eap = attribute(CircuitSetup.from_task(model, task), "eap")
    t_eap = time.perf_counter() - start
    out = {"ranks": ddp.world_size(), "block_params": n_blocks, "block_params_held": held(model.structure.layers),
           "params_held_after_run": held(model.hf_model), "attribution_s": t_attr, "eap_s": t_eap,
           "clean_metric": attr.clean_metric, "corrupt_metric": attr.corrupt_metric,
           "attribution": {s: v.flatten().tolist() for s, v in attr.values.items()}, "eap": eap.vector.tolist()}
    if ddp.rank() == 0:
        Path(out_path).write_text(json.dumps(out))
    ddp.shutdown()


def _launch(ranks: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    subprocess.run([sys.executable, *launcher, __file__, "--worker", str(out)], env=env, check=True)
    return json.loads(out.read_text())


def _rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) / max(abs(x) for x in a)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one, two = _launch(1, Path(tmp) / "one.json"), _launch(2, Path(tmp) / "two.json")
    rel = {f"attribution_{s}": _rel(one["attribution"][s], two["attribution"][s]) for s in one["attribution"]}
    rel["eap"] = _rel(one["eap"], two["eap"])
    runs = {name: {k: v for k, v in r.items() if k not in ("attribution", "eap")} for name, r in
            (("one_process", one), ("two_ranks_sharded", two))}
    path = write("fsdp", {"model": "GPT-2-small shape, random init (12 layers, d_model 768, vocab 50257)",
                          "work": "attribution patching (resid_pre, z) and EAP, 8 prompt pairs x 16 tokens",
                          "runs": runs, "max_rel_diff_sharded_vs_one": rel})
    print(path, json.dumps(runs, indent=1), rel)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(sys.argv[sys.argv.index("--worker") + 1])
    else:
        main()
