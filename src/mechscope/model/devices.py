"""Check a device, a dtype and a device_map before any work starts, with errors that say what to pass.

    check_device("cuda:7")                    # InputError: only 1 CUDA device(s) here (cuda:0..cuda:0)
    check_dtype("bf16", "cuda")               # "bfloat16", or InputError when the GPU cannot run it
    check_device_map("auto", "gpt2")          # InputError when the architecture cannot be split

A dtype is checked by running what a transformer forward needs (matmul, layer norm, softmax,
scaled-dot-product attention, GELU/SiLU) on a few numbers on the device: a device that raises, or
returns non-finite values, for that dtype is refused with the dtypes that work there.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mechscope.errors import InputError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
CANONICAL = ("float32", "bfloat16", "float16")
STRING_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def check_device(device: str) -> str:
    """`device` if torch can place tensors there; otherwise an InputError naming the devices there are."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device!r} is not a device name: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InputError(f"--device {device!r}: no CUDA device is available here; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise InputError(f"--device {device!r}: only {n} CUDA device(s) here (cuda:0..cuda:{n - 1})")
        return device
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"--device {device!r}: MPS is not available here; use --device cpu")
        return device
    raise InputError(f"--device {device!r}: mechscope runs on cpu, cuda or mps")


def canonical_dtype(dtype: str) -> str:
    """"bf16" -> "bfloat16" (and so on); an InputError for a dtype mechscope does not run in."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r} is not supported: use one of {', '.join(CANONICAL)} (or fp32, bf16, fp16)")
    return str(DTYPES[dtype]).replace("torch.", "")


def check_dtype(dtype: str, device: str = "cpu") -> str:
    """The canonical dtype name, once a transformer's basic ops ran in it on `device` and gave finite
    numbers; an InputError naming the dtypes that work there otherwise."""
    name = canonical_dtype(dtype)
    problem = dtype_problem(DTYPES[name], device)
    if problem:
        works = [d for d in CANONICAL if d != name and dtype_problem(DTYPES[d], device) is None]
        raise InputError(f"--dtype {name} cannot run on {device}: {problem}; use --dtype "
                         f"{' or '.join(works) or 'float32'} there")
    return name


def dtype_problem(dtype: torch.dtype, device: str) -> str | None:
    """Why `device` cannot run a transformer forward in `dtype`, or None when it can."""
    dev = torch.device(device)
    if dev.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "this GPU has no native bfloat16 (compute capability < 8.0)"
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 8, generator=gen).to(device=dev, dtype=dtype)
        w = torch.randn(8, 8, generator=gen).to(device=dev, dtype=dtype)
        h = torch.nn.functional.layer_norm(x @ w, (8,))
        q = h.view(2, 1, 4, 8)
        a = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        out = torch.softmax(torch.nn.functional.gelu(a) + torch.nn.functional.silu(a), dim=-1)
        if not bool(torch.isfinite(out.float()).all()):
            return "its basic ops returned non-finite values"
    except (RuntimeError, TypeError, NotImplementedError) as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return None


def parse_device_map(device_map: str | dict | None) -> str | dict | None:
    """A device_map as from_pretrained takes it: "auto"/"balanced"/"balanced_low_0"/"sequential", a
    dict {module name: device}, or a JSON object (inline or a file path) holding that dict."""
    if device_map is None or isinstance(device_map, dict):
        return device_map
    text = str(device_map).strip()
    if text in STRING_MAPS:
        return text
    if text.startswith("{"):
        source = text
    elif Path(text).is_file():
        source = Path(text).read_text(encoding="utf-8")
    else:
        raise InputError(f"--device-map {device_map!r}: use {', '.join(STRING_MAPS)}, a JSON object "
                         '{"module.name": "cuda:0", ...} or a file holding one')
    try:
        parsed = json.loads(source)
    except json.JSONDecodeError as err:
        raise InputError(f"--device-map is not valid JSON: {err}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise InputError("--device-map JSON must be a non-empty object {module name: device}")
    return parsed


def check_device_map(device_map: str | dict | None, hf_class: type | None = None) -> str | dict | None:
    """The parsed device_map once accelerate is installed, every device in it exists, and (for a
    string map, which splits the model by its _no_split_modules) the architecture can be split."""
    device_map = parse_device_map(device_map)
    if device_map is None:
        return None
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise InputError("--device-map needs accelerate: pip install 'mechscope[multi-device]' "
                         "(or pip install accelerate)") from None
    if isinstance(device_map, dict):
        for module, where in device_map.items():
            if where in ("disk",):
                raise InputError(f"--device-map puts {module!r} on disk: mechscope keeps weights in memory; "
                                 "use a device (cpu, cuda:N)")
            check_device(f"cuda:{where}" if isinstance(where, int) else str(where))
    elif hf_class is not None and not getattr(hf_class, "_no_split_modules", None):
        raise InputError(f"--device-map {device_map}: {hf_class.__name__} does not say which modules must stay "
                         "on one device (_no_split_modules), so it cannot be split automatically; pass an "
                         "explicit JSON map {module name: device}, or load it on one --device")
    return device_map
