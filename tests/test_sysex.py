import warnings

import numpy as np
import pytest
from dexed import Patch
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.dx7.sysex import (
    bank_message,
    checksum,
    headerless_layout,
    parse_syx,
    read_syx,
    read_voices,
    single_voice_message,
    unpack_packed,
)
from companion.dx7.voice import INIT_VOICE
from companion.io import write_atomic

from .conftest import FIXTURE_VOICES, packed_data, vced_data


def banks(voices):
    """Fixture voices in 32-voice banks, the last one filled up with INIT VOICE."""
    out = []
    for i in range(0, len(voices), 32):
        chunk = voices[i : i + 32]
        out.append(chunk + [INIT_VOICE] * (32 - len(chunk)))
    return out


@pytest.mark.parametrize("voice", FIXTURE_VOICES, ids=lambda v: v.display_name)
def test_single_voice_round_trip(voice):
    data = single_voice_message(voice, channel=3)
    assert len(data) == 163 and data[:6] == bytes([0xF0, 0x43, 0x03, 0x00, 0x01, 0x1B])
    assert data[-1] == 0xF7 and data[-2] == checksum(data[6:-2])
    assert (sum(data[6:-1]) & 0x7F) == 0  # what a DX7 checks: data + checksum = 0 mod 128
    got = parse_syx(data, "x.syx")
    assert got.error is None and not got.skipped and not got.warnings
    assert got.voices == [(0, voice)]


@pytest.mark.parametrize("bank", banks(FIXTURE_VOICES))
def test_bank_round_trip_and_agreement_with_dexed(bank, tmp_path):
    data = bank_message(bank)
    assert len(data) == 4104 and data[:6] == bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00])
    got = parse_syx(data)
    assert [v for _, v in got.voices] == bank and not got.warnings
    # dexed-py writes the same bytes for the same voices, and reads back the same parameters.
    ours = tmp_path / "ours.syx"
    ours.write_bytes(data)
    Patch.save_to_bank(str(tmp_path / "dexed.syx"), [v.to_patch() for v in bank])
    assert (tmp_path / "dexed.syx").read_bytes() == data
    for patch, voice in zip(Patch.load_bank(str(ours)), bank):
        assert patch.to_sysex()[:155] == voice.vced()


def test_unpack_places_detune_beside_rate_scaling():
    # OP6 byte 12 of a packed voice holds detune (bits 3-6) and rate scaling (bits 0-2).
    record = bytearray(INIT_VOICE.to_patch().to_packed())
    record[12] = (11 << 3) | 5
    values, _ = unpack_packed(bytes(record) * 32)
    assert values[0, 20] == 11 and values[0, 13] == 5


def test_variant_header_headerless_and_several_messages():
    bank = banks(FIXTURE_VOICES)[0]
    msg = bank_message(bank)
    variant = msg[:4] + b"\x10\x00" + msg[6:]
    assert [v for _, v in parse_syx(variant).voices] == bank
    headerless = parse_syx(msg[6:-2])
    assert [v for _, v in headerless.voices] == bank and headerless.error is None
    param_change = bytes([0xF0, 0x43, 0x10, 0x00, 0x05, 0x20, 0xF7])
    mixed = param_change + single_voice_message(FIXTURE_VOICES[5]) + b"junk" + msg
    got = parse_syx(mixed, "mixed.syx")
    assert [v for _, v in got.voices] == [FIXTURE_VOICES[5]] + bank
    assert [i for i, _ in got.voices] == list(range(33))
    assert any("non-DX7-voice" in w for w in got.warnings)


def test_bad_checksum_is_a_warning_and_voices_are_kept():
    data = bytearray(bank_message(banks(FIXTURE_VOICES)[0]))
    data[-2] ^= 0x01
    got = parse_syx(bytes(data), "bad.syx")
    assert len(got.voices) == 32 and got.error is None
    assert any("checksum" in w for w in got.warnings)
    missing = parse_syx(bytes(data[:-2]) + b"\xf7")
    assert len(missing.voices) == 32 and any("missing" in w for w in missing.warnings)


