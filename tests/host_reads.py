"""Which aten ops a block dispatches, and which of them read device memory back to the host.

Shared by the tests that prove the losses and hooks never synchronise with
the device: an op whose result needs a value from the device (``.item()``,
an output shape that depends on the data) is a host read.
"""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ``x[mask]`` with a bool mask: its output shape depends on the data.
BOOLEAN_MASK_INDEXING = 'boolean-mask indexing'

#: Ops (and the pseudo-op above) that read device memory on the host.
HOST_READS = frozenset({'aten._local_scalar_dense', 'aten.nonzero', 'aten.masked_select',
                        'aten.unique', 'aten._unique2', 'aten.bincount', 'aten.item',
                        BOOLEAN_MASK_INDEXING})


class OpRecorder(TorchDispatchMode):
    """Record the name of every aten op dispatched inside the block.

    ``ops`` lists them in order (a bool-mask index also adds
    :data:`BOOLEAN_MASK_INDEXING`); ``host_reads`` those in :data:`HOST_READS`.
    """

    def __init__(self):
        super().__init__()
        self.ops = []

    @property
    def host_reads(self):
        return [op for op in self.ops if op in HOST_READS]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.ops.append(name)
        if name.startswith('aten.index') and len(args) > 1 and isinstance(args[1], (list, tuple)):
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
                self.ops.append(BOOLEAN_MASK_INDEXING)
        return func(*args, **(kwargs or {}))


#: Tensor methods that copy a tensor to the host.
HOST_COPY_METHODS = ('cpu', 'item', 'tolist', 'numpy')


def record_host_copies(monkeypatch) -> list:
    """Patch the :data:`HOST_COPY_METHODS` of ``torch.Tensor`` to append their name to the
    returned list on every call (``monkeypatch.undo()`` restores them)."""
    copies = []
    for method in HOST_COPY_METHODS:
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _name=method, **kwargs):
            copies.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, method, counted)
    return copies
