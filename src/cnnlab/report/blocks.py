"""Format-neutral report content (paragraphs, tables, figures, preformatted text) rendered to HTML and Markdown."""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from cnnlab.atomic import make_folder, write_bytes_atomically


@dataclass
class Paragraph:
    """Plain text (escaped in HTML)."""

    text: str


@dataclass
class Table:
    """A table; ``sort_values`` (same shape as ``rows``) holds raw numbers for sorting, None = use the text."""

    headers: list[str]
    rows: list[list[str]]
    sort_values: list[list[float | str | None]] | None = None
    sortable: bool = False
    table_id: str | None = None
    links: list[list[str | None]] | None = None  # per-cell href, None = no link


@dataclass
class Figure:
    """A PNG figure stored under ``figures/<name>`` beside the Markdown report."""

    name: str
    png: bytes
    caption: str


@dataclass
class Preformatted:
    """Text shown verbatim (config, model summary)."""

    text: str


Block = Union[Paragraph, Table, Figure, Preformatted]


@dataclass
class Section:
    """A titled part of a report."""

    title: str
    blocks: list[Block] = field(default_factory=list)


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
table.sortable td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: .5em 1em; }
"""

# Click a header of a table.sortable to sort its rows by that column; a second click reverses.
# A cell's key is its data-value (the raw number) when present, else its text. Keys that read as
# numbers ("9.5", "1,234", "-0.3", "82.21%") compare as numbers, never as text ("10.2" after
# "9.5"); other text compares alphabetically, after the numbers. Empty and missing cells ("",
# "-", "—") go last in both directions.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var MISSING = ["", "-", "\\u2014", "\\u2013", "NaN", "nan", "None", "null"];
  function key(row, column) {
    var cell = row.cells[column];
    var raw = (cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent).trim();
    if (MISSING.indexOf(raw) >= 0) { return { missing: true }; }
    var plain = raw.replace(/,/g, "").replace(/\\s*%$/, "");
    var number = /^[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?$/.test(plain) ? Number(plain) : NaN;
    return { missing: false, numeric: isFinite(number), number: number, text: raw };
  }
  function compare(x, y) {
    if (x.numeric && y.numeric) { return x.number - y.number; }
    if (x.numeric !== y.numeric) { return x.numeric ? -1 : 1; }
    return x.text.localeCompare(y.text, undefined, { numeric: true });
  }
  table.querySelectorAll("th").forEach(function (header, column) {
    header.addEventListener("click", function () {
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var keyed = Array.prototype.map.call(body.rows, function (row, index) {
        return { row: row, key: key(row, column), index: index };
      });
      keyed.sort(function (a, b) {
        if (a.key.missing || b.key.missing) {  // missing last either way
          return a.key.missing === b.key.missing ? a.index - b.index : (a.key.missing ? 1 : -1);
        }
        var order = compare(a.key, b.key);
        return (ascending ? order : -order) || a.index - b.index;  // stable on ties
      });
      keyed.forEach(function (item) { body.appendChild(item.row); });
    });
  });
});
"""


def _html_table(table: Table) -> str:
    attributes = []
    if table.table_id:
        attributes.append(f'id="{html.escape(table.table_id)}"')
    if table.sortable:
        attributes.append('class="sortable"')
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body_rows = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, text in enumerate(row):
            value = table.sort_values[r][c] if table.sort_values else None
            absent = value is None or (isinstance(value, float) and math.isnan(value))
            data = "" if absent else f' data-value="{html.escape(str(value))}"'
            content = html.escape(text)
            href = table.links[r][c] if table.links else None
            if href:
                content = f'<a href="{html.escape(href)}">{content}</a>'
            cells.append(f"<td{data}>{content}</td>")
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table {' '.join(attributes)}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body_rows)}</tbody></table>")


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        encoded = base64.b64encode(block.png).decode("ascii")
        caption = html.escape(block.caption)
        return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>")
    if isinstance(block, Preformatted):
        return f"<pre>{html.escape(block.text)}</pre>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(title: str, sections: list[Section], notes: list[str] | None = None,
                back_link: tuple[str, str] | None = None) -> str:
    """One self-contained HTML page: inline CSS, figures as base64 PNG, inline sorting script, no external resources.

    ``back_link`` = (relative href, text) adds a navigation link above the title.
    """
    parts = []
    if back_link:
        parts.append(f'<nav><a href="{html.escape(back_link[0])}">{html.escape(back_link[1])}</a></nav>')
    parts.append(f"<h1>{html.escape(title)}</h1>")
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f'<div class="missing"><strong>Missing from this run:</strong><ul>{items}</ul></div>')
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.extend(_html_block(block) for block in section.blocks)
        parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts)
            + f"\n<script>{SORT_JS}</script>\n</body></html>\n")


def md_text(text: str) -> str:
    """Text safe in Markdown: ``&``, ``<`` and ``>`` become entities, so a class or run name such as
    ``<script>`` shows as typed instead of being raw HTML in a Markdown viewer."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(text: str) -> str:
    return md_text(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown pipe table (cells escaped: entities for ``& < >``, ``\\|`` for pipes)."""
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_block(block: Block, figures_dir: str) -> str:
    if isinstance(block, Paragraph):
        return md_text(block.text)
    if isinstance(block, Table):
        return markdown_table(block.headers, block.rows)
    if isinstance(block, Figure):
        caption = md_text(block.caption).replace("[", "\\[").replace("]", "\\]")
        return f"![{caption}]({figures_dir}/{block.name})"
    if isinstance(block, Preformatted):
        fence = _md_fence(block.text)
        return f"{fence}\n" + block.text.rstrip("\n") + f"\n{fence}"  # verbatim: no entities inside a fence
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(title: str, sections: list[Section], notes: list[str] | None = None,
                    figures_dir: str = "figures") -> str:
    """Markdown with figures referenced as ``figures_dir/<name>`` (relative links); all text escaped."""
    parts = [f"# {md_text(title)}"]
    if notes:
        parts.append("**Missing from this run:**\n\n" + "\n".join(f"- {md_text(n)}" for n in notes))
    for section in sections:
        parts.append(f"## {md_text(section.title)}")
        parts.extend(_md_block(block, figures_dir) for block in section.blocks)
    return "\n\n".join(parts) + "\n"


def figures_of(sections: list[Section]) -> dict[str, bytes]:
    """All figures of ``sections`` by file name."""
    return {b.name: b.png for s in sections for b in s.blocks if isinstance(b, Figure)}


def write_figures(folder: Path, figures: dict[str, bytes]) -> None:
    """Write ``figures`` (file name -> PNG bytes) into ``folder``, each atomically, and remove the
    PNGs an earlier page left there that this one lacks, so a page never links a stale image."""
    make_folder(folder)
    for name, png in figures.items():
        write_bytes_atomically(folder / name, png)
    for stale in folder.glob("*.png"):
        if stale.name not in figures:
            stale.unlink()
