"""A paper's table as data, rendered to markdown, LaTeX and CSV from the same rows.

A paper module builds ``Table``s: named columns, one ``Row`` per method/setting whose
cells are already formatted (``collect.mean_std_cell``: mean ± std over seeds), the
paper's reference values as rows marked ``paper=True`` beside the measured ones, and
notes (budgets, numbers read off figures) printed under the table.

Modules written in the older style, ``report(runs) -> str`` returning markdown, still
work: ``as_tables`` parses their pipe tables into ``Table``s, so their tables also come
out as LaTeX and CSV. Porting one means returning ``Table``s instead of joining strings.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field


@dataclass
class Row:
    label: str
    cells: list[str]
    paper: bool = False          # a value the paper reports, not one measured here


@dataclass
class Table:
    title: str
    columns: list[str]           # headers of the value columns (the label column is `corner`)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    corner: str = ""

    def add(self, label: str, cells, paper: bool = False) -> None:
        cells = [str(c) for c in cells]
        if len(cells) > len(self.columns):
            raise ValueError(f"row {label!r} has {len(cells)} cells for {len(self.columns)} columns in {self.title!r}")
        self.rows.append(Row(label, cells + [""] * (len(self.columns) - len(cells)), paper))

    def measured(self) -> list[Row]:
        return [r for r in self.rows if not r.paper]

    def to_markdown(self) -> str:
        out = [f"### {self.title}", "", _pipe_row([self.corner, *self.columns]), "|---" * (len(self.columns) + 1) + "|"]
        out += [_pipe_row([_paper_label(r), *r.cells]) for r in self.rows]
        if self.notes:
            out += [""] + self.notes
        return "\n".join(out) + "\n"

    def to_latex(self) -> str:
        spec = "l" + "r" * len(self.columns)
        out = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex(self.title)}}}", rf"\begin{{tabular}}{{{spec}}}",
               r"\toprule", " & ".join(_tex(c) for c in [self.corner, *self.columns]) + r" \\", r"\midrule"]
        for i, row in enumerate(self.rows):
            if row.paper and (i == 0 or not self.rows[i - 1].paper):
                out.append(r"\midrule")
            out.append(" & ".join(_tex(c) for c in [_paper_label(row), *row.cells]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if self.notes:
            out.append(r"\par\smallskip\footnotesize " + _tex(" ".join(self.notes)))
        out.append(r"\end{table}")
        return "\n".join(out) + "\n"

    def csv_rows(self) -> list[list[str]]:
        """Long format, one line per cell, so that every table of every paper shares one schema
        (pandas: ``pivot`` on row/column): the cell as printed, and its mean and std as numbers
        where it is "mean ± std" or a single number."""
        out = []
        for row in self.rows:
            for column, cell in zip(self.columns, row.cells):
                if cell != "":
                    out.append([self.title, "paper" if row.paper else "measured", row.label, column, cell,
                                *_mean_std(cell)])
        return out


CSV_HEADER = ["table", "source", "row", "column", "value", "mean", "std"]


def _mean_std(cell: str) -> tuple[str, str]:
    """"1.2 ± 0.3" -> ("1.2", "0.3"); "1.2" -> ("1.2", ""); text -> ("", "")."""
    mean, _, std = (part.strip() for part in cell.partition(" ± "))
    try:
        float(mean)
        float(std or 0)
    except ValueError:
        return "", ""
    return mean, std


def _pipe_row(cells) -> str:
    return "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"


def _paper_label(row: Row) -> str:
    return f"{row.label} (paper)" if row.paper and "paper" not in row.label else row.label


TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
TEX_SYMBOLS = {"±": r"$\pm$", "→": r"$\to$", "λ": r"$\lambda$", "≤": r"$\le$", "≥": r"$\ge$", "×": r"$\times$",
               "²": r"$^2$", "—": "---", "−": "-"}


def _tex(text: str) -> str:
    text = "".join(TEX_ESCAPES.get(ch, ch) for ch in str(text))
    for symbol, tex in TEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def render(tables: list[Table], fmt: str) -> str:
    """All of a paper's tables in one document: "md", "tex" or "csv"."""
    if fmt == "md":
        return "\n".join(t.to_markdown() for t in tables)
    if fmt == "tex":
        return "% needs \\usepackage{booktabs}\n" + "\n".join(t.to_latex() for t in tables)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows([CSV_HEADER, *(line for t in tables for line in t.csv_rows())])
        return buffer.getvalue()
    raise ValueError(f"format {fmt!r}: choose md, tex or csv")


def as_tables(report) -> list[Table]:
    """A paper module's output as Tables: already Tables, or an older module's markdown text."""
    if isinstance(report, str):
        return tables_from_markdown(report)
    return list(report)


_PIPE = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*\|(\s*:?-+:?\s*\|)+\s*$")


def tables_from_markdown(text: str) -> list[Table]:
    """Pipe tables of a markdown report, each titled by the heading above it (and a line
    ending in ":" just before it); other text becomes the notes of the table above."""
    tables: list[Table] = []
    heading, lead, lines = "", "", text.splitlines()

    def note(line: str) -> None:       # text belongs to the table above it, under the same heading
        if tables and tables[-1].title.startswith(heading or "table"):
            tables[-1].notes.append(line)

    i = 0
    while i < len(lines):
        line = lines[i]
        if _PIPE.match(line):
            block = []
            while i < len(lines) and _PIPE.match(lines[i]):
                block.append(_cells(lines[i]))
                i += 1
            has_header = len(block) > 1 and _RULE.match("|" + "|".join(block[1]) + "|")
            header, body = (block[0], block[2:]) if has_header else ([""] * len(block[0]), block)
            title = f"{heading}: {lead.rstrip(':')}" if lead else heading or "table"
            table = Table(title, header[1:], corner=header[0])
            for cells in body:
                label, paper = cells[0], "(paper" in cells[0] or cells[0].startswith("paper")
                table.add(label, cells[1:len(header)], paper=paper)
            tables.append(table)
            lead = ""
            continue
        if lead and line.strip():      # a lead-in that no table followed is text
            note(lead)
            lead = ""
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.rstrip().endswith(":"):
            lead = line.strip()
        elif line.strip():
            note(line.strip())
        i += 1
    if lead:
        note(lead)
    return tables


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]
