"""The report as a list of blocks (headings, paragraphs, tables, figures) rendered twice: a self-contained
``index.html`` (inline CSS, figures as relative PNG links, no script, no network) and ``summary.md``."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pandas as pd

from reports.tables import fmt, markdown


@dataclass(frozen=True)
class Heading:
    level: int
    text: str

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-")


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True, eq=False)
class Table:
    frame: pd.DataFrame


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report folder
    alt: str


@dataclass(frozen=True, eq=False)
class Section:
    """Blocks shown together in a framed box of CSS class ``kind`` (the verdict); Markdown shows them plainly."""
    kind: str
    blocks: tuple


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; margin: 0.5em 0; }
nav ul { columns: 2; } code { background: #f4f4f4; padding: 0 0.2em; }
section.verdict { background: #f2f7fb; border-left: 8px solid #0072B2; padding: 0.2em 1.2em 0.6em; }
section.verdict > p:first-child { font-size: 1.15em; font-weight: 600; }
section.verdict td, section.verdict th { background: #fff; }
"""


def _table_html(frame: pd.DataFrame) -> str:
    return frame.map(fmt).to_html(index=False, escape=True, border=0)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _blocks_html(blocks) -> list[str]:
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{b.anchor}"' if b.level == 2 else ""
            body.append(f"<h{b.level}{anchor}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            body.append(_table_html(b.frame))
        elif isinstance(b, Image):
            body.append(f'<p><img src="{html.escape(b.path)}" alt="{html.escape(b.alt)}"></p>')
        elif isinstance(b, Section):
            body += [f'<section class="{html.escape(b.kind)}">', *_blocks_html(b.blocks), "</section>"]
    return body


def render_html(title: str, blocks: list) -> str:
    toc = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    body = [f"<h1>{html.escape(title)}</h1>",
            "<nav><ul>" + "".join(f'<li><a href="#{h.anchor}">{html.escape(h.text)}</a></li>' for h in toc)
            + "</ul></nav>", *_blocks_html(blocks)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _flatten(blocks):
    for b in blocks:
        yield from _flatten(b.blocks) if isinstance(b, Section) else (b,)


def render_markdown(title: str, blocks: list) -> str:
    out = [f"# {title}"]
    for b in _flatten(blocks):
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append(markdown(b.frame))
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({b.path})")
    return "\n\n".join(out) + "\n"
