"""The class vLLM loads: ``guidance.plugin:BudgetGuidance`` (``--logits-processors`` or the entry point).

vLLM 0.32 has two logits-processor interfaces and one entry-point group for
both: the legacy V1 runner (CPU) and Model Runner V2 (GPU, rejects V1
classes). ``BudgetGuidance`` subclasses both base classes and picks its body
from the constructor signature vLLM calls it with: ``(vllm_config, device,
is_pin_memory)`` is V1 (:class:`guidance.v1.GuidanceV1`),
``(vllm_config, req_states)`` is MRV2 (:class:`guidance.mrv2.GuidanceMRV2`).
So one installed entry point works under either runner.

Import cost: torch and two light vLLM interface modules; the adapters and the
tokenizer load inside ``__init__`` (worker side). ``validate_params`` (run in
the API process) needs only :mod:`guidance.params`.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

import torch
from vllm.v1.sample.logits_processor.interface import LogitsProcessor as V1LogitsProcessor
from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor as V2LogitsProcessor

from guidance.params import parse_extra_args

__all__ = ["BudgetGuidance"]

log = logging.getLogger("thinkgate.guidance")


class BudgetGuidance(V1LogitsProcessor, V2LogitsProcessor):
    """Decode-time budget guidance for requests whose ``vllm_xargs`` carry ``think_budget``.

    Requests without it are never touched, and a batch without any such
    request costs one dict/array check per step.
    """

    #: Live instances: the entry point and ``--logits-processors`` together would build two for the
    #: same engine and apply guidance twice; a second instance for the same config stays a no-op.
    _live: ClassVar[weakref.WeakSet] = weakref.WeakSet()

    def __init__(self, vllm_config: Any, *args: Any) -> None:
        if len(args) not in (1, 2):
            raise TypeError(f"BudgetGuidance: unexpected constructor arguments ({len(args) + 1} given)")
        self._config = vllm_config
        self._noop = any(other._config is vllm_config for other in BudgetGuidance._live)
        BudgetGuidance._live.add(self)
        self._v1: Any = None
        self._v2: Any = None
        if self._noop:
            # Return before building an adapter: no tokenizer, vocabulary or model for an inert instance.
            log.warning("thinkgate guidance: plugin loaded twice in one process; the extra instance is a no-op")
            return
        if len(args) == 2:  # V1: (device, is_pin_memory)
            from guidance.v1 import GuidanceV1

            self._v1 = GuidanceV1.from_vllm(vllm_config, args[0])
        else:  # MRV2: (req_states,)
            from guidance.mrv2 import GuidanceMRV2

            self._v2 = GuidanceMRV2.from_vllm(vllm_config, args[0])

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Raise ``ValueError`` (HTTP 400) for bad guidance ``vllm_xargs``; see :mod:`guidance.params`."""
        parse_extra_args(getattr(sampling_params, "extra_args", None))

    # V1 interface
    def is_argmax_invariant(self) -> bool:
        """False: guidance changes which token greedy decoding picks."""
        return False

    def update_state(self, batch_update: Any) -> None:
        """V1: track the persistent batch."""
        if not self._noop:
            self._v1.update_state(batch_update)

    # MRV2 interface
    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        """MRV2: (re)initialise slot ``req_idx``."""
        return False if self._noop else self._v2.add_request(req_idx, sampling_params)

    def apply_staged_writes(self) -> None:
        """MRV2: flush staged slots to the device."""
        if not self._noop:
            self._v2.apply_staged_writes()

    # Both
    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        """Reweight the batch's logits in place (V1: ``apply(logits)``; MRV2: ``apply(logits, ctx)``)."""
        if self._noop:
            return logits
        if self._v2 is not None:
            return self._v2.apply(logits, ctx)
        return self._v1.apply(logits)
