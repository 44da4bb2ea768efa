"""The executed notebooks of a reproduction as pages of the demo site.

Each executed notebook (papermill's copy, NOTEBOOKS_OUT) becomes ``SITE/notebooks/NAME.html``:
nbconvert's ``basic`` HTML (cells, tables, plots embedded at a width that reads, as PNG or
JPEG, whichever is lighter; scripts removed) inside the site's
layout, so that the site's navigation and style hold; and ``SITE/notebooks.html`` lists them.
What a reader must not see is refused or removed: a notebook whose outputs hold a traceback is
an error naming it; the reproduction's local folders (papermill writes them into the parameters
cell) become the names a reader knows (``data``, ``figures``, ``site``), and any other absolute
path is cut to its last part. The notebooks embed no audio (their sounds are on the site's
pages, as files); a widget (notebook 08) is static here and its page says `make app` serves it.

    python -m companion.publishing.notebook_pages EXECUTED_DIR SITE_DIR [DATA FIGURES]
"""

from __future__ import annotations

import html
import re
import sys
import warnings
from pathlib import Path

from companion.io import write_atomic

ROOT = Path(__file__).resolve().parents[2]
# an absolute path outside the site's own names: cut to its last part
_ABSOLUTE = re.compile(r"(?<![\w.])/(?:tmp|home|root|work|mnt|Users|var|opt|srv|check)"
                       r"(?:/[\w.+@-]+)+")  # fmt: skip
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
WIDGET_NOTE = ("<p class='note'>The panels of this notebook are interactive: run <code>make "
               "app</code> to use them in your browser.</p>")


def _title(nb, stem: str) -> str:
    """The notebook's first Markdown heading ("08 · Explorer"), else its file name."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return stem


def _scrub(text: str, names: dict[str, str]) -> str:
    for path, name in sorted(names.items(), key=lambda kv: -len(kv[0])):  # longest first
        text = text.replace(path, name)
    return _ABSOLUTE.sub(lambda m: m.group(0).rsplit("/", 1)[-1], text)


MAX_WIDTH = 1200  # px: a plot in a page of the site reads at this width


def lighter(png: bytes) -> tuple[str, bytes]:
    """An embedded plot as the page shows it: at most MAX_WIDTH px wide, as PNG or JPEG
    (quality 88), whichever is smaller; (MIME type, bytes). A 12 MB page of dense
    spectrograms saved at 200 dpi reads the same at a tenth of the size. Pillow (which
    matplotlib installs) does the resampling and encoding."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png))
    img.load()
    if img.width > MAX_WIDTH:
        img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)),
                         Image.Resampling.LANCZOS)  # fmt: skip
    best = ("image/png", png)
    for mime, fmt, options in (("image/png", "PNG", {"optimize": True}),
                               ("image/jpeg", "JPEG", {"quality": 88})):  # fmt: skip
        buf = io.BytesIO()
        rgb = img.convert("RGB") if fmt == "JPEG" else img
        rgb.save(buf, fmt, **options)
        if len(buf.getvalue()) < len(best[1]):
            best = (mime, buf.getvalue())
    return best


def _lighten(nb) -> None:
    """Every embedded PNG of the notebook replaced by ``lighter``'s image."""
    import base64

    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if "image/png" in data:
                mime, image = lighter(base64.b64decode(data.pop("image/png")))
                data[mime] = base64.b64encode(image).decode()


def page(notebook: str | Path, names: dict[str, str]) -> tuple[str, str]:
    """(title, HTML body) of an executed notebook, local paths replaced by ``names``
    ({absolute path: what to show}).

    Raises:
        ValueError: the notebook holds an error output (a traceback must not be published).
    """
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "error":
                raise ValueError(f"{notebook}: an output holds a traceback ({out.ename}); "
                                 "fix the notebook before publishing it")  # fmt: skip
    _lighten(nb)
    widgets = any("application/vnd.jupyter.widget-view+json" in out.get("data", {})
                  for cell in nb.cells for out in cell.get("outputs", []))  # fmt: skip
    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    with warnings.catch_warnings():  # a widget cannot be drawn statically: WIDGET_NOTE says so
        warnings.filterwarnings("ignore", message=".*is not able to be represented")
        body, _ = exporter.from_notebook_node(nb)
    # the outputs' scripts (widgets', JavaScript displays) need a live kernel: a static page
    # only fails on them (the console errors of the site check)
    body = _scrub(_SCRIPT.sub("", body), names)
    return _title(nb, notebook.stem), (WIDGET_NOTE if widgets else "") + body


def write_pages(executed: str | Path, site_dir: str | Path,
                names: dict[str, str] | None = None) -> list[Path]:  # fmt: skip
    """Every executed notebook of ``executed`` (NN_*.ipynb) as a page of ``site_dir``, and the
    index page notebooks.html; returns the pages written (index last)."""
    executed, site = Path(executed), Path(site_dir)
    notebooks = sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(f"{executed}: no executed notebooks (NN_name.ipynb)")
    names = {str(ROOT) + "/": "", str(ROOT): ".", **(names or {})}
    written, items = [], []
    for nb in notebooks:
        title, body = page(nb, names)
        front = f"---\nlayout: default\ntitle: {_yaml_str(title)}\n---\n"
        # {% raw %}: a notebook's text may hold "{{", which Jekyll would read as its own
        text = f"{front}<div class='notebook'>\n{{% raw %}}\n{body}\n{{% endraw %}}\n</div>\n"
        written.append(write_atomic(site / "notebooks" / f"{nb.stem}.html", text))
        items.append(f"<li><a href='notebooks/{nb.stem}.html'>{html.escape(title)}</a></li>")
    index = ("---\nlayout: default\ntitle: Notebooks\n---\n<h2>The notebooks, executed</h2>\n"
             "<p>Each notebook of the reproduction as it ran, with its tables and plots "
             "(the sounds are on the other pages).</p>\n<ul>\n" + "\n".join(items) + "\n</ul>\n")
    written.append(write_atomic(site / "notebooks.html", index))
    return written


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (2, 4):
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    extra = {}
    if len(args) == 4:
        extra = {str(Path(args[2]).resolve()): "data", str(Path(args[3]).resolve()): "figures"}
    extra[str(Path(args[1]).resolve())] = "site"
    pages = write_pages(args[0], args[1], extra)
    from companion.publishing.site import build

    built = build(args[1])
    print(f"wrote {len(pages)} notebook pages in {args[1]}; the site rebuilt in {built}")
