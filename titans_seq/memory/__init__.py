"""The neural long-term memory of Titans (Behrouz et al., 2025, §3.1-3.2, Eqs. 12-18).

- :func:`memory_scan`: the functional op, chunked and exact (fast path);
- :func:`memory_scan_reference`: the same op one token at a time (readable oracle);
- :class:`NeuralMemory`: the layer of §4.4 around the op, streamable.
"""

from .chunked import chunked_memory_scan, memory_scan
from .conv import CausalDepthwiseConv1d
from .layer import NeuralMemory, NeuralMemoryState, frozen_memory
from .mlp import memory_mlp
from .reference import memory_scan_reference
from .state import MemoryState

__all__ = ["CausalDepthwiseConv1d", "MemoryState", "NeuralMemory", "NeuralMemoryState",
           "chunked_memory_scan", "frozen_memory", "memory_mlp", "memory_scan", "memory_scan_reference"]
