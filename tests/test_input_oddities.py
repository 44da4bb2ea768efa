"""Odd inputs that are read anyway, or refused plainly: banks of 31 voices, audio or text files
given as .syx, nearly silent recordings and stereo whose channels cancel."""

import re
import warnings

import numpy as np
import pytest
import soundfile as sf

from companion.data.audio import AudioError, InputWarning, load_audio, read_mono
from companion.dx7.sysex import (
    bank_message,
    checksum,
    parse_syx,
    read_syx,
    read_voices,
    single_voice_message,
)

from .conftest import FIXTURE_VOICES, packed_data

VOICES = FIXTURE_VOICES[:31]
HEADER = bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00])


def short_bank(voices, with_checksum=True) -> bytes:
    """A bank message holding fewer than 32 voices, as some librarians write them."""
    payload = packed_data(voices)
    return HEADER + payload + (bytes([checksum(payload)]) if with_checksum else b"") + b"\xf7"


# --- 31-voice banks -----------------------------------------------------------------------


def test_31_voice_bank_message_is_read_with_a_warning(tmp_path):
    path = tmp_path / "short.syx"
    path.write_bytes(short_bank(VOICES))
    got = read_syx(path)
    assert got.error is None and got.voices == list(enumerate(VOICES)) and not got.skipped
    assert got.warnings == ["bank at byte 0: holds 31 voices, a bank has 32"]
    assert [(m.kind, m.positions, m.checksum_ok) for m in got.messages] == [
        ("bank", range(31), True)
    ]
    assert read_voices(path) == VOICES


def test_31_voice_bank_without_checksum_and_followed_by_a_message():
    data = short_bank(VOICES, with_checksum=False) + single_voice_message(FIXTURE_VOICES[35])
    got = parse_syx(data, "two.syx")
    assert [v for _, v in got.voices] == VOICES + [FIXTURE_VOICES[35]]
    assert got.warnings == [
        "bank at byte 0: holds 31 voices, a bank has 32",
        "bank at byte 0: checksum missing",
    ]
    assert [(m.kind, m.offset, m.checksum_ok) for m in got.messages] == [
        ("bank", 0, False),
        ("single voice", 6 + 31 * 128 + 1, True),
    ]


def test_headerless_31_voices_are_read_with_a_warning(tmp_path):
    path = tmp_path / "rip.syx"
    path.write_bytes(packed_data(VOICES))
    assert path.stat().st_size == 3968
    got = read_syx(path)
    assert got.error is None and got.voices == list(enumerate(VOICES))
    assert got.warnings == ["headerless data: holds 31 voices, a bank has 32"]


def test_whole_banks_and_cut_files_are_as_before():
    bank = FIXTURE_VOICES[:32]
    whole = parse_syx(bank_message(bank))
    assert [v for _, v in whole.voices] == bank and not whole.warnings
    assert not parse_syx(packed_data(bank)).warnings
    # a file cut after 31 voices (no F7: the message does not end) is still refused whole
    cut = parse_syx(bank_message(bank)[: 6 + 31 * 128 + 1], "cut.syx")
    assert cut.voices == [] and "truncated (3969 of 4096 data bytes)" in cut.error
    # an F7 that does not end whole voices is not a short bank
    odd = parse_syx(HEADER + packed_data(VOICES)[:-5] + b"\x00\xf7", "odd.syx")
    assert odd.voices == [] and "truncated" in odd.error


# --- files that are not .syx --------------------------------------------------------------


def tone(seconds=1.0, rate=22050, amplitude=0.5, freq=440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    "ext,what",
    [
        ("wav", "a WAV audio file"),
        ("aiff", "an AIFF audio file"),
        ("flac", "a FLAC audio file"),
        ("ogg", "an Ogg audio file"),
        ("mp3", "an MP3 audio file"),
    ],
)
def test_audio_file_is_not_a_syx_file(tmp_path, ext, what):
    path = tmp_path / f"c4.{ext}"
    sf.write(path, tone(), 22050)
    assert 0xF0 in path.read_bytes()  # what made the old reader see sysex messages in it
    message = f"{path}: not a .syx file (no DX7 voice data; it looks like {what})"
    got = read_syx(path)
    assert got.error == message and got.voices == [] and not got.warnings
    with pytest.raises(ValueError, match=re.escape(message)):
        read_voices(path)


