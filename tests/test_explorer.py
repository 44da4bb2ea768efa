"""The explorer's widgets, driven as a user would (choose, slide, click), headless."""

import base64
import re

from companion.dx7.sysex import parse_syx
from companion.publishing import explorer


def test_panels(smoke_run):
    data, run_dir = smoke_run
    voices = explorer.test_voices(str(data))
    assert voices and re.fullmatch(r"\d{6} .+", voices[0][0])

    panel = explorer.program_panel(run_dir, voices)
    choose, (original, inferred), status = (panel.children[0], panel.children[1].children,
                                            panel.children[2])  # fmt: skip
    first = inferred.audio.value
    assert first[:4] == b"RIFF" and inferred.image.value[:4] == b"\x89PNG"
    choose.value = voices[-1][1]  # another voice: everything follows
    assert "original: " + voices[-1][1].display_name in original.title.value
    assert status.value.startswith("loss ") and "network alone" in status.value

    path = explorer.path_panel(run_dir, voices)
    slider, sound = path.children[1], path.children[2]
    start = sound.audio.value
    slider.value = slider.max
    assert "step 7 of 7" in sound.title.value and sound.audio.value != start

    gen = explorer.generate_panel(run_dir)
    button, sound, link = gen.children
    button.click()
    button.click()
    assert "GEN 002" in sound.title.value
    payload = re.search(r"base64,([A-Za-z0-9+/=]+)", link.value).group(1)
    parsed = parse_syx(base64.b64decode(payload))
    assert len(parsed.voices) == 1 and parsed.voices[0][1].display_name == "GEN 002"
