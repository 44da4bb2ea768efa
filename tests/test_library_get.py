"""`companion library get / use / info` and the library program finds without --library.

The download is served by a real HTTP server on 127.0.0.1 that the test starts, from an
archive the test makes of fixture cartridges (laid out like GitHub's archive of a commit: one
top folder, a README and a LICENSE beside the cartridges)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from companion.data import archive
from companion.io import write_audio

TOP = "Yamaha-DX7-patch-library-0123abc"


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    mode = "ok"  # "ok", or "half": Content-Length of the whole, then half of it and close
    requests = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.mode == "half":
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(self.body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def served(cartridges):
    """(url, sha256 by the issue's recipe, the server's handler class) for an archive of the
    fixture cartridges."""
    root = cartridges[0]
    buf = io.BytesIO()
    lines = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{TOP}/README.md", "# DX7 patches\n")
        zf.writestr(f"{TOP}/LICENSE", "public domain\n")
        for p in sorted(root.rglob("*")):
            if p.is_file():
                rel = p.relative_to(root).as_posix()
                zf.write(p, f"{TOP}/{rel}")
                if rel.lower().endswith(".syx"):
                    lines.append((rel, hashlib.sha256(p.read_bytes()).hexdigest()))
    # the recipe, written out here rather than through companion.data.archive
    text = "".join(f"{h}  {rel}\n" for rel, h in sorted(lines))
    sha = hashlib.sha256(text.encode()).hexdigest()

    handler = type("Handler", (_Handler,), {"body": buf.getvalue()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/archive/0123abc.zip", sha, handler
    server.shutdown()


def _home(tmp_path) -> dict:
    """The environment of a user whose data and config folders are under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_LIBRARY")}
    env["XDG_DATA_HOME"], env["XDG_CONFIG_HOME"] = str(tmp_path / "data"), str(tmp_path / "cfg")
    return env


def _companion(env, *args):
    return subprocess.run([sys.executable, "-m", "companion", *args], env=env,
                          capture_output=True, text=True)  # fmt: skip


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t)
    return write_audio(tmp_path_factory.mktemp("tone") / "tone.wav", audio, sr)


def test_get_then_program_uses_it(served, tmp_path, tone, cartridges):
    url, sha, handler = served
    env = _home(tmp_path)
    before = handler.requests
    proc = _companion(env, "library", "get", "--url", url, "--sha256", sha)
    assert proc.returncode == 0, proc.stderr
    lib = tmp_path / "data" / "companion" / "library"
    carts = sorted(p.relative_to(lib / "cartridges").as_posix() for p in _files(lib / "cartridges"))
    wanted = sorted(p.relative_to(cartridges[0]).as_posix() for p in _files(cartridges[0])
                    if p.suffix.lower() == ".syx")  # fmt: skip
    assert carts == sorted(wanted + ["LICENSE"])  # the README is not kept
    assert (lib / "presets.sqlite").is_file() and (lib / "presets.index.npz").is_file()
    assert "library.json" in os.listdir(lib) and handler.requests == before + 1
    assert not (tmp_path / "data" / "companion" / "downloads").exists()  # the zip is not kept

    again = _companion(env, "library", "get", "--url", url, "--sha256", sha)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert handler.requests == before + 1  # complete: not downloaded again

    info = _companion(env, "library", "info")
    assert f"library: {lib / 'presets.sqlite'} (from companion library get)" in info.stdout
    out = _companion(env, "program", str(tone), "--out-dir", str(tmp_path / "out"),
                     "--quality", "fast")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"; library {lib / 'presets.sqlite'}"), out.stdout
    none = _companion(env, "program", str(tone), "--out-dir", str(tmp_path / "out2"),
                      "--quality", "fast", "--library", "none")  # fmt: skip
    assert none.returncode == 0 and none.stdout.strip().endswith(
        "; no library (`companion library get` fetches one)")


def test_wrong_hash_is_refused_and_nothing_is_left(served, tmp_path):
    url, sha, _ = served
    env = _home(tmp_path)
    proc = _companion(env, "library", "get", "--url", url, "--sha256", "0" * 64)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "refused" in lines[-1] and url in lines[-1], proc.stderr
    assert _files(tmp_path / "data") == []
    assert "no library" in _companion(env, "library", "info").stdout


def test_a_download_cut_half_way_leaves_nothing_and_the_next_run_completes(served, tmp_path):
    url, sha, handler = served
    env = _home(tmp_path)
    handler.mode = "half"
    try:
        proc = _companion(env, "library", "get", "--url", url, "--sha256", sha)
    finally:
        handler.mode = "ok"
    assert proc.returncode == 1 and "cannot download" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and _files(tmp_path / "data") == []
    proc = _companion(env, "library", "get", "--url", url, "--sha256", sha)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "companion" / "library" / "library.json").is_file()


