"""Memory of one training step, measured two ways, beside the formula.

* ``peak`` -- ``torch.profiler.profile(profile_memory=True)`` records every CPU
  allocation and free of the step with its time and size; the running sum in time
  order, starting at 0, peaks at what the step needed above what was live before it
  (parameters and optimizer state are live before, gradients are freed before it, so
  they count: the peak includes the gradients, the graph's saved tensors and the
  temporaries alive at that moment). Reading the records uses the profiler's
  ``kineto_results``, which is not a documented interface: where it is missing the
  peak is reported as None.
* ``saved`` -- ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor the
  forward pass keeps for the backward (custom ``autograd.Function`` s included);
  distinct storages are summed, the parameters' own storages left out. This is the
  measured counterpart of :meth:`rnnlab.bench.steps.Shape.kept_bytes`.
"""
from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from rnnlab.bench.steps import TrainingStep


def peak_bytes(step: TrainingStep) -> int | None:
    """Peak CPU bytes allocated during one ``step()`` above the level before it (module docstring)."""
    step()  # optimizer state and first-call allocations happen before, not inside, the measured step
    step.optimizer.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    try:
        records = [(event.start_ns(), event.nbytes()) for event in prof.profiler.kineto_results.events()
                   if event.name() == "[memory]"]
    except AttributeError:  # the profiler's internals changed
        return None
    live = peak = 0
    for _, nbytes in sorted(records):
        live += nbytes
        peak = max(peak, live)
    return peak


def saved_bytes(step: TrainingStep) -> int:
    """Bytes of the distinct non-parameter storages the forward pass saves for the backward."""
    parameters = {p.untyped_storage().data_ptr() for p in step.parameters}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(saved.values())
