"""Moved to `mechscope.figures` (analyses use it too, and must not import the report); kept as an alias."""

from mechscope.figures import safe_token, safe_tokens

__all__ = ["safe_token", "safe_tokens"]
