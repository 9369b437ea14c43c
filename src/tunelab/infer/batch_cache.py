"""The key/value cache of the sequences decoded together: one left-padded `DynamicCache`.

Every row holds one sequence's keys and values, right-aligned: `[padding..., prompt, generated...]`,
so all rows append their next token at the same column and one forward pass serves them all. A row's
attention mask hides its padding and its position ids count only its own tokens, so each sequence
attends to exactly what it would attend to alone. Rows join (a prefilled sequence, its own batch-1
cache) and leave (finished, cancelled) between steps; membership changes rebuild the tensors once
(pad, concatenate / select, and drop the columns no row needs any more), plain steps only append.

Only plain `DynamicCache`s of `DynamicLayer`s can be stacked like this; sliding-window, hybrid or a
model's own cache classes cannot (`stackable`), and such models decode one sequence at a time.
"""

from __future__ import annotations

from typing import Any


def stackable(cache: Any) -> bool:
    """Whether a model's cache is one this module can pad and stack."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


class BatchCache:
    """The rows of the batch: the stacked cache, each row's real length, the inputs of the next step."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.lengths: list[int] = []  # real tokens cached per row

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return max(self.lengths, default=0)

    def _layers(self) -> list[tuple[Any, Any]]:
        return [(layer.keys, layer.values) for layer in self.cache.layers] if self.cache is not None else []

    def _rebuild(self, layers: list[tuple[Any, Any]]) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache(ddp_cache_data=layers) if layers else None

    def join(self, caches: list[tuple[Any, int]]) -> None:
        """Add sequences prefilled alone: (their batch-1 cache, their cached length), as the last rows."""
        import torch

        if not caches:
            return
        width = max(self.width, *(length for _, length in caches))
        groups = [(self._layers(), self.width)] if self.lengths else []
        groups += [([(layer.keys, layer.values) for layer in cache.layers], length) for cache, length in caches]
        stacked = []
        for index in range(len(groups[0][0])):
            keys = [_left_pad(group[index][0], width - group_width) for group, group_width in groups]
            values = [_left_pad(group[index][1], width - group_width) for group, group_width in groups]
            stacked.append((torch.cat(keys, dim=0), torch.cat(values, dim=0)))
        self.lengths += [length for _, length in caches]
        self._rebuild(stacked)

    def drop(self, rows: list[int]) -> None:
        """Remove rows (finished or cancelled sequences), then the leading columns only they needed."""
        import torch

        if not rows:
            return
        keep = [row for row in range(len(self.lengths)) if row not in set(rows)]
        old_width = self.width
        self.lengths = [self.lengths[row] for row in keep]
        if not keep:
            self.cache = None
            return
        index = torch.tensor(keep, device=self.cache.layers[0].keys.device)
        cut = old_width - self.width
        self._rebuild([(k.index_select(0, index)[..., cut:, :], v.index_select(0, index)[..., cut:, :])
                       for k, v in self._layers()])

    def step_inputs(self, tokens: list[int], device: Any) -> dict[str, Any]:
        """The forward arguments that feed each row its next token (`tokens`, one per row, in row order)."""
        import torch

        width = self.width
        lengths = torch.tensor(self.lengths, device=device)
        columns = torch.arange(width + 1, device=device)
        mask = (columns[None, :] >= (width - lengths)[:, None]).long()
        return {"input_ids": torch.tensor(tokens, device=device).view(-1, 1), "attention_mask": mask,
                "position_ids": lengths.view(-1, 1), "cache": self.cache, "use_cache": True}

    def advance(self) -> None:
        """Every row has one more cached token (the forward pass appended it)."""
        self.lengths = [length + 1 for length in self.lengths]


def _left_pad(tensor: Any, columns: int) -> Any:
    """[batch, heads, length, dim] with `columns` zero columns in front of the length axis."""
    import torch

    if columns == 0:
        return tensor
    shape = (*tensor.shape[:2], columns, tensor.shape[-1])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=-2)
