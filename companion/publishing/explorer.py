"""The interactive explorer of notebook 08, as ipywidgets (JupyterLab, CPU, the default model).

- ``program_panel``: choose a test voice: hear the original and the voice the model infers,
  see both spectrograms (an uploaded sound: the web app's panel, companion.publishing.app);
- ``path_panel``: a slider that moves between two test voices through the latent space;
- ``generate_panel``: a button that samples a new voice and offers its .syx for download.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import soundfile as sf

from companion.data.dataset import open_dataset
from companion.data.presets import load
from companion.data.render import Renderer
from companion.dx7.sysex import single_voice_message
from companion.dx7.voice import Voice
from companion.latent.interpolate import Latent
from companion.matching.program import Programmer
from companion.publishing.plots import save_spectrogram

EXPLORER_CANDIDATES = 32  # candidates per sound, quality fast: a quick answer on a 2-core CPU


def wav_bytes(audio: np.ndarray, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def png_bytes(spec_db: np.ndarray) -> bytes:
    """A (n_mels, frames) dB spectrogram as PNG bytes, low bands at the bottom."""
    buf = io.BytesIO()
    save_spectrogram(spec_db, buf)
    return buf.getvalue()


def download_link(data: bytes, filename: str, text: str) -> str:
    """An HTML link that downloads ``data`` as ``filename`` (a data: URL: nothing is stored on
    the server, and the link works in a notebook, Voila and an exported page alike)."""
    payload = base64.b64encode(data).decode()
    return (f'<a download="{html.escape(filename)}" class="download" '
            f'href="data:application/octet-stream;base64,{payload}">{html.escape(text)}</a>')


class Sound(widgets.VBox):
    """A titled player and spectrogram, hidden until it has a sound (an empty player and an
    empty image would show as broken, and the browser reports them as failed loads)."""

    def __init__(self, title: str):
        self.title = widgets.HTML(f"<b>{title}</b>")
        # a millisecond of silence until then: an empty player's blob fails to load
        self.audio = widgets.Audio(value=wav_bytes(np.zeros(22, np.float32)), format="wav",
                                   autoplay=False, loop=False)  # fmt: skip
        self.image = widgets.Image(format="png", width=346, height=256)
        super().__init__([self.title, self.audio, self.image])
        self.layout.display = "none"

    def show(self, audio: np.ndarray, spec_db, title: str | None = None) -> None:
        if title is not None:
            self.title.value = f"<b>{title}</b>"
        self.audio.value = wav_bytes(audio)
        self.image.value = png_bytes(np.asarray(spec_db))
        self.layout.display = None


def test_voices(data: str, limit: int = 200) -> list[tuple[str, Voice]]:
    """[(label, voice)] of a dataset's first test voices, labelled "000348 ACCORDION2"."""
    info = open_dataset(data)
    ids = [int(i) for i in np.load(info.path / "test.ids.npy")[:limit]]
    voices = dict(load(info.header["database"], ids=ids))
    return [(f"{i:06d} {voices[i].display_name}", voices[i]) for i in ids]


def program_panel(model_dir, voices: list[tuple[str, Voice]]) -> widgets.VBox:
    """A test voice -> the voice the model and the matcher infer from its sound, both heard
    and seen (an uploaded sound: the web app's panel, companion.publishing.app)."""
    prog = Programmer(model_dir, candidates=EXPLORER_CANDIDATES, quality="fast")
    renderer = Renderer(prog.cfg)
    choose = widgets.Dropdown(options=voices, description="test voice")
    original, inferred = Sound("original"), Sound("inferred")
    status = widgets.HTML()

    def on_voice(change) -> None:
        voice = change["new"]
        audio = renderer.render(voice)
        result = prog.run_audio(audio, Path(voice.display_name))
        original.show(audio, prog.spectrogram(audio), f"original: {voice.display_name}")
        inferred.show(result.render, prog.spectrogram(result.render),
                      f"inferred: '{result.voice.display_name}'")  # fmt: skip
        status.value = (f"loss {result.loss:.3f} (network alone {result.network_loss:.3f}), "
                        f"{result.pitch_text()}")  # fmt: skip

    choose.observe(on_voice, names="value")
    on_voice({"new": choose.value})
    return widgets.VBox([choose, widgets.HBox([original, inferred]), status])


def path_panel(model_dir, voices: list[tuple[str, Voice]], steps: int = 7) -> widgets.VBox:
    """Two test voices and a slider along the straight latent path between them."""
    latent, prog = Latent(model_dir), Programmer(model_dir, candidates=1)
    renderer = Renderer(prog.cfg)
    a = widgets.Dropdown(options=voices, description="from")
    b = widgets.Dropdown(options=voices, index=min(1, len(voices) - 1), description="to")
    slider = widgets.IntSlider(value=0, min=0, max=steps - 1, description="step")
    sound = Sound("")
    state = {}

    def show(_=None) -> None:
        voice = Voice.from_values(state["path"][slider.value], f"STEP {slider.value + 1}")
        audio = renderer.render(voice)
        sound.show(audio, prog.spectrogram(audio), f"step {slider.value + 1} of {steps}")

    def new_path(_=None) -> None:
        state["path"] = latent.path(a.value, b.value, steps)
        show()

    a.observe(new_path, names="value")
    b.observe(new_path, names="value")
    slider.observe(show, names="value")
    new_path()
    return widgets.VBox([widgets.HBox([a, b]), slider, sound])


def generate_panel(model_dir) -> widgets.VBox:
    """A button: a new voice from the latent prior, heard, seen, and offered as .syx."""
    latent, prog = Latent(model_dir), Programmer(model_dir, candidates=1)
    renderer = Renderer(prog.cfg)
    button = widgets.Button(description="new voice", icon="random")
    sound, link = Sound("press the button"), widgets.HTML()
    count = {"n": 0}

    def on_click(_=None) -> None:
        count["n"] += 1
        name = f"GEN {count['n']:03d}"
        voice = Voice.from_values(latent.sample(1, seed=count["n"])[0], name)
        audio = renderer.render(voice)
        sound.show(audio, prog.spectrogram(audio), name)
        link.value = (download_link(single_voice_message(voice), f"{name.replace(' ', '_')}.syx",
                                    f"download {name}.syx")
                      + " (a single-voice dump for Dexed or a DX7)")  # fmt: skip

    button.on_click(on_click)
    return widgets.VBox([button, sound, link])
