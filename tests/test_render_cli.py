"""`companion render`: --index counts positions in the file, and bad arguments are one line."""

import pytest
import soundfile as sf

from companion.cli import main
from companion.dx7.sysex import bank_message

from .conftest import FIXTURE_VOICES


@pytest.fixture
def corrupt_first(tmp_path):
    """A bank whose voice 0 is corrupt (OP6 EG rate 1 = 120) and voice 1 is 'ALL MIN'."""
    data = bytearray(bank_message(FIXTURE_VOICES[:32]))
    data[6 + 0] = 120
    path = tmp_path / "bank.syx"
    path.write_bytes(bytes(data))
    return path


def render(capsys, *args):
    code = main(["render", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_counts_positions_and_names_a_corrupt_voice(corrupt_first, tmp_path, capsys):
    out = tmp_path / "a.wav"
    code, _, err = render(capsys, corrupt_first, "--index", 0, "-o", out)
    assert code == 1 and not out.exists()
    assert err == (
        f"companion: error: {corrupt_first}: voice 0 is corrupt "
        "(out of range: op6_eg_rate1=120 (max 99))\n"
    )
    code, stdout, _ = render(capsys, corrupt_first, "--index", 1, "-o", out)
    assert code == 0 and "'ALL MIN' (voice 1)" in stdout
    audio, rate = sf.read(out)
    assert rate == 22050 and audio.shape == (88200,)
    code, _, err = render(capsys, corrupt_first, "--index", 32, "-o", tmp_path / "b.wav")
    assert code == 1 and "holds 32 voices (0..31); --index 32 is not one" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--note", "300"], "note must be 0..127 and velocity 1..127, got 300 and 85"),
        (["--note", "-1"], "note must be 0..127"),
        (["--velocity", "0"], "got 60 and 0"),
        (["--velocity", "128"], "got 60 and 128"),
        (["-o", "x.xyz"], "x.xyz: unknown audio extension '.xyz'; use one of"),
        (["-o", "noext"], "noext: unknown audio extension ''; use one of"),
        (["-o", "bank.syx/a.wav"], "bank.syx is a file, not a folder"),
        (["-o", "d.wav"], "d.wav: is a folder"),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(
    corrupt_first, tmp_path, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.wav").mkdir()
    argv = ["--index", "1", "-o", "a.wav", *args]  # argparse: the last -o wins
    code, out, err = render(capsys, corrupt_first.name, *argv)
    assert code == 1 and out == "" and message in err
    assert err.count("\n") == 1 and err.startswith("companion: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.syx", "d.wav"]
    assert list((tmp_path / "d.wav").iterdir()) == []


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_output_formats(corrupt_first, tmp_path, capsys, ext):
    out = tmp_path / f"a{ext}"
    code, _, _ = render(capsys, corrupt_first, "--index", 2, "-o", out)
    assert code == 0 and sf.info(out).samplerate == 22050
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bank.syx", out.name])