def test_corrupt_voice_is_skipped_with_file_index_param_value():
    data = bytearray(bank_message(banks(FIXTURE_VOICES)[0]))
    data[6 + 7 * 128 + 14] = 127  # voice 7, OP6 output level
    data[6 + 9 * 128 + 116] = 0x0E  # voice 9: LFO wave 7
    got = parse_syx(bytes(data), "c.syx")
    assert len(got.voices) == 30 and [i for i, _ in got.voices] == [
        i for i in range(32) if i not in (7, 9)
    ]
    assert [(s.file, s.index, s.param, s.value) for s in got.skipped] == [
        ("c.syx", 7, "op6_output_level", 127),
        ("c.syx", 9, "lfo_wave", 7),
    ]
    assert "c.syx: voice 7: out of range: op6_output_level=127" in str(got.skipped[0])


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty file"),
        (b"\x00\x01\x02" * 50, "no DX7 voice data"),
        (bank_message([INIT_VOICE] * 32)[:600], "truncated"),
        (bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00]), "truncated"),
        (bytes([0xF0, 0x41, 0x10, 0x42, 0xF7]), "non-DX7-voice"),
    ],
)
def test_files_without_voices_are_reported(data, reason):
    got = parse_syx(data, "bad.syx")
    assert got.voices == [] and got.error.startswith("bad.syx: ") and reason in got.error
    assert "\n" not in got.error


def test_read_errors_are_one_line(tmp_path):
    assert "cannot read" in read_syx(tmp_path / "missing.syx").error
    (tmp_path / "empty.syx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.syx: empty file"):
        read_voices(tmp_path / "empty.syx")


# Every headerless layout the reader accepts: (layout, voices). 4096 bytes is the common
# cartridge rip, 5760 the 45-voice one of the library, 4960 the TX802 rips.
HEADERLESS = [("packed", 1), ("packed", 32), ("packed", 45), ("unpacked", 1), ("unpacked", 32)]


@pytest.mark.parametrize("layout,n", HEADERLESS, ids=lambda x: str(x))
def test_headerless_layout_is_decided_by_size(layout, n, tmp_path):
    voices = (FIXTURE_VOICES * 2)[:n]
    data = packed_data(voices) if layout == "packed" else vced_data(voices)
    assert len(data) == n * (128 if layout == "packed" else 155) and 0xF0 not in data
    assert headerless_layout(len(data)) == (layout, n)
    path = tmp_path / "raw.syx"
    path.write_bytes(data)
    got = read_syx(path, name="raw.syx")
    assert got.error is None and not got.warnings and not got.skipped
    assert got.voices == list(enumerate(voices))
    assert [(m.kind, m.positions, m.checksum_ok) for m in got.messages] == [
        (f"headerless {layout}", range(n), None)
    ]


@pytest.mark.parametrize(
    "data,reason",
    [
        (bank_message(FIXTURE_VOICES[:32])[1:-1], "4102 bytes"),  # framing bytes lost
        (single_voice_message(FIXTURE_VOICES[3])[1:-1], "161 bytes"),
        (packed_data(FIXTURE_VOICES[:32]) + b"\x00", "4097 bytes"),
        (vced_data(FIXTURE_VOICES[:2])[:-1], "309 bytes"),
        (bytes(19840), "ambiguous"),  # 155 packed or 128 unpacked INIT-like voices: not guessed
    ],
    ids=["4102", "161", "4097", "309", "19840"],
)
def test_headerless_unknown_size_is_reported_not_guessed(data, reason):
    got = parse_syx(data, "odd.syx")
    assert got.voices == [] and got.skipped == [] and got.messages == []
    assert got.error.startswith("odd.syx: no DX7 voice data (") and reason in got.error
    assert str(len(data)) in got.error and "\n" not in got.error


def test_4960_byte_vced_file_gives_its_32_voices_with_their_names(tmp_path):
    voices = FIXTURE_VOICES[:32]
    path = tmp_path / "TX802BankA1.SYX"
    path.write_bytes(vced_data(voices))
    assert path.stat().st_size == 4960
    got = read_syx(path)
    assert [v.name for _, v in got.voices] == [v.name for v in voices]
    assert got.voices == list(enumerate(voices)) and not got.skipped


def test_foreign_header_before_a_bank_is_not_headerless_data():
    # 120 bytes of a librarian's header + a bank = 4224 bytes = 33 x 128: read as the message.
    bank = FIXTURE_VOICES[:32]
    data = b"Sysex Manager" + bytes(107) + bank_message(bank)
    assert len(data) == 33 * 128
    got = parse_syx(data, "sk.syx")
    assert [v for _, v in got.voices] == bank and [m.kind for m in got.messages] == ["bank"]
    assert got.warnings == ["120 bytes outside sysex messages ignored at 0"]


