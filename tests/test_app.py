"""The web app (notebook 08 served by Voila), end to end as a musician uses it: the real
server, headless Chromium, a generated WAV uploaded, the result waited for, the .syx downloaded
and read back; bad uploads give a message in the page and the server keeps serving. And the
panel itself, driven headless (fast)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from companion.data.render import Renderer
from companion.dx7.sysex import parse_syx
from companion.dx7.voice import INIT_VOICE

ROOT = Path(__file__).parents[1]
SR = 22050


def _sounds(folder: Path) -> dict[str, Path]:
    """A DX7 note (a brass-like voice at C4), text, silence, 10 min of a quiet hum."""
    voice = INIT_VOICE.replace(op1_eg_rate1=60, op2_output_level=80, algorithm=0)
    paths = {"note": folder / "my note.wav", "text": folder / "notes.wav",
             "silence": folder / "silence.wav", "long": folder / "ten minutes.flac"}  # fmt: skip
    sf.write(paths["note"], Renderer().render(voice, 60, 100), SR)
    paths["text"].write_text("this is not audio\n")
    sf.write(paths["silence"], np.zeros(SR, np.float32), SR)
    t = np.arange(600 * 8000) / 8000
    sf.write(paths["long"], (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    return paths


def test_panel_upload(tmp_path, smoke_run):
    """The panel with an upload set as the browser sets it: players, links, messages."""
    from companion.publishing.app import app_panel

    sounds = _sounds(tmp_path)
    panel = app_panel(smoke_run[1], quality="fast")

    def upload(path: Path) -> str:
        panel.upload.value = ({"name": path.name, "type": "audio/wav", "size": 0,
                               "content": memoryview(path.read_bytes()),
                               "last_modified": datetime.now(UTC)},)  # fmt: skip
        return panel.status.value

    status = upload(sounds["note"])
    assert "my note.wav: plays at key 60 (C4" in status and "loss" in status, status
    assert panel.voice.audio.value[:4] == b"RIFF" and panel.original.image.value[:4] == b"\x89PNG"
    syx = base64.b64decode(panel.links.value.split("base64,")[1].split('"')[0])
    assert len(parse_syx(syx).voices) == 1 and "my_note.syx" in panel.links.value
    assert "my_note-variants.syx" in panel.links.value
    assert "notes.wav" in upload(sounds["text"]) and "error" in panel.status.value
    assert "/tmp" not in panel.status.value  # the user's name, not the temporary file's
    assert "silent" in upload(sounds["silence"])
    assert "first" in upload(sounds["long"]) and "of 600.0 s matched" in panel.status.value


def test_panel_takes_the_users_cartridges(tmp_path, smoke_run, cartridges):
    """A zip of the user's cartridges becomes the library matched against; an unsafe zip or a
    file that is not a cartridge is a message naming it."""
    import io
    import zipfile

    from companion.publishing.app import app_panel

    panel = app_panel(smoke_run[1], quality="fast")
    assert "no library" in panel.library.value and panel.prog.index is None

    def upload(*files: tuple[str, bytes]) -> str:
        panel.cartridges.value = tuple({"name": n, "type": "", "size": len(b),
                                        "content": memoryview(b),
                                        "last_modified": datetime.now(UTC)}
                                       for n, b in files)  # fmt: skip
        return panel.status.value

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(cartridges[0].rglob("*")):
            if p.suffix.lower() == ".syx":
                zf.write(p, f"my carts/{p.relative_to(cartridges[0])}")
    assert "matching against" in upload(("my carts.zip", buf.getvalue())), panel.status.value
    n = len(panel.prog.index)
    assert n == cartridges[1]["unique"] and f"{n} voices" in panel.library.value
    assert "loss" in panel_upload_note(panel, tmp_path)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../evil.syx", b"x")
    assert "evil.zip" in upload(("evil.zip", evil.getvalue())) and "refused" in panel.status.value
    assert "/tmp" not in panel.status.value and len(panel.prog.index) == n  # the library stays
    assert "notes.txt: not a .syx" in upload(("notes.txt", b"hello"))


def panel_upload_note(panel, folder: Path) -> str:
    path = _sounds(folder)["note"]
    panel.upload.value = ({"name": path.name, "type": "audio/wav", "size": 0,
                           "content": memoryview(path.read_bytes()),
                           "last_modified": datetime.now(UTC)},)  # fmt: skip
    return panel.status.value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ipywidgets' upload button makes its <input type=file> without putting it in the page (it
# clicks it from the button); a browser driven by a test cannot answer a file dialog, so the
# input is put in the page as it is made, and the file is given to it as a user's choice would.
_SHOW_FILE_INPUTS = """
const create = Document.prototype.createElement;
Document.prototype.createElement = function (tag, ...rest) {
  const el = create.call(this, tag, ...rest);
  if (String(tag).toLowerCase() === 'input') {
    queueMicrotask(() => {
      if (el.type === 'file' && !el.isConnected) {
        el.style.display = 'block';
        document.body.appendChild(el);
      }
    });
  }
  return el;
};
"""


@pytest.fixture
def app_server(tmp_path):
    """``voila 08_explorer.ipynb`` as `make app` runs it, from a folder without a dataset
    (the app alone), on a free port; stopped at the end."""
    folder = tmp_path / "app"
    folder.mkdir()
    for name in ("08_explorer.ipynb", "voila.json"):
        shutil.copy(ROOT / "notebooks" / name, folder)
    port = _free_port()
    env = dict(os.environ)  # COMPANION_LIBRARY=none (conftest): no library is built for it
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("voila")), "08_explorer.ipynb",
                             f"--port={port}"], cwd=folder, stdout=log,
                            stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "voila.log").read_text()
            time.sleep(0.2)
    yield url, tmp_path / "voila.log"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_app_in_chromium(app_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from companion.publishing.site_check import chromium

    url, log = app_server
    sounds = _sounds(tmp_path)
    with chromium() as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": _SHOW_FILE_INPUTS})  # fmt: skip
        driver.get(url)
        wait = WebDriverWait(driver, 180)
        file_input = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                                "input[type=file]")))  # fmt: skip
        def status() -> tuple[str, str]:  # read in one step: the widget replaces the span
            return tuple(driver.execute_script(
                "const s = document.querySelector('span.status');"
                "return s ? [s.textContent, s.className] : ['', ''];"))  # fmt: skip

        def upload(path: Path) -> str:
            file_input.send_keys(str(path))
            wait.until(lambda d: status()[0].startswith(f"{path.name}:"))
            return status()[0]

        text = upload(sounds["note"])
        assert "plays at key 60 (C4" in text and "loss" in text, text
        link = driver.find_element(By.CSS_SELECTOR, "a.download[download='my_note.syx']")
        syx = base64.b64decode(link.get_attribute("href").split("base64,", 1)[1])
        voices = parse_syx(syx).voices
        assert len(voices) == 1 and voices[0][1].display_name == "my_note"
        # the two players (your sound, the voice) play about the input's 1.6 s
        durations = lambda d: d.execute_script(  # noqa: E731
            "return Array.from(document.querySelectorAll('audio')).map(a => a.duration || 0)")
        wait.until(lambda d: sum(x > 1.0 for x in durations(d)) >= 2)
        # APP_SCREENSHOT=figures/app-screenshot.png: the repository's picture of the app
        driver.save_screenshot(os.environ.get("APP_SCREENSHOT", str(tmp_path / "app.png")))

        assert "notes.wav: " in upload(sounds["text"]) and "error" in status()[1]
        assert "silent" in upload(sounds["silence"])
        assert "of 600.0 s matched" in upload(sounds["long"])
        assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
        # the page's own resources all load (Voila's template also asks a CDN for an icon
        # font, which this machine, without a network, cannot reach)
        severe = [e["message"] for e in driver.get_log("browser")
                  if e["level"] == "SEVERE" and "ERR_NAME_NOT_RESOLVED" not in e["message"]]
        assert not severe, severe
        # the server goes on serving: the next upload is programmed
        assert "loss" in upload(sounds["note"])
    assert "Traceback" not in log.read_text()
