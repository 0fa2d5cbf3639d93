"""Keep one claim from changing the model the next claim runs on (weights, train/eval mode, grad mode)."""

from __future__ import annotations

import hashlib


class ModelGuard:
    """Undo what a claim may leave changed on the shared model: weights, train/eval mode, grad mode.

    Claims should leave the model as they found it (a layer-swap experiment swaps back); this
    catches the ones that do not, so one claim cannot silently change the next one's numbers.
    Weights are compared by a digest of each tensor's bytes (NaN-safe: a NaN weight equals itself
    bit for bit); for models up to SNAPSHOT_MAX_PARAMS a CPU copy taken at the start restores them.
    """

    SNAPSHOT_MAX_PARAMS = 300_000_000

    def __init__(self, model):
        import torch

        self.hf = getattr(model, "hf_model", None)
        if not isinstance(self.hf, torch.nn.Module):
            self.hf = None
            return
        self.training = self.hf.training
        self.grad_enabled = torch.is_grad_enabled()
        self.fingerprint = self._fingerprint()
        self.snapshot = None
        if sum(p.numel() for p in self.hf.parameters()) <= self.SNAPSHOT_MAX_PARAMS:
            self.snapshot = {k: v.detach().to("cpu", copy=True) for k, v in self.hf.state_dict().items()}

    def _fingerprint(self) -> dict[str, str]:
        return {k: tensor_digest(v) for k, v in self.hf.state_dict().items()}

    def check_and_restore(self) -> str | None:
        """None when the model is as it was; else what changed (restored when possible)."""
        import torch

        if self.hf is None:
            return None
        torch.set_grad_enabled(self.grad_enabled)
        self.hf.train(self.training)
        for p in self.hf.parameters():
            p.grad = None
        if self._fingerprint() == self.fingerprint:
            return None
        if self.snapshot is not None:
            try:
                self.hf.load_state_dict(self.snapshot, strict=True)
                if self._fingerprint() == self.fingerprint:
                    return "the experiment left the model's weights changed; mechscope restored them"
            except Exception:  # noqa: BLE001 - reported below
                pass
        self.fingerprint = self._fingerprint()  # blame this claim only, not every later one
        return ("the experiment changed the model's weights and they could not be restored: "
                "the claims after it ran on a changed model")


def tensor_digest(tensor) -> str:
    """A digest of a tensor's bytes, dtype and shape: equal for bit-identical tensors, NaN included."""
    import torch

    t = tensor.detach().to("cpu").contiguous()
    h = hashlib.blake2b(f"{t.dtype}{tuple(t.shape)}".encode(), digest_size=16)
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