def test_checksum_flag_is_per_message():
    good, bad = FIXTURE_VOICES[:32], banks(FIXTURE_VOICES)[1]
    broken = bytearray(bank_message(bad))
    broken[-2] ^= 0x01
    no_checksum = single_voice_message(FIXTURE_VOICES[2])[:-2] + b"\xf7"
    data = bank_message(good) + bytes(broken) + single_voice_message(FIXTURE_VOICES[1])
    got = parse_syx(data + no_checksum, "two.syx")
    assert [v for _, v in got.voices] == good + bad + [FIXTURE_VOICES[1], FIXTURE_VOICES[2]]
    assert [(m.kind, m.offset, m.positions, m.checksum_ok) for m in got.messages] == [
        ("bank", 0, range(0, 32), True),
        ("bank", 4104, range(32, 64), False),
        ("single voice", 8208, range(64, 65), True),
        ("single voice", 8371, range(65, 66), False),
    ]
    flags = [got.checksum_ok(i) for i, _ in got.voices]
    assert flags == [True] * 32 + [False] * 32 + [True, False]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([128, 155]), st.integers(1, 40), st.data())
def test_random_headerless_data_gives_one_position_per_record(record, n, draw):
    # 7-bit bytes, as raw voice data are: every draw reaches the headerless reader.
    raw = bytes(b & 0x7F for b in draw.draw(st.binary(min_size=record * n, max_size=record * n)))
    got = parse_syx(raw)
    assert got.error is None and len(got.messages) == 1
    positions = sorted([i for i, _ in got.voices] + [s.index for s in got.skipped])
    assert positions == list(range(n))
    for _, voice in got.voices:
        assert parse_syx(single_voice_message(voice)).voices == [(0, voice)]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["any bytes", "headerless", "bank", "single voice"]), st.data())
def test_random_bytes_never_crash(kind, draw):
    """Random bytes of every shape the reader branches on. Plain random bytes nearly always
    hold a 0xF0 and so never reach the headerless reader; hence also 7-bit data of record
    multiples and of other sizes, and random payloads behind a bank or single-voice header,
    whole or cut short."""

    def seven_bit(n: int) -> bytes:
        return bytes(b & 0x7F for b in draw.draw(st.binary(min_size=n, max_size=n)))

    payload = {"bank": 4096, "single voice": 155}.get(kind)
    if kind == "any bytes":
        data = draw.draw(st.binary(max_size=9000))
    elif kind == "headerless":
        data = seven_bit(draw.draw(st.one_of(
            st.integers(1, 40).map(lambda n: 128 * n), st.integers(1, 40).map(lambda n: 155 * n),
            st.integers(1, 9000))))  # fmt: skip
    else:
        head = bytes.fromhex("f04300092000" if kind == "bank" else "f0430000011b")
        cut = draw.draw(st.integers(0, payload))
        data = head + seven_bit(cut)
        if cut == payload:
            data += draw.draw(st.sampled_from([b"", b"\x00", b"\x00\xf7"]))
    got = parse_syx(data)
    assert got.error is not None or got.voices or got.skipped
    for _, voice in got.voices:  # anything accepted is a valid voice that round-trips
        assert parse_syx(single_voice_message(voice)).voices == [(0, voice)]
    found = len(got.voices) + len(got.skipped)  # positions read, corrupt ones included
    if kind == "headerless":
        record = next((r for r in (128, 155) if len(data) % r == 0), None)
        if record is None:  # a size that is no layout: reported, nothing guessed
            assert found == 0 and f"{len(data)} bytes" in got.error
        else:
            assert got.error is None and found == len(data) // record
    elif kind != "any bytes":
        whole = len(data) >= 6 + payload
        assert found == ((32 if kind == "bank" else 1) if whole else 0)
        assert (got.error is None) == whole


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4103), st.integers(0, 255), st.integers(1, 4104))
def test_mutated_and_truncated_banks_never_crash(pos, value, cut):
    data = bytearray(bank_message(banks(FIXTURE_VOICES)[0]))
    data[pos] = value
    got = parse_syx(bytes(data[:cut]))
    assert len(got.voices) + len(got.skipped) <= 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # parsing must not emit Python warnings either
        parse_syx(bytes(data))


def test_write_atomic_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.syx"
    write_atomic(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.syx"]


def test_random_voices_values_round_trip_through_unpack():
    voices = FIXTURE_VOICES[:32]
    values, names = unpack_packed(bank_message(voices)[6:-2])
    assert np.array_equal(values, np.stack([v.values for v in voices]))
    assert names == [v.name for v in voices]
