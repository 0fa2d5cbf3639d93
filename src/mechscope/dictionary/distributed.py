"""Moved to `mechscope.distributed` (shared by every analysis); kept so existing imports still work."""

from mechscope.distributed import *  # noqa: F403
from mechscope.distributed import __all__  # noqa: F401
