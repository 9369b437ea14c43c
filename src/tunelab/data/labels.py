"""The label of a token that is not trained.

-100 is the value `torch.nn.functional.cross_entropy` ignores by default (`ignore_index`), so the
stock transformers loss and every tunelab loss skip the same positions: prompt tokens, padding and
the first token of each packed example.
"""

IGNORE_INDEX = -100
