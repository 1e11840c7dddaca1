"""The report's ``index.html``: one self-contained page, readable offline.

Figures are embedded as base64 PNG data URIs and the style sheet is inline, so the file can
be mailed or archived alone; it loads nothing from anywhere. Relative links point to the
report folder's own files (tables as Markdown/LaTeX/CSV, figures as PDF) for pasting into a paper.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from irstd_bench import __version__
from irstd_bench.report._load import RunResult
from irstd_bench.report._plots import FigureFile
from irstd_bench.report._seeds import run_label
from irstd_bench.report._tables import Table

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3em; }
th, td { padding: 0.25em 0.6em; text-align: right; }
th[scope="row"], td.text { text-align: left; }
thead tr:first-child th { border-top: 2px solid #222; }
thead tr:last-child th { border-bottom: 1px solid #222; }
th.group { border-bottom: 1px solid #999; text-align: center; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: 2px solid #222; }
td.missing { color: #999; }
td.note { text-align: left; font-size: 0.85em; color: #555; }
caption .matching { font-style: normal; font-size: 0.9em; }
td.best { background: #eef6ee; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.inputs td { text-align: left; font-size: 0.85em; }
.meta { color: #666; font-size: 0.85em; }
"""


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(fig: FigureFile) -> str:
    esc = html.escape
    return (
        f'<figure id="fig-{esc(fig.name)}"><img src="{png_data_uri(fig.png)}" alt="{esc(fig.title)}">'
        f"<figcaption><b>{esc(fig.title)}.</b> {esc(fig.caption)} "
        f'(<a href="figures/{esc(fig.pdf.name)}">PDF</a>, '
        f'<a href="figures/{esc(fig.png.name)}">PNG</a>)</figcaption></figure>'
    )


#: Table files linked under each table: (suffix, what a reader calls it).
TABLE_FILES = ((".md", "Markdown"), (".tex", "LaTeX"), (".csv", "CSV"))


def _table(table: Table) -> str:
    """The table, then links to its Markdown, LaTeX and CSV files in ``tables/``."""
    esc = html.escape
    links = ", ".join(f'<a href="tables/{esc(table.name)}{suffix}">{what}</a>' for suffix, what in TABLE_FILES)
    return table.to_html() + f'<p class="files">Files: {links}</p>\n'



def render_index(
    *,
    title: str,
    command: str,
    runs: Sequence[RunResult],
    tables: Sequence[Table],
    ablations: Sequence[Table],
    figures: Sequence[FigureFile],
    qualitative: Sequence[FigureFile],
    created: str,
) -> str:
    """The whole page as a string."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {esc(created)} by irstd-bench {esc(__version__)}.</p>',
        "<h2>Command</h2>",
        f"<pre>{esc(command)}</pre>",
        "<h2>Inputs</h2>",
        '<table class="inputs"><thead><tr><th>Method</th><th>Dataset</th><th>Split</th><th>Matcher</th>'
        "<th>conf</th><th>File</th></tr></thead><tbody>",
    ]
    for run in runs:
        conf = "" if run.conf is None else f"{run.conf:g}"
        parts.append(
            f"<tr><td>{esc(run_label(run))}</td><td>{esc(run.dataset_label)}</td><td>{esc(run.split)}</td>"
            f"<td>{esc(run.matcher)}</td><td>{esc(conf)}</td><td><code>{esc(run.source)}</code></td></tr>"
        )
    parts.append("</tbody></table>")
    parts.append("<h2>Results</h2>")
    parts.append(
        "<p>Best value of each column in bold (compared as printed). "
        "Each table is also in <code>tables/</code> as Markdown, LaTeX, CSV and HTML (links below it); "
        "each figure in <code>figures/</code> as PDF and PNG.</p>"
    )
    parts += [_table(t) for t in tables]
    if ablations:
        parts.append("<h2>Ablations</h2>")
        parts += [_table(t) for t in ablations]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure(f) for f in figures]
    if qualitative:
        parts.append("<h2>Qualitative results</h2>")
        parts += [_figure(f) for f in qualitative]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