def test_mp3_without_id3_tag_is_recognised_by_its_frame_sync():
    got = parse_syx(b"\xff\xfb\x90\x64" + bytes(range(256)) * 4, "x.mp3")
    assert got.error == (
        "x.mp3: not a .syx file (no DX7 voice data; it looks like an MP3 audio file)"
    )


def test_text_file_is_not_a_syx_file(tmp_path):
    path = tmp_path / "readme.syx"
    path.write_text("These banks came from a 1987 cartridge. Enjoy! \u00e9\n" * 3)
    size = path.stat().st_size
    assert read_syx(path).error == (
        f"{path}: not a .syx file (no DX7 voice data in its {size} bytes; it looks like a "
        "text file)"
    )


def test_binary_file_without_sysex_is_not_a_syx_file():
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # 0xF0 bytes, none starting sysex
    got = parse_syx(data, "pic.syx")
    assert got.error == (
        f"pic.syx: not a .syx file (no DX7 voice data or well-formed sysex message in its "
        f"{len(data)} bytes)"
    )
    assert not got.warnings  # not one line per 0xF0 byte


@pytest.mark.parametrize(
    "data,reason",
    [
        (bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x00, 0xF7]), "non-DX7-voice sysex message"),
        (HEADER + bytes(600), "truncated"),
        (bytes([1, 2, 3]) * 50, "150 bytes without sysex framing"),
    ],
)
def test_sysex_and_raw_data_without_voices_keep_their_reason(data, reason):
    got = parse_syx(data, "other.syx")
    assert got.error.startswith("other.syx: no DX7 voice data (") and reason in got.error


# --- audio: nearly silent, channels that cancel -------------------------------------------


def no_warnings(path, rate=22050):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_mono(path, rate)[0]


def test_nearly_silent_input_is_read_with_a_warning(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, tone(amplitude=10 ** (-90 / 20)), 22050, subtype="FLOAT")
    with pytest.warns(InputWarning) as record:
        audio = load_audio(path)
    assert [str(w.message) for w in record] == [
        f"{path}: nearly silent (peak -90 dBFS); it is matched by its shape, whatever its level"
    ]
    assert 2e-5 < np.abs(audio).max() < 4e-5  # used as it is, not scaled
    # -70 dBFS is quiet but not warned about; digital silence is still refused
    sf.write(path, tone(amplitude=10 ** (-70 / 20)), 22050, subtype="FLOAT")
    no_warnings(path)
    sf.write(path, np.zeros(22050, np.float32), 22050)
    with pytest.raises(AudioError, match="silent"):
        no_warnings(path)


def test_stereo_channels_that_cancel_use_the_loudest_channel(tmp_path):
    path = tmp_path / "phase.wav"
    left = tone(amplitude=0.5)
    sf.write(path, np.stack([left, -0.9 * left], axis=1), 22050, subtype="FLOAT")
    with pytest.warns(InputWarning) as record:
        audio = read_mono(path, 22050)[0]
    assert [str(w.message) for w in record] == [
        f"{path}: its 2 channels cancel when mixed to mono (26 dB below them, opposite phase?); "
        "channel 1, the loudest, is used instead"
    ]
    np.testing.assert_allclose(audio, left, atol=1e-6)  # the sound is kept, not its residue


@pytest.mark.parametrize(
    "right",
    [lambda x: x, lambda x: 0 * x, lambda x: -0.5 * x],
    ids=["same", "one silent", "partly opposite (-9.5 dB)"],
)
def test_normal_stereo_is_mixed_without_warnings(tmp_path, right):
    path = tmp_path / "stereo.wav"
    left = tone(amplitude=0.5)
    sf.write(path, np.stack([left, right(left)], axis=1), 22050, subtype="FLOAT")
    np.testing.assert_allclose(no_warnings(path), (left + right(left)) / 2, atol=1e-6)


def test_normal_mono_file_gives_no_warning(tmp_path):
    path = tmp_path / "mono.flac"
    sf.write(path, tone(rate=48000), 48000)
    assert len(no_warnings(path)) == 22050
