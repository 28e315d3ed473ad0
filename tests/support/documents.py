"""Documents made in the tests: a minimal PDF, a Word file, Markdown and HTML, and a department
folder with one file of every supported kind."""

from __future__ import annotations

from pathlib import Path

import docx


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string, written object by object."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] "
        f"/Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        shown = " ".join(f"({escape(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET"
        objects[page_id] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    info_id = 4 + 2 * len(pages)
    objects[info_id] = f"<< /Title ({escape(title)}) >>" if title else "<< >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {info_id + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in range(1, info_id + 1))
    out += f"trailer\n<< /Size {info_id + 1} /Root 1 0 R /Info {info_id} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.core_properties.title = "Metadata title (not used: there is a Title paragraph)"
    document.add_heading("Expenses Policy", level=0)
    document.add_paragraph("Everyone who travels for work follows this policy.")
    document.add_heading("Travel", level=1)
    document.add_heading("Flights", level=2)
    document.add_paragraph("Book economy class for flights under six hours.")
    document.add_paragraph("Use the travel portal", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Item", "Limit"), ("Hotel", "150 EUR")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.save(path)
    return path


HANDBOOK_MD = """---
layout: page
---
# Employee Handbook

Welcome to the company.

## Leave

### Parental leave
Employees may take sixteen weeks of parental leave on full pay.

```bash
# request it in the HR portal
```

## Working hours
Core hours are ten to four.
"""


POLICY_HTML = """<!doctype html><html><head><title>Security | Intranet</title>
<style>body { color: red }</style><script>track("visit")</script></head>
<body><nav><a href="/">Home</a> <a href="/it">IT</a></nav>
<h1>Security rules</h1>
<p>Lock your screen
   when you leave your desk.</p>
<h2>Passwords</h2>
<ul><li>Use a password manager.</li><li>Never reuse a password.</li></ul>
<table><tr><th>System</th><th>Rotation</th></tr><tr><td>VPN</td><td><p>90 days</p></td></tr></table>
</body></html>"""


def write_folder(folder: Path) -> Path:
    """A department folder with one file of every supported kind (and one to be ignored)."""
    (folder / "policies").mkdir(parents=True)
    (folder / "handbook.md").write_text(HANDBOOK_MD)
    (folder / "policies" / "security.html").write_text(POLICY_HTML)
    (folder / "policies" / "holidays.txt").write_text("Public holidays follow the Berlin calendar.")
    (folder / "policies" / "onboarding.pdf").write_bytes(
        make_pdf([["Day one: collect your laptop."], ["Week two: meet your mentor."]], "Onboarding")
    )
    make_docx(folder / "expenses.docx")
    (folder / "logo.png").write_bytes(b"\x89PNG not a document")
    (folder / ".draft.md").write_text("# Hidden draft")
    return folder
