"""Keys/values of many samples in one preallocated pool, fed to a forward pass without copying the past.

The pool is [layers, 2 (key, value), slots, kv_heads, columns, head_dim]; sample s owns one slot and
its tokens sit at columns [0, length[s]). A forward over some samples sees their slots' columns
[0, width + room): each row's past at [0, past), masked holes up to `width` (the longest past), and
the new tokens written by the attention layers at [width, width + room). `commit` then moves each
row's new tokens down to follow its past. When the rows are consecutive slots the forward works on a
view of the pool itself, so the cost of a call grows with the new tokens, not with the cached ones.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicLayer


class _BufferLayer(DynamicLayer):
    """One layer's view of a batch buffer: the past is already there, new tokens go after it."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, past: int):
        super().__init__()
        self._buffer = (keys, values)
        self.keys, self.values = keys[:, :, :past], values[:, :, :past]
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = self._buffer
        past, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
        keys[:, :, past:end] = key_states
        values[:, :, past:end] = value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values


def _per_token(buffer: torch.Tensor) -> torch.Tensor:
    return buffer.permute(2, 4, 0, 1, 3, 5)  # [slots, columns, layers, 2, heads, dim]


def _spans(rows: Sequence[int], starts: Sequence[int], lengths: Sequence[int], device: torch.device):
    """(row, column) of every token when row rows[i] holds lengths[i] tokens from column starts[i]."""
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    row = torch.repeat_interleave(torch.tensor(rows, dtype=torch.long), lengths_t)
    first = torch.repeat_interleave(torch.cumsum(lengths_t, 0) - lengths_t, lengths_t)
    col = (
        torch.arange(int(lengths_t.sum())) - first + torch.repeat_interleave(torch.tensor(starts), lengths_t)
    )
    return row.to(device), col.to(device)


class KVPool:
    """The pool and its bookkeeping: which slot each sample key owns and how many tokens it holds."""

    def __init__(self, shape: tuple[int, int, int], dtype: torch.dtype, device: torch.device, columns: int):
        self.layers, self.heads, self.dim = shape
        self.dtype, self.device = dtype, device
        # Zeros: masked columns still enter the attention matmul (with weight 0), so they must not be NaN.
        self.buffer = torch.zeros(
            self.layers, 2, 0, self.heads, columns, self.dim, dtype=dtype, device=device
        )
        self.lengths: list[int] = []
        self._slot: dict[str, int] = {}
        self._free: list[int] = []

    def length(self, key: str) -> int:
        slot = self._slot.get(key)
        return 0 if slot is None else self.lengths[slot]

    def crop(self, key: str, length: int) -> None:
        if key in self._slot:
            slot = self._slot[key]
            self.lengths[slot] = min(self.lengths[slot], length)

    def release(self, key: str) -> None:
        slot = self._slot.pop(key, None)
        if slot is not None:
            self.lengths[slot] = 0
            self._free.append(slot)

    def slot(self, key: str) -> int:
        if key not in self._slot:
            if not self._free:
                self._grow(slots=max(1, 2 * len(self.lengths)), columns=self.buffer.shape[4])
            self._slot[key] = self._free.pop()
        return self._slot[key]

    def _grow(self, slots: int, columns: int) -> None:
        """Reallocate bigger (callers grow geometrically), so growth is rare and its copy amortized."""
        old = self.buffer
        self.buffer = torch.zeros(
            self.layers, 2, slots, self.heads, columns, self.dim, dtype=self.dtype, device=self.device
        )
        self.buffer[:, :, : old.shape[2], :, : old.shape[4]] = old
        self._free.extend(range(slots - 1, len(self.lengths) - 1, -1))  # lowest slots handed out first
        self.lengths.extend([0] * (slots - len(self.lengths)))

    def batch(self, slots: Sequence[int], room: int) -> tuple[Cache, "_Batch"]:
        """A Cache over `slots` (rows in this order), `room` columns for new tokens after the longest past."""
        past = [self.lengths[s] for s in slots]
        width = max(past)
        if width + room > self.buffer.shape[4]:
            self._grow(slots=self.buffer.shape[2], columns=max(width + room, 3 * self.buffer.shape[4] // 2))
        if list(slots) == list(range(slots[0], slots[0] + len(slots))):
            view = self.buffer[:, :, slots[0] : slots[0] + len(slots), :, : width + room]
        else:
            index = torch.tensor(slots, device=self.device)
            view = self.buffer[:, :, :, :, : width + room].index_select(2, index)
        cache = Cache(layers=[_BufferLayer(view[i, 0], view[i, 1], width) for i in range(self.layers)])
        return cache, _Batch(list(slots), past, width, view)

    def commit(self, batch: "_Batch", new: Sequence[int]) -> None:
        """Keep new[i] new tokens of row i: move them from column `width` to right after its past."""
        rows = range(len(batch.slots))
        r, c = _spans(rows, [batch.width] * len(new), new, self.device)
        tokens = _per_token(batch.view)[r, c]  # a copy, so moving within the pool's own view is safe
        s, c = _spans(batch.slots, batch.past, new, self.device)
        _per_token(self.buffer)[s, c] = tokens
        for slot, p, n in zip(batch.slots, batch.past, new, strict=True):
            self.lengths[slot] = p + n


@dataclass
class _Batch:
    slots: list[int]
    past: list[int]  # cached tokens per row
    width: int  # the longest past: where the new tokens start
    view: torch.Tensor  # the pool's columns for these rows (a view of the pool, or a gathered copy)
