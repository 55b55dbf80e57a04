"""A continuous-batching greedy decode engine for Qwen3-VL (MedMO) built from the model's own
modules: a static KV cache sized to the device, decode steps replayed as CUDA graphs, and a
scheduler that admits new requests into the running batch between decode steps.

Batch-1 decoding computes exactly what ``model.generate`` computes (same modules, same
kernels, the same attention call on the same keys), so greedy outputs match token for token.
"""

from .requests import CacheLimitError, EngineClosedError, EngineRequest, EngineResult
from .scheduler import ContinuousBatcher
from .step import DecodeStep

__all__ = [
    "CacheLimitError",
    "ContinuousBatcher",
    "DecodeStep",
    "EngineClosedError",
    "EngineRequest",
    "EngineResult",
]
