"""Attention for the Titans variants: persistent memory (Eq. 19), sliding-window attention
with a streaming key/value window (MAG, MAL), and the shared masked kernel (SDPA or
flex_attention)."""

from .attention import Attention, AttentionCache, SlidingWindowAttention
from .kernels import attend, visibility_mask
from .persistent import PersistentMemory

__all__ = ["Attention", "AttentionCache", "PersistentMemory", "SlidingWindowAttention",
           "attend", "visibility_mask"]
