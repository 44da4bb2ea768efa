"""DX7 sysex files: tolerant reading of whatever the cartridge collections hold, strict writing.

What dexed-py already does is used: ``Patch.to_packed`` packs a voice for a 32-voice bank.
What it lacks is written here: ``Patch.load_bank`` reads only a 4104-byte bulk dump or a raw
4096-byte payload, normalises corrupt bytes silently (so a corrupt voice cannot be told from a
good one) and does not read single-voice dumps, files holding several messages, or the
``F0 43 0n 09 10 00`` header variant; ``Patch.to_sysex`` is the engine's 156-byte layout, not a
framed MIDI message; ``Patch.save_to_bank`` writes only exactly 32 voices, in place.

A file with no sysex message at all (no 0xF0 byte) is *headerless*: raw voice data whose
layout is decided by its size alone, never guessed from its contents:

- N x 128 bytes: N packed voices, the 32-voice bank format without its framing (4096 bytes is
  one bank, 128 one voice, 5760 the 45 voices of a cartridge rip);
- N x 155 bytes: N unpacked (VCED) voices, the single-voice format without its framing, name
  at offset 145 of each voice (4960 bytes is 32 voices, as TX802 rips are; 155 one voice).

Any other size, or one that is a multiple of both (19840 bytes = 155 x 128), is reported as
holding no voice data, with its size in the reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from companion.dx7.voice import N_PARAMS, NAME_LENGTH, Voice, out_of_range

BANK_SIZE = 32
PACKED_VOICE = 128
BANK_PAYLOAD = BANK_SIZE * PACKED_VOICE  # 4096
VCED_SIZE = N_PARAMS + NAME_LENGTH  # 155
BANK_MESSAGE = 6 + BANK_PAYLOAD + 2  # 4104
SINGLE_MESSAGE = 6 + VCED_SIZE + 2  # 163
SYSEX_START, SYSEX_END, YAMAHA = 0xF0, 0xF7, 0x43


def checksum(payload: bytes) -> int:
    """DX7 checksum: the low 7 bits of the two's complement of the payload's sum."""
    return (-sum(payload)) & 0x7F


def unpack_packed(packed) -> tuple[np.ndarray, list[str]]:
    """Unpack 32-voice bank records into VCED-ordered parameter values, corrupt ones included.

    Bits the format leaves unused in a shared byte are ignored, as the DX7 and Dexed do; a
    field's own bits are kept as they are, so an out-of-range value stays visible to
    ``out_of_range`` instead of being clamped.

    Args:
        packed: (N, 128) uint8 array, or bytes of length N * 128.

    Returns:
        values: (N, 145) int64, VCED order, possibly out of range.
        names: N strings of 10 characters (7-bit).
    """
    p = (
        np.frombuffer(bytes(packed), dtype=np.uint8)
        if isinstance(packed, bytes | bytearray)
        else np.asarray(packed, dtype=np.uint8)
    )
    p = p.reshape(-1, PACKED_VOICE).astype(np.int64)
    n = len(p)
    out = np.zeros((n, N_PARAMS), dtype=np.int64)
    for block in range(6):  # storage order: OP6 first, in both formats
        src, dst = p[:, block * 17 : (block + 1) * 17], out[:, block * 21 : (block + 1) * 21]
        dst[:, 0:11] = src[:, 0:11]  # EG rates, EG levels, breakpoint, left/right depth
        dst[:, 11] = src[:, 11] & 0x03  # left curve
        dst[:, 12] = (src[:, 11] >> 2) & 0x03  # right curve
        dst[:, 13] = src[:, 12] & 0x07  # rate scaling
        dst[:, 20] = (src[:, 12] >> 3) & 0x0F  # detune (shares the byte with rate scaling)
        dst[:, 14] = src[:, 13] & 0x03  # amp-mod sensitivity
        dst[:, 15] = (src[:, 13] >> 2) & 0x07  # key-velocity sensitivity
        dst[:, 16] = src[:, 14]  # output level
        dst[:, 17] = src[:, 15] & 0x01  # oscillator mode
        dst[:, 18] = (src[:, 15] >> 1) & 0x1F  # coarse
        dst[:, 19] = src[:, 16]  # fine
    out[:, 126:134] = p[:, 102:110]  # pitch EG rates and levels
    out[:, 134] = p[:, 110] & 0x1F  # algorithm
    out[:, 135] = p[:, 111] & 0x07  # feedback
    out[:, 136] = (p[:, 111] >> 3) & 0x01  # osc key sync
    out[:, 137:141] = p[:, 112:116]  # LFO speed, delay, PMD, AMD
    out[:, 141] = p[:, 116] & 0x01  # LFO sync
    out[:, 142] = (p[:, 116] >> 1) & 0x07  # LFO wave
    out[:, 143] = (p[:, 116] >> 4) & 0x07  # pitch-mod sensitivity
    out[:, 144] = p[:, 117]  # transpose
    names = [bytes(row & 0x7F).decode("ascii") for row in p[:, 118:128].astype(np.uint8)]
    return out, names


def unpack_vced(data) -> tuple[np.ndarray, list[str]]:
    """Split unpacked (single-voice, VCED) records into parameter values and names.

    Args:
        data: bytes of length N * 155: 145 parameters then a 10-character name, per voice.

    Returns:
        values: (N, 145) int64, VCED order, possibly out of range (not clamped).
        names: N strings of 10 characters (7-bit).
    """
    v = np.frombuffer(bytes(data), dtype=np.uint8).reshape(-1, VCED_SIZE)
    names = [bytes(row & 0x7F).decode("ascii") for row in v[:, N_PARAMS:VCED_SIZE]]
    return v[:, :N_PARAMS].astype(np.int64), names


def headerless_layout(size: int) -> tuple[str, int]:
    """The layout of raw voice data without sysex framing, from its size alone.

    Args:
        size: bytes.

    Returns:
        ("packed", N) for N x 128 bytes or ("unpacked", N) for N x 155 bytes.

    Raises:
        ValueError: a size that is neither, or both (not guessed); the reason names the size.
    """
    packed = size > 0 and size % PACKED_VOICE == 0
    unpacked = size > 0 and size % VCED_SIZE == 0
    if packed and unpacked:
        raise ValueError(
            f"{size} bytes without sysex framing: {size // PACKED_VOICE} packed or "
            f"{size // VCED_SIZE} unpacked voices, ambiguous"
        )
    if packed:
        return "packed", size // PACKED_VOICE
    if unpacked:
        return "unpacked", size // VCED_SIZE
    raise ValueError(
        f"{size} bytes without sysex framing: not N x {PACKED_VOICE} packed or "
        f"N x {VCED_SIZE} unpacked voice bytes"
    )


def pack_voice(voice: Voice) -> bytes:
    """The 128-byte bank record of a voice (dexed-py's packing)."""
    return voice.to_patch().to_packed()


def _frame(header: bytes, payload: bytes) -> bytes:
    return header + payload + bytes([checksum(payload), SYSEX_END])


def single_voice_message(voice: Voice, channel: int = 0) -> bytes:
    """A 163-byte single-voice dump (format 0) that Dexed and a hardware DX7 load."""
    return _frame(bytes([SYSEX_START, YAMAHA, channel & 0x0F, 0x00, 0x01, 0x1B]), voice.vced())


def bank_message(voices: list[Voice], channel: int = 0) -> bytes:
    """A 4104-byte 32-voice bulk dump (format 9).

    Args:
        voices: exactly 32 voices.
    """
    if len(voices) != BANK_SIZE:
        raise ValueError(f"a DX7 bank holds {BANK_SIZE} voices, got {len(voices)}")
    payload = b"".join(pack_voice(v) for v in voices)
    return _frame(bytes([SYSEX_START, YAMAHA, channel & 0x0F, 0x09, 0x20, 0x00]), payload)


@dataclass
class Skipped:
    """A voice that was read but not accepted."""

    file: str
    index: int
    reason: str
    param: str | None = None
    value: int | None = None

    def __str__(self) -> str:
        return f"{self.file}: voice {self.index}: {self.reason}"


@dataclass
class Message:
    """One block of voice data in a file: a sysex message, or the whole of a headerless file.

    Attributes:
        kind: "bank", "single voice", "headerless packed" or "headerless unpacked".
        offset: byte of the file where it starts.
        positions: the positions (in the file) of the voices it holds, corrupt ones included.
        checksum_ok: True when its checksum matched, False when wrong or missing, None for
            headerless data (which carry none).
    """

    kind: str
    offset: int
    positions: range
    checksum_ok: bool | None


@dataclass
class SyxContents:
    """What one .syx file held.

    Attributes:
        voices: (position in the file, voice) for every valid voice, in file order.
        skipped: corrupt voices, with the first out-of-range parameter.
        warnings: readable oddities (bad or missing checksum, ignored messages).
        messages: the blocks of voice data read, in file order, each with its checksum status.
        error: set when the file holds no DX7 voice data at all.
    """

    file: str
    voices: list[tuple[int, Voice]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    error: str | None = None

    def checksum_ok(self, position: int) -> bool | None:
        """The checksum status of the message holding the voice at ``position``."""
        for m in self.messages:
            if position in m.positions:
                return m.checksum_ok
        raise IndexError(f"{self.file}: no voice at position {position}")


def _accept(out: SyxContents, values: np.ndarray, names: list[str]) -> range:
    """Validate voices and file them as accepted or skipped; returns their positions."""
    start = len(out.voices) + len(out.skipped)
    for row, name in zip(values, names):
        index = len(out.voices) + len(out.skipped)
        problems = out_of_range(row)
        if problems:
            first = problems[0]
            reason = "out of range: " + ", ".join(map(str, problems[:3]))
            reason += f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            out.skipped.append(Skipped(out.file, index, reason, first.param, first.value))
        else:
            out.voices.append((index, Voice(bytes(row.astype(np.uint8)), name)))
    return range(start, len(out.voices) + len(out.skipped))


def _check(out: SyxContents, what: str, payload: bytes, stored: int | None) -> bool:
    """Whether a message's stored checksum matches its payload (a warning when not)."""
    if stored is None or stored == SYSEX_END:
        out.warnings.append(f"{what}: checksum missing")
        return False
    if stored != checksum(payload):
        out.warnings.append(
            f"{what}: checksum 0x{stored:02X}, computed 0x{checksum(payload):02X} (voices kept)"
        )
        return False
    return True


def _headerless(out: SyxContents, data: bytes) -> SyxContents:
    try:
        kind, n = headerless_layout(len(data))
    except ValueError as e:
        out.error = f"{out.file}: no DX7 voice data ({e})"
        return out
    values, names = unpack_packed(data) if kind == "packed" else unpack_vced(data)
    out.messages.append(Message(f"headerless {kind}", 0, _accept(out, values, names), None))
    if kind == "packed" and 1 < n < BANK_SIZE:  # a bank missing voices (31 is common)
        out.warnings.append(f"headerless data: holds {n} voices, a bank has {BANK_SIZE}")
    return out


# First bytes of the files users pass by mistake, and what they are.
SIGNATURES = {b"fLaC": "a FLAC audio file", b"OggS": "an Ogg audio file",
              b"ID3": "an MP3 audio file", b"MThd": "a Standard MIDI file"}  # fmt: skip


def signature(data: bytes) -> str | None:
    """What a file is from its first bytes, when they are an audio or MIDI file's signature:
    e.g. "a WAV audio file"; None otherwise (DX7 data start with 0xF0 or 7-bit bytes)."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV audio file"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF audio file"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MP3 audio file"  # an MPEG audio frame's 11-bit sync word, no ID3 tag
    return next((what for magic, what in SIGNATURES.items() if head.startswith(magic)), None)


def _is_text(data: bytes) -> bool:
    """UTF-8 text of printable characters and line breaks only (voice data hold control bytes:
    small parameter values)."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _not_syx(out: SyxContents, data: bytes, dx7_header: bool) -> SyxContents:
    """A refused file that is no sysex file at all (text, or 8-bit bytes without a DX7 header
    or any well-formed sysex message) is said to be so, instead of the odd-sysex reason."""
    if not out.error:
        return out
    if _is_text(data):
        reason = f"no DX7 voice data in its {len(data)} bytes; it looks like a text file"
    elif dx7_header or max(data) < 0x80 or re.search(rb"\xf0[\x00-\x7f]*\xf7", data):
        return out  # a sysex or raw-data file without DX7 voices: its reason is the right one
    else:
        reason = f"no DX7 voice data or well-formed sysex message in its {len(data)} bytes"
    out.error = f"{out.file}: not a .syx file ({reason})"
    out.warnings.clear()  # each 0xF0 of binary data was reported as a foreign message
    return out


def parse_syx(data: bytes, file: str = "<bytes>") -> SyxContents:
    """Every DX7 voice in a file's bytes, never raising on bad data.

    Reads 32-voice bulk dumps (header ``F0 43 0n 09 20 00``, or the ``09 10 00`` variant),
    single-voice dumps (``F0 43 0n 00 01 1B``), any number of them in one file between other
    sysex messages (which are skipped with a warning), and headerless data (no 0xF0 byte in
    the file) whose layout its size decides: N x 128 bytes packed, N x 155 unpacked voices
    (see the module docstring; other sizes are reported, not guessed). A bank message that
    ends after fewer than 32 whole voices (31 is common) gives them, with a warning; a file
    that is audio, MIDI or text, or binary without sysex, is reported as not a .syx file.

    Args:
        data: the file's bytes.
        file: the name used in messages.
    """
    out = SyxContents(file)
    if not data:
        out.error = f"{file}: empty file"
        return out
    if what := signature(data):  # not searched for 0xF0: audio bytes hold many
        out.error = f"{file}: not a .syx file (no DX7 voice data; it looks like {what})"
        return out
    if SYSEX_START not in data:
        # Voice data are 7-bit, so a file without any 0xF0 byte holds no sysex message: raw
        # data, as cartridge rips often are. A file with a sysex message after a foreign
        # header (a librarian's) is read as messages, never as raw data of its size.
        return _not_syx(_headerless(out, data), data, False)
    pos, found, dx7_header = 0, False, False
    while True:
        start = data.find(SYSEX_START, pos)
        if start < 0:
            break
        if start > pos:
            out.warnings.append(f"{start - pos} bytes outside sysex messages ignored at {pos}")
        head = data[start : start + 6]
        is_yamaha = len(head) == 6 and head[1] == YAMAHA and head[2] < 0x10
        if is_yamaha and head[3] == 0x09 and head[4:6] in (b"\x20\x00", b"\x10\x00"):
            size, what = BANK_PAYLOAD, f"bank at byte {start}"
        elif is_yamaha and head[3:6] == b"\x00\x01\x1b":
            size, what = VCED_SIZE, f"single voice at byte {start}"
        else:
            end = data.find(SYSEX_END, start + 1)
            stop = len(data) if end < 0 else end + 1
            out.warnings.append(
                f"non-DX7-voice sysex message ({stop - start} bytes) at byte {start}"
            )
            pos = stop
            continue
        dx7_header = True
        payload = data[start + 6 : start + 6 + size]
        end = data.find(SYSEX_END, start + 6, start + 6 + size) if size == BANK_PAYLOAD else -1
        n, extra = divmod(end - start - 6, PACKED_VOICE)
        if end >= 0 and n > 0 and extra <= 1:
            # The message ends (F7) after whole voices, with or without a checksum: a bank of
            # fewer voices, as some librarians write (31 is common); read what it holds.
            payload, stored, next_pos = payload[: n * PACKED_VOICE], data[end - 1], end + 1
            stored = stored if extra else None
            out.warnings.append(f"{what}: holds {n} voices, a bank has {BANK_SIZE}")
        elif len(payload) < size:
            out.warnings.append(f"{what}: truncated ({len(payload)} of {size} data bytes)")
            break
        else:
            tail = data[start + 6 + size : start + 6 + size + 2]
            stored, next_pos = (tail[0] if tail else None), start + 6 + size
            next_pos += 1 if tail[:1] == bytes([SYSEX_END]) else len(tail[:2])
        ok = _check(out, what, payload, stored)
        found = True
        values, names = unpack_packed(payload) if size == BANK_PAYLOAD else unpack_vced(payload)
        positions = _accept(out, values, names)
        out.messages.append(Message(what.split(" at ")[0], start, positions, ok))
        pos = next_pos
    if not found and not out.voices:
        reason = "; ".join(out.warnings[:2]) if out.warnings else f"{len(data)} bytes, no sysex"
        out.error = f"{file}: no DX7 voice data ({reason})"
    return _not_syx(out, data, dx7_header)


def read_syx(path: str | os.PathLike, name: str | None = None) -> SyxContents:
    """``parse_syx`` on a file; an unreadable file is reported in ``error``, not raised."""
    label = name or str(path)
    if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():
        # a device or a pipe: reading it might never end
        return SyxContents(label, error=f"{label}: not a regular file (a device or a pipe)")
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return SyxContents(label, error=f"{label}: cannot read ({e.strerror or e})")
    return parse_syx(data, label)


def read_voices(path: str | os.PathLike) -> list[Voice]:
    """The valid voices of one file, for users: raises ValueError with a one-line reason when
    it holds none."""
    contents = read_syx(path)
    if contents.error:
        raise ValueError(contents.error)
    if not contents.voices:
        reason = contents.skipped[0].reason if contents.skipped else "no voices"
        raise ValueError(f"{path}: no valid DX7 voice ({reason})")
    return [v for _, v in contents.voices]
