"""``report.html``: one self-contained page that anyone can open without Python.

Everything is inside the file: CSS in a ``<style>`` element, figures as ``data:image/png;base64``
URIs, no script, no external stylesheet, font or image. So the page can be mailed, attached
to a ticket or opened from an archive years later and still look the same.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sim.output.formats import format_value

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1d3557; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #eef2f7; } td:first-child, th:first-child { text-align: left; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: .85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
.meta { color: #555; font-size: .9em; }
"""


@dataclass(frozen=True)
class Section:
    heading: str
    body: str
    """HTML, already escaped."""


def text(content: str) -> str:
    return f"<p>{html.escape(content)}</p>"


def preformatted(content: str) -> str:
    return f"<pre>{html.escape(content)}</pre>"


def table(frame: pd.DataFrame, formatted: bool = True) -> str:
    """A DataFrame as an HTML table; numbers in their units when ``formatted``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            shown = format_value(str(column), value) if formatted else str(value)
            cells.append(f"<td>{html.escape(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def figure(png: bytes, caption: str) -> str:
    """A PNG embedded as a data URI."""
    encoded = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    return (f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title: str, description: str, sections: Sequence[Section], meta: str = "") -> str:
    """The whole document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if description:
        parts.append(text(description))
    if meta:
        parts.append(f'<p class="meta">{html.escape(meta)}</p>')
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.heading)}</h2>{section.body}</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
