"""The web app's panel (notebook 08 served by Voila, ``make app``): a sound in, a DX7 voice out.

A musician uploads a recording (and, if they like, their own cartridges: .syx files or a zip,
the library it is matched against; else the one companion.data.library finds), chooses the
quality and how many alternatives to offer, and gets, in the page: the input and the voice
heard and seen (players and log-mel spectrograms), how the voice plays the recording (at the
key of the note heard, its velocity, key-on and key-up), and download links for the voice (a
single-voice .syx for Dexed or a DX7) and the bank of alternatives. A file that cannot be used
(text, silence, an unreadable file, an unsafe zip) and any failure of the matcher are a
message in the page, never a traceback, and the panel goes on serving the next upload.
"""

from __future__ import annotations

import html
import sys
import tempfile
import traceback
from pathlib import Path

import ipywidgets as widgets

from companion.data.library import find as find_library
from companion.data.library import from_uploads, or_generated
from companion.dx7.sysex import bank_message, single_voice_message
from companion.io import safe_stem
from companion.matching.outputs import bank
from companion.matching.program import QUALITIES, Programmer, open_library
from companion.publishing.explorer import Sound, download_link

ACCEPT = ".wav,.flac,.ogg,.mp3,.aif,.aiff,audio/*"
VARIANTS = 8  # alternatives offered by default (the bank holds them, best first)


class AppPanel(widgets.VBox):
    """Upload, quality, variants -> players, spectrograms, downloads and a status line.

    Args:
        model_dir: a model folder (None: the shipped model).
        library: a preset database or cartridge folder, or "none" (None: the one
            companion.data.library finds: $COMPANION_LIBRARY, `companion library use`,
            `companion library get`, else one the model generates).
        quality: the initial choice.
    """

    def __init__(self, model_dir=None, library=None, quality: str = "fast"):
        self.found = or_generated(find_library(library), model_dir)
        self.prog = Programmer(model_dir, library=self.found.path, quality=quality)
        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=False,
                                         description="a sound")  # fmt: skip
        # max (a minute a sound) is for offline work, not a page waited on
        self.quality = widgets.Dropdown(options=[q for q in QUALITIES if q != "max"], value=quality,
                                        description="quality")  # fmt: skip
        self.variants = widgets.BoundedIntText(value=VARIANTS, min=0, max=32,
                                               description="alternatives")  # fmt: skip
        self.status = widgets.HTML("<span class='status'>upload a recording of one note "
                                   "(wav, flac, ogg, mp3)</span>")  # fmt: skip
        self.original, self.voice = Sound("your sound"), Sound("the DX7 voice")
        self.links = widgets.HTML()
        library_text = self.found.describe() if self.prog.index is None else (
            f"{self.found.describe()}: {len(self.prog.index)} voices")  # fmt: skip
        self.library = widgets.HTML(f"<small>{html.escape(library_text)}</small>")
        self.cartridges = widgets.FileUpload(accept=".syx,.zip", multiple=True,
                                             description="your cartridges")  # fmt: skip
        super().__init__([
            widgets.HBox([self.upload, self.quality, self.variants]),
            widgets.HBox([self.cartridges, self.library]),
            self.status, widgets.HBox([self.original, self.voice]), self.links,
        ])  # fmt: skip
        self.upload.observe(self._on_upload, names="value")
        self.cartridges.observe(self._on_cartridges, names="value")

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00" if error else "inherit"
        self.status.value = (f"<span class='status{' error' if error else ''}' "
                             f"style='color:{color}'>{html.escape(text)}</span>")  # fmt: skip

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = str(item.get("name", "sound"))
        self.links.value = ""
        self._say(f"programming {name} ({self.quality.value}) ...")
        try:
            self.program(bytes(item["content"]), name)
        except ValueError as e:  # the user's file (AudioError is one): the reason, one line
            self._say(str(e), error=True)
        except Exception as e:  # the page must keep serving; the server's log keeps the rest
            traceback.print_exc(file=sys.stderr)
            self._say(f"{name}: could not be programmed ({type(e).__name__}: {e})", error=True)

    def _on_cartridges(self, change) -> None:
        """The user's own .syx files or zips of them become the library matched against."""
        files = [(str(f.get("name", "cartridge.syx")), bytes(f["content"])) for f in change["new"]]
        if not files:
            return
        names = ", ".join(n for n, _ in files)
        self._say(f"reading {names} ...")
        try:
            folder = from_uploads(files)
            self.prog.index = open_library(folder)
        except ValueError as e:  # the user's files: the reason, one line
            self._say(str(e), error=True)
            return
        text = f"library: your cartridges ({names}): {len(self.prog.index)} voices"
        self.library.value = f"<small>{html.escape(text)}</small>"
        self._say(f"matching against {len(self.prog.index)} voices of {names}; upload a "
                  "recording of one note")  # fmt: skip

    def program(self, content: bytes, name: str) -> None:
        """Program an uploaded file's bytes; fills the players, links and status."""
        self.prog.set_quality(self.quality.value)
        stem = safe_stem(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{stem}{Path(name).suffix.lower()}"
            path.write_bytes(content)
            try:
                result = self.prog.run(path, variants=int(self.variants.value), name=stem)
            except ValueError as e:  # it names the temporary file: say the user's name instead
                raise ValueError(str(e).replace(str(path), name)) from None
        take = result.takes[0]
        self.original.show(take.audio, self.prog.spectrogram(take.audio), f"your sound: {name}")
        self.voice.show(result.render, self.prog.spectrogram(result.render),
                        f"the DX7 voice '{result.voice.display_name}'")  # fmt: skip
        links = [download_link(single_voice_message(result.voice), f"{stem}.syx",
                           f"download {stem}.syx (the voice, for Dexed or a DX7)")]  # fmt: skip
        if result.variants:
            text = (f"download {stem}-variants.syx (a bank of {len(result.variants)} "
                    "alternatives, best first)")
            links.append(download_link(bank_message(bank(result.variants)),
                                   f"{stem}-variants.syx", text))  # fmt: skip
        self.links.value = " &nbsp; ".join(links)
        self._say(f"{name}: {take.describe()}; loss {result.loss:.3f} (network alone "
                  f"{result.network_loss:.3f}); {result.pitch_text()}; "
                  f"{result.seconds:.1f} s")  # fmt: skip


def app_panel(model_dir=None, library=None, quality: str = "fast") -> AppPanel:
    """The web app's panel; see AppPanel."""
    return AppPanel(model_dir, library, quality)