def test_offline_is_one_line_naming_the_way_out(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.zip"
    proc = _companion(_home(tmp_path), "library", "get", "--url", url, "--sha256", "0" * 64)
    assert proc.returncode == 1
    error = [x for x in proc.stderr.splitlines() if "error" in x]
    assert len(error) == 1 and url in error[0] and "companion library use DIR" in error[0]
    assert _files(tmp_path / "data") == []


def test_the_order_libraries_are_found_in(fixture_db, cartridges, tmp_path, monkeypatch):
    from companion.data import library

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("COMPANION_LIBRARY", raising=False)
    assert library.find() == library.Found(None)
    got = tmp_path / "data" / "companion" / "library"
    got.mkdir(parents=True)
    (got / "presets.sqlite").write_bytes(fixture_db.read_bytes())
    (got / "library.json").write_text("{}")
    assert library.find() == library.Found(got / "presets.sqlite", "companion library get")
    env = _home(tmp_path)
    proc = _companion(env, "library", "use", str(cartridges[0]))
    assert proc.returncode == 0, proc.stderr
    assert library.find() == library.Found(cartridges[0].resolve(), "companion library use")
    monkeypatch.setenv("COMPANION_LIBRARY", str(fixture_db))
    assert library.find() == library.Found(fixture_db, "$COMPANION_LIBRARY")
    assert library.find("x.sqlite") == library.Found(Path("x.sqlite"), "--library")
    bad = _companion(env, "library", "use", str(tmp_path / "nothing-here"))
    assert bad.returncode == 1 and "nothing-here: no such folder" in bad.stderr


def _zip(tmp_path, members: dict, name="a.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():  # a name, or a ZipInfo (a link)
            zf.writestr(member, data)
    return path


def test_an_archive_is_read_safely(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    ok = _zip(tmp_path, {"top/a/b.SYX": b"x", "top/c.syx": b"y", "top/notes.txt": b"n",
                         "top/LICENSE": b"l", "top/a/LICENSE": b"no"})  # fmt: skip
    assert archive.extract(ok, dest) == ["LICENSE", "a/b.SYX", "c.syx"]
    assert (dest / "a" / "b.SYX").read_bytes() == b"x" and not (dest / "notes.txt").exists()

    for bad, why in [({"top/../../evil.syx": b"x"}, "outside"),
                     ({"/etc/evil.syx": b"x"}, "outside")]:  # fmt: skip
        d = tmp_path / f"d{len(why)}{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        with pytest.raises(ValueError, match=why):
            archive.extract(_zip(tmp_path, bad, "bad.zip"), d)
        assert _files(d) == [] and not (tmp_path / "evil.syx").exists()

    link = zipfile.ZipInfo("top/link.syx")
    link.external_attr = (0o120777 << 16)
    with pytest.raises(ValueError, match="link"):
        archive.extract(_zip(tmp_path, {link: "/etc/passwd"}, "link.zip"), dest)

    # a bomb: a small archive that unpacks past the cap is refused before anything is written
    bomb = _zip(tmp_path, {"top/big.syx": b"\0" * (4 << 20)}, "bomb.zip")
    assert bomb.stat().st_size < 64 << 10
    d = tmp_path / "bomb"
    d.mkdir()
    with pytest.raises(ValueError, match="MiB allowed; refused"):
        archive.extract(bomb, d, max_bytes=1 << 20)
    assert _files(d) == []
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        archive.extract(tmp_path / "text.zip", d)


def test_content_hash_is_the_recipe(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.syx").write_bytes(b"1")
    (tmp_path / "a.SYX").write_bytes(b"2")
    (tmp_path / "z.txt").write_bytes(b"3")
    h = {p: hashlib.sha256(d).hexdigest() for p, d in (("b/x.syx", b"1"), ("a.SYX", b"2"))}
    text = f"{h['a.SYX']}  a.SYX\n{h['b/x.syx']}  b/x.syx\n"
    assert archive.folder_hashes(tmp_path) == h
    assert archive.content_hash(h) == hashlib.sha256(text.encode()).hexdigest()


def test_without_any_library_program_generates_one_from_the_model(tmp_path, tone):
    """A new user with no library: the first program generates 4,096 voices from the shipped
    model's prior and indexes them (once), matches against them and says so, naming the
    command that gets real voices; the next run uses them as they are; `--library none` and
    $COMPANION_LIBRARY=none still mean none."""
    from companion.data import library
    from companion.data.presets import info

    env = _home(tmp_path)
    first = _companion(env, "program", str(tone), "--out-dir", str(tmp_path / "a"),
                       "--quality", "fast")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "generating 4,096 voices from the model" in first.stderr, first.stderr
    assert first.stdout.strip().endswith(
        "; library generated from the model (`companion library get` fetches real voices)"
    ), first.stdout
    [folder] = (tmp_path / "data" / "companion" / "generated").iterdir()
    db = folder / "presets.sqlite"
    assert (folder / "library.json").is_file() and (folder / "presets.index.npz").is_file()
    voices = info(db)["unique_voices"]
    assert 4000 <= voices <= 4096  # sampled voices, duplicates dropped
    assert len(list((folder / "cartridges").glob("*.syx"))) == -(-voices // 32)  # 32 a bank
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no leftovers

    again = _companion(env, "program", str(tone), "--out-dir", str(tmp_path / "b"),
                       "--quality", "fast")  # fmt: skip
    assert again.returncode == 0 and "generating" not in again.stderr, again.stderr
    assert "library generated from the model" in again.stdout
    info_line = _companion(env, "library", "info").stdout
    assert f"library: {db} (4,096 voices generated from the model" in info_line, info_line
    # and says so without loading the model's code (torch: seconds at start-up)
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "companion", "library",
                            "info"], env=env, capture_output=True, text=True)  # fmt: skip
    loaded = {line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines()}
    assert timed.returncode == 0 and "companion.data.library" in loaded, timed.stderr[-500:]
    assert not {m for m in loaded if m.split(".")[0] == "torch"}, "library info imported torch"
    for extra, env_value in ((["--library", "none"], None), ([], "none")):
        e = dict(env, **({"COMPANION_LIBRARY": env_value} if env_value else {}))
        none = _companion(e, "program", str(tone), "--out-dir", str(tmp_path / "c"),
                          "--quality", "fast", "--overwrite", *extra)  # fmt: skip
        assert none.returncode == 0, none.stderr
        assert none.stdout.strip().endswith("; no library (`companion library get` fetches one)")
    assert library.Found(None).describe().startswith("no library found: program generates")
