"""Test helpers shared across folders (import these; never import tests.conftest): paths to the
shared test data, the real GPT-2 tokenizer, small random-init models of every adapted architecture,
and a launcher for scripts run alone or under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GPT2_TOKENIZER = SHARED / "tokenizers" / "gpt2"
STORIES260K = SHARED / "models" / "stories260K"


def run_on_ranks(args: Sequence[str | Path], ranks: int, *, timeout: int = 300, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` alone (ranks=1) or under `torchrun --standalone --nproc-per-node RANKS` (gloo, one thread per
    rank, this checkout's src first on the path, `env` added); asserts it exited 0 and returns it."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("WORLD_SIZE", None)
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    proc = subprocess.run([sys.executable, *launcher, *map(str, args)], env=full_env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def gpt2_tokenizer():
    from transformers import AutoTokenizer

    if not GPT2_TOKENIZER.exists():
        pytest.skip(f"GPT-2 tokenizer not found at {GPT2_TOKENIZER}")
    return AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER))


def small_hf_model(arch: str, *, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
                   n_ctx: int = 128, vocab: int = 50257):
    """A random-init HF causal LM of the given adapter architecture (fp32, eval mode)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(seed)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads, n_positions=n_ctx,
                                          vocab_size=vocab)).eval()
    if arch in ("neox", "neox-sequential"):
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            intermediate_size=4 * d_model, vocab_size=vocab, max_position_embeddings=n_ctx, rotary_pct=0.25,
            use_parallel_residual=arch == "neox")).eval()
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=n_heads // 2, intermediate_size=3 * d_model, vocab_size=vocab,
            max_position_embeddings=n_ctx)).eval()
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=n_heads // 2, intermediate_size=3 * d_model, vocab_size=vocab,
            max_position_embeddings=n_ctx)).eval()
    if arch == "gemma":
        from transformers import GemmaConfig, GemmaForCausalLM

        return GemmaForCausalLM(GemmaConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
            num_key_value_heads=1, head_dim=d_model // n_heads, intermediate_size=3 * d_model,
            vocab_size=vocab, max_position_embeddings=n_ctx)).eval()
    if arch == "gpt_neo":  # one global and one local (window 4) layer, as TinyStories / gpt-neo alternate them
        from transformers import GPTNeoConfig, GPTNeoForCausalLM

        return GPTNeoForCausalLM(GPTNeoConfig(
            num_layers=n_layers, hidden_size=d_model, num_heads=n_heads, vocab_size=vocab,
            max_position_embeddings=n_ctx, attention_types=[[["global", "local"], n_layers // 2]],
            window_size=4)).eval()
    llama_like = dict(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                      num_key_value_heads=n_heads // 2, intermediate_size=3 * d_model, vocab_size=vocab,
                      max_position_embeddings=n_ctx)
    if arch in ("gemma2", "gemma3"):  # a sliding (window 4) and a full layer; Gemma-2 soft-caps scores and logits
        from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

        config_cls, model_cls = ((Gemma2Config, Gemma2ForCausalLM) if arch == "gemma2"
                                 else (Gemma3TextConfig, Gemma3ForCausalLM))
        model = model_cls(config_cls(**llama_like, head_dim=d_model // n_heads, sliding_window=4,
                                     layer_types=["sliding_attention", "full_attention"] * (n_layers // 2)))
        _perturb_norms(model)
        return model.eval()
    if arch == "stablelm":  # partial rotary, LayerNorm, q/k/v biases
        from transformers import StableLmConfig, StableLmForCausalLM

        return StableLmForCausalLM(StableLmConfig(**llama_like, use_qkv_bias=True,
                                                  partial_rotary_factor=0.25)).eval()
    if arch == "phi3":  # fused qkv_proj and gate_up_proj
        from transformers import Phi3Config, Phi3ForCausalLM

        return Phi3ForCausalLM(Phi3Config(**llama_like, pad_token_id=0)).eval()
    if arch == "opt":
        from transformers import OPTConfig, OPTForCausalLM

        model = OPTForCausalLM(OPTConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                                         ffn_dim=4 * d_model, vocab_size=vocab, max_position_embeddings=n_ctx,
                                         word_embed_proj_dim=d_model, pad_token_id=1))
        _perturb_norms(model)
        return model.eval()
    if arch == "phi":  # parallel attention and MLP reading one norm, partial rotary, biased LM head
        from transformers import PhiConfig, PhiForCausalLM

        model = PhiForCausalLM(PhiConfig(**llama_like, partial_rotary_factor=0.5))
        _perturb_norms(model)
        return model.eval()
    if arch == "gptj":
        from transformers import GPTJConfig, GPTJForCausalLM

        model = GPTJForCausalLM(GPTJConfig(n_layer=n_layers, n_embd=d_model, n_head=n_heads, vocab_size=vocab,
                                           n_positions=n_ctx, rotary_dim=(d_model // n_heads) // 2))
        _perturb_norms(model)
        return model.eval()
    raise ValueError(arch)


def _perturb_norms(model) -> None:
    """Random norm weights: Gemma's zero-initialised (1 + w) norms would hide a norm read in the wrong place."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                p.normal_(0.0, 0.3)


ARCHES = ("gpt2", "neox", "neox-sequential", "llama", "qwen2", "gemma", "gpt_neo", "gemma2", "gemma3", "stablelm",
          "phi3", "opt", "phi", "gptj")


# -- headless Chromium through Playwright (browser tests and the README screenshot) --------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def find_chromium() -> str | None:
    """Debian's chromium ($MECHSCOPE_CHROMIUM overrides), or None; Playwright never downloads a browser here."""
    import os

    path = os.environ.get("MECHSCOPE_CHROMIUM", CHROMIUM)
    return path if Path(path).exists() else None


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return f"no chromium at {CHROMIUM} (run .ci/install-chromium.sh or set MECHSCOPE_CHROMIUM)"
    return None


class OfflinePage:
    """A Playwright page that records what a user would never see, with every network request refused.

    errors: uncaught exceptions, console errors (CSP violations among them) and refused requests;
    dialogs: the messages of JavaScript dialogs (an alert() that ran), each dismissed.
    """

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(f"exception: {err}"))
        self.page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                     if msg.type == "error" else None)
        self.page.on("dialog", self._dialog)
        self.page.route(lambda url: not url.startswith(("file:", "data:", "blob:", "about:")), self._refuse)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _refuse(self, route) -> None:
        self.errors.append(f"network request refused (the page must work offline): {route.request.url}")
        route.abort()

    def open(self, path: Path) -> OfflinePage:
        self.page.goto(Path(path).resolve().as_uri(), wait_until="load")
        return self

    def evaluate(self, expression: str):
        return self.page.evaluate(expression)

    def wait_for(self, expression: str, timeout: float = 60.0) -> bool:
        """True once the JavaScript expression is truthy, False after `timeout` seconds."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(expression, timeout=timeout * 1000)
            return True
        except PlaywrightTimeout:
            return False

    def settle(self, seconds: float = 0.3) -> None:
        """Let pending events (late errors, dialogs) arrive."""
        self.page.wait_for_timeout(seconds * 1000)


def micro_llama(vocab_size: int):
    """A 2-layer LLaMA of 2 heads of 16 (d_model 32) from the micro-test preset, seeded, eager attention
    (the enforcement terms read attention weights)."""
    from mechscope.organisms.presets import build_model, get_preset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(get_preset("micro-test", arch="llama", n_layer=2, d_model=32, n_head=2, vocab_size=vocab_size))
    model.set_attn_implementation("eager")
    return model
