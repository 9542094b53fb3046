"""Text tables that fit a terminal: columns wrapped into blocks, the key columns repeated in each.

A sweep or a comparison can have more columns than a terminal is wide. Rather than let
lines wrap (unreadable) or cut columns off (misleading), the columns are split into
blocks that each fit ``width`` characters, and each block repeats the key columns (the
metric, or the swept values) so every line can be read on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

WIDTH = 100
"""Characters per line: a terminal of 100 columns shows every table without wrapping."""
GAP = "  "


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def render(frame: pd.DataFrame, keys: Sequence[str], width: int = WIDTH) -> str:
    """``frame`` as text: ``keys`` left-aligned in every block, the other columns right-aligned.

    Every line is at most ``width`` characters; a cell wider than a whole line (it never
    happens with qsim's tables) is shortened with an ellipsis rather than break the rule.
    """
    columns = [str(c) for c in frame.columns]
    cells = {c: [_cell(v) for v in frame[column]] for c, column in zip(columns, frame.columns, strict=True)}
    widths = {c: max([len(c), *(len(v) for v in cells[c])]) for c in columns}
    key_names = [str(k) for k in keys]
    key_width = sum(widths[k] for k in key_names) + len(GAP) * len(key_names)
    if key_width > width // 2:  # very long keys: shorten them so values still fit beside them
        share = max(8, (width // 2) // max(1, len(key_names)) - len(GAP))
        for k in key_names:
            cells[k] = [_shorten(v, share) for v in cells[k]]
            widths[k] = min(widths[k], share)
        key_width = sum(widths[k] for k in key_names) + len(GAP) * len(key_names)
    room = width - key_width
    for c in columns:
        if c not in key_names and widths[c] > room:
            cells[c] = [_shorten(v, room) for v in cells[c]]
            widths[c] = room
    blocks: list[list[str]] = [[]]
    used = 0
    for c in (c for c in columns if c not in key_names):
        if blocks[-1] and used + widths[c] + len(GAP) > room:
            blocks.append([])
            used = 0
        blocks[-1].append(c)
        used += widths[c] + len(GAP)
    rendered = [_block(key_names, block, cells, widths, len(frame)) for block in blocks]
    return "\n\n".join(rendered)


def _block(keys: list[str], values: list[str], cells: dict[str, list[str]], widths: dict[str, int],
           rows: int) -> str:
    def line(texts: dict[str, str]) -> str:
        left = GAP.join(_shorten(texts[k], widths[k]).ljust(widths[k]) for k in keys)
        right = GAP.join(_shorten(texts[c], widths[c]).rjust(widths[c]) for c in values)
        return (left + GAP + right if left and right else left or right).rstrip()

    lines = [line({c: c for c in (*keys, *values)})]
    lines += [line({c: cells[c][row] for c in (*keys, *values)}) for row in range(rows)]
    return "\n".join(lines)
