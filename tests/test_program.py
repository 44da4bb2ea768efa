"""companion program: audio in, a DX7 voice out (with a smoke-scale model)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.data.pitch import estimate_pitch
from companion.data.render import Play, Renderer
from companion.dx7.sysex import parse_syx
from companion.dx7.voice import INIT_VOICE
from companion.matching.loss import Target
from companion.matching.outputs import extensions, output_names
from companion.matching.program import QUALITIES, Programmer, program, retune, voice_name
from companion.matching.take import read_take

SR = 22050


@pytest.fixture(scope="module")
def model_dir(smoke_run):
    return smoke_run[1]


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sounds")
    r = Renderer()
    brass = INIT_VOICE.replace(op2_output_level=80, algorithm=0, feedback=5, op2_coarse=1)
    sf.write(folder / "brass.wav", r.render(brass), SR)
    stereo = np.stack([r.render(INIT_VOICE, 64, 100)] * 2, axis=1)
    sf.write(folder / "sine stereo.flac", stereo, SR)
    sf.write(folder / "silent.wav", np.zeros(SR, np.float32), SR)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVE")
    return folder


def test_program_writes_a_voice_per_input(model_dir, sounds, tmp_path):
    inputs = [sounds / "brass.wav", sounds / "silent.wav", sounds / "sine stereo.flac",
              sounds / "broken.wav"]  # fmt: skip
    results = program(inputs, tmp_path, model=model_dir, wav=True, png=True, progress=False)
    ok = {r.input.name: r for r in results if not r.error}
    bad = {r.input.name: r.error for r in results if r.error}
    assert set(ok) == {"brass.wav", "sine stereo.flac"}
    assert "silent" in bad["silent.wav"] and "cannot read audio" in bad["broken.wav"]
    for name, r in ok.items():
        stem = name.rsplit(".", 1)[0]
        data = (tmp_path / f"{stem}.syx").read_bytes()
        assert len(data) == 163
        voices = parse_syx(data).voices
        assert (
            len(voices) == 1
            and voices[0][1] == r.voice
            and r.voice.name == voice_name(stem).ljust(10)
        )
        audio, rate = sf.read(tmp_path / f"{stem}.wav")
        # the voice played as the input was read: its onset, key, hold and length
        assert rate == SR and len(audio) == r.takes[0].play.length
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
        assert r.loss <= r.candidate_loss <= r.network_loss
        assert r.audio is None and r.render is None  # results keep no audio: memory stays flat
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}.{e}" for s in ("brass", "sine stereo") for e in ("syx", "wav", "png"))  # fmt: skip


def test_one_candidate_is_the_network_answer(model_dir, sounds, tmp_path):
    (r,) = program([sounds / "brass.wav"], tmp_path, model=model_dir, candidates=1, tune=False,
                   progress=False)  # fmt: skip
    assert r.loss == r.network_loss and r.evals == 1 and not r.tuned
    prog = Programmer(model_dir, candidates=1)
    take = read_take(sounds / "brass.wav", prog.cfg)
    assert prog.network(take, "X") == [r.voice.replace(name="X")]


def test_pitch_and_retuning():
    r = Renderer()
    assert abs(estimate_pitch(r.render(INIT_VOICE), SR) - 261.63) < 1.5
    assert np.isnan(estimate_pitch(np.random.default_rng(0).standard_normal(4 * SR) * 0.1, SR))
    up = retune(INIT_VOICE, 300)
    assert up["transpose"] == 27 and up["op1_fine"] == 0
    f = estimate_pitch(r.render(up), SR)
    assert abs(1200 * np.log2(f / 261.63) - 300) < 5
    for shift in (12.0, -30.0, 45.0):
        f = estimate_pitch(r.render(retune(INIT_VOICE, shift)), SR)
        assert abs(1200 * np.log2(f / 261.63) - shift) < 5, shift
    fixed = INIT_VOICE.replace(op1_osc_mode=1)
    moved = retune(fixed, 40)  # OP1 at a fixed frequency is not touched; OP2..6 are ratios
    assert (moved["op1_fine"], moved["op1_detune"]) == (fixed["op1_fine"], fixed["op1_detune"])
    assert moved["op2_fine"] != fixed["op2_fine"]


def test_command_line(model_dir, sounds, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "companion",
        "program",
        str(sounds / "brass.wav"),
        str(sounds / "silent.wav"),
        "--out-dir",
        str(tmp_path),
        "--model",
        str(model_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "brass.syx" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("companion: error")]
    assert len(errors) == 1 and "silent.wav: audio is silent" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brass.syx"]
    (tmp_path / "empty").mkdir()
    bad = subprocess.run([*cmd[:5], "--out-dir", str(tmp_path), "--model", str(tmp_path / "empty")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "not a model folder" in bad.stderr


def test_default_model_beats_the_init_voice(sounds, tmp_path):
    """The shipped model's voice sounds closer to the input than the DX7's INIT VOICE does."""
    pluck = INIT_VOICE.replace(
        op1_eg_rate2=60,
        op1_eg_level2=0,
        op1_eg_level3=0,
        op1_eg_rate4=60,
        op2_output_level=85,
        op2_coarse=3,
        op2_eg_rate2=50,
        op2_eg_level3=0,
    )
    sf.write(tmp_path / "pluck.wav", Renderer().render(pluck), SR)
    (r,) = program([tmp_path / "pluck.wav"], tmp_path / "out", progress=False)  # the default model
    play = r.takes[0].play  # how the input was heard, and its answer played
    take = read_take(tmp_path / "pluck.wav", note=play.note, velocity=play.velocity,
                     hold_s=play.hold_s)  # fmt: skip
    assert take.play.length == play.length
    assert r.loss < float(Target(take.audio).loss(Renderer().play(INIT_VOICE, play)[None])[0])


def test_library_voices_join_the_candidates(model_dir, tmp_path):
    """A voice of a (32-voice) library, played as the input, is found again through it: the
    voice itself, moved to play at the key of the note heard (its key, 60, when it is given)."""
    from companion.data import presets
    from companion.dx7.sysex import bank_message

    from .conftest import FIXTURE_VOICES

    (tmp_path / "carts").mkdir()
    (tmp_path / "carts" / "bank.syx").write_bytes(bank_message(FIXTURE_VOICES[:32]))
    presets.build(tmp_path / "carts", tmp_path / "lib.sqlite", progress=False)
    voice = next(v for v in FIXTURE_VOICES[7:32] if np.abs(Renderer().render(v)).max() > 0.05)
    sf.write(tmp_path / "lib.wav", Renderer().render(voice), SR)
    for library in (tmp_path / "lib.sqlite", tmp_path / "carts"):
        (r,) = program([tmp_path / "lib.wav"], tmp_path / "out", model=model_dir, tune=False,
                       library=library, quality="fast", progress=False)  # fmt: skip
        moved_back = r.voice.replace(transpose=voice["transpose"])
        assert r.loss < 1e-3 and moved_back.params == voice.params
        (r,) = program([tmp_path / "lib.wav"], tmp_path / "out", model=model_dir, tune=False,
                       library=library, quality="fast", note=60, progress=False)  # fmt: skip
        assert r.loss < 1e-3 and r.voice.params == voice.params
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .syx files"):
        Programmer(model_dir, library=tmp_path / "empty")


def _brass(sounds):
    return sf.read(sounds / "brass.wav", dtype="float32")[0]


def test_quality_levels_never_get_worse(model_dir, sounds):
    """fast is never worse than the network alone, good / best never worse than fast: each
    level's candidates hold the one before's, and refinement keeps its best start."""
    assert QUALITIES["fast"].latent == QUALITIES["good"].latent == QUALITIES["best"].latent
    audio, losses = _brass(sounds), {}
    for q in ("fast", "good", "best"):
        with Programmer(model_dir, quality=q, budget=float("inf"), jobs=1) as prog:
            r = prog.run_audio(audio, Path("brass"), tune=False)
        losses[q] = r.loss
        assert r.loss <= r.candidate_loss <= r.network_loss
    assert losses["best"] <= losses["good"] <= losses["fast"]
    assert losses["best"] < losses["fast"]  # the search finds something better here


def test_max_is_best_with_more_of_everything(model_dir, sounds):
    """--quality max (offline work): best's candidates and more library voices, more
    evaluations and seconds; with a --budget it keeps its best start."""
    best, top = QUALITIES["best"], QUALITIES["max"]
    assert top.latent == best.latent and top.retrieval >= 2 * best.retrieval
    assert top.evals >= 10 * best.evals and top.seconds >= 10 * best.seconds
    with Programmer(model_dir, quality="max", budget=2.0, jobs=1) as prog:
        r = prog.run_audio(_brass(sounds), Path("brass"), tune=False)
    assert r.loss <= r.candidate_loss <= r.network_loss


def test_results_do_not_depend_on_the_number_of_processes(model_dir, sounds):
    audio, found = _brass(sounds), []
    for jobs in (1, 2):
        with Programmer(model_dir, quality="good", budget=float("inf"), jobs=jobs) as prog:
            found.append(prog.run_audio(audio, Path("brass")))
    assert found[0].voice == found[1].voice and found[0].loss == found[1].loss
    assert found[0].evals == found[1].evals


def test_tuning_never_worsens_the_match(model_dir):
    """An input 50 cents sharp of any DX7 ratio: tuned or not, the loss is no worse."""
    detuned = retune(INIT_VOICE.replace(op2_output_level=70, op2_coarse=2), 50)
    audio = Renderer().render(detuned)
    with Programmer(model_dir, quality="fast") as prog:
        plain = prog.run_audio(audio, Path("x"), tune=False)
        tuned = prog.run_audio(audio, Path("x"), tune=True)
    assert tuned.loss <= plain.loss
    if tuned.tuned:
        assert abs(tuned.pitch_error_cents) < abs(plain.pitch_error_cents)


def test_note_auto_plays_candidates_at_the_input_note(model_dir):
    audio = Renderer().render(INIT_VOICE, 67, 85)
    with Programmer(model_dir, quality="fast") as prog:
        r = prog.run_audio(audio, Path("g4"), note="auto")
        assert r.note == 67
        noise = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.1
        assert prog.run_audio(noise, Path("noise"), note="auto").note == 60  # no pitch: 60


def test_output_names_are_distinct_and_never_an_input(tmp_path):
    a, b, c = tmp_path / "a.flac", tmp_path / "a.ogg", tmp_path / "sub" / "a.flac"
    names = output_names([a, b, c], tmp_path / "out")
    assert len(set(names)) == 3 and names[:2] == ["a-flac", "a-ogg"]
    # into the inputs' own folder with --wav: a.wav would be the input itself
    assert output_names([tmp_path / "a.wav"], tmp_path, extensions(wav=True)) == ["a-2"]
    assert output_names([tmp_path / "a.wav"], tmp_path / "out", extensions(wav=True)) == ["a"]
    # the cases users met: d1/a.wav d2/a.wav a-wav-2.wav, and x.wav x-dx7.wav --wav into "."
    ins = [tmp_path / "d1" / "a.wav", tmp_path / "d2" / "a.wav", tmp_path / "a-wav-2.wav"]
    assert output_names(ins, tmp_path / "o") == ["a-wav", "a-wav-2", "a-wav-2-2"]
    ins = [tmp_path / "x.wav", tmp_path / "x-dx7.wav"]
    assert output_names(ins, tmp_path, extensions(wav=True)) == ["x-2", "x-dx7-2"]
    # a file already in the folder is kept, unless asked to overwrite
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.syx").write_bytes(b"mine")
    assert output_names([tmp_path / "a.wav"], tmp_path / "o") == ["a-2"]
    assert output_names([tmp_path / "a.wav"], tmp_path / "o", overwrite=True) == ["a"]


_stems = st.sampled_from(["a", "A", "a-2", "a-wav", "a-wav-2", "x-dx7", "x", "b.c", "a-variants"])
_inputs = st.lists(st.tuples(st.sampled_from(["", "d1/", "d2/", "o/"]), _stems,
                             st.sampled_from([".wav", ".flac", ".syx", ".png", ""])),
                   min_size=1, max_size=8)  # fmt: skip


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=_inputs, existing=st.lists(_stems, max_size=4),
       flags=st.tuples(st.booleans(), st.booleans(), st.booleans()))  # fmt: skip
def test_output_names_never_collide(tmp_path, inputs, existing, flags):
    """Generated name sets: every file a call writes is distinct (ignoring case), none is an
    input, none is a file already in the folder."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    out = root / "o"
    out.mkdir()
    for stem in existing:
        (out / f"{stem}.syx").write_bytes(b"mine")
    paths = [root / f"{d}{stem}{ext}" for d, stem, ext in inputs]
    ends = extensions(*flags)
    files = [(out / f"{n}{e}") for n in output_names(paths, out, ends) for e in ends]
    keys = [os.path.realpath(f).casefold() for f in files]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {os.path.realpath(p).casefold() for p in paths}
    assert not any(f.exists() for f in files)


def test_program_never_overwrites_an_input(model_dir, sounds, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("brass.wav", "brass.flac"):
        sf.write(folder / name, _brass(sounds), SR)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    results = program(sorted(folder.iterdir()), folder, model=model_dir, wav=True,
                      quality="fast", progress=False)  # fmt: skip
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
    outputs = [p for r in results for p in r.outputs]
    assert len(set(outputs)) == len(outputs) == 4 and not set(outputs) & set(folder.glob("brass.*"))


def test_unwritable_output_folder_is_refused_before_any_work(model_dir, sounds, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        program([sounds / "brass.wav"], tmp_path / "file" / "out", model=model_dir,
                progress=False)  # fmt: skip


# a user's slips: five parameters moved, and ten (the five plus five more)
MOVES = [
    lambda v: {"op1_output_level": v["op1_output_level"] - 12},
    lambda v: {"op1_eg_rate1": min(99, v["op1_eg_rate1"] + 20)},
    lambda v: {"op2_fine": (v["op2_fine"] + 7) % 100},
    lambda v: {"feedback": (v["feedback"] + 3) % 8},
    lambda v: {"op3_eg_level3": max(0, v["op3_eg_level3"] - 25)},
    lambda v: {"op1_fine": (v["op1_fine"] + 5) % 100},
    lambda v: {"op2_output_level": max(0, v["op2_output_level"] - 10)},
    lambda v: {"op1_eg_level2": max(0, v["op1_eg_level2"] - 15)},
    lambda v: {"op2_eg_rate2": min(99, v["op2_eg_rate2"] + 15)},
    lambda v: {"op1_eg_rate3": max(0, v["op1_eg_rate3"] - 20)},
]


@pytest.mark.library
@pytest.mark.xfail(strict=True, reason="target missed (issue 16): from SC 0.42 (five moved) or "
                   "0.49 (ten) best stops near 0.3 / 0.4 at its default budget. The moves "
                   "interact: with the feedback wrong, op2_fine's true value gains 2.5 % and a "
                   "compensating one more, so the frequencies-first search keeps the wrong "
                   "one")  # fmt: skip
@pytest.mark.parametrize("moved", [5, 10])
def test_best_recovers_a_perturbed_library_voice(library, model_dir, tmp_path, moved):
    """The input is a real voice that the index does not hold; it holds that voice with five
    or ten parameters moved (a near miss, as a library often has): best, at its default
    budget of evaluations, finds the voice again."""
    from companion.data import presets
    from companion.dx7.sysex import single_voice_message
    from companion.evaluation.metrics import spectral_convergence
    from companion.matching.index import Index

    carts = tmp_path / "carts"
    carts.mkdir()
    for f in sorted(library.rglob("*.syx"))[:12]:  # a few hundred real voices
        (carts / f.name).write_bytes(f.read_bytes())
    renderer = Renderer()
    db = tmp_path / "lib.sqlite"
    presets.build(carts, db, progress=False)
    voice = next(
        v
        for _, v in presets.load(db)
        if v["op1_output_level"] > 60 and np.abs(renderer.render(v)).max() > 0.1
    )
    changes = {}
    for move in MOVES[:moved]:
        changes |= move(voice)
    near_miss = voice.replace(**changes)
    (carts / "near-miss.syx").write_bytes(single_voice_message(near_miss))
    presets.build(carts, db, progress=False)
    vid = next(i for i, v in presets.load(db) if v.params == voice.params)
    target = renderer.render(voice)
    assert spectral_convergence(target, renderer.render(near_miss)) > 0.05  # the moves are heard
    with Programmer(model_dir, library=Index.open(db), quality="best",
                    budget=float("inf")) as prog:  # fmt: skip
        r = prog.run_audio(target, Path("lost"), exclude_ids=[vid])
    assert r.voice.params != voice.params or r.loss == 0
    assert spectral_convergence(target, renderer.render(r.voice)) < 0.05


def test_no_answer_is_silent_where_the_input_is_audible(model_dir):
    """A pluck, a click, a note after 300 ms of silence and notes far from C4, programmed at
    fast: every answer is audible at the input's note (the loss ranks silence last)."""
    r = Renderer()
    pluck = INIT_VOICE.replace(op1_eg_rate2=30, op1_eg_level3=0, op2_output_level=70,
                               algorithm=0)  # fmt: skip
    click = np.zeros(4 * SR, np.float32)
    click[100:140] = 0.8
    late = np.zeros(4 * SR, np.float32)
    late[int(0.3 * SR) :] = r.render(pluck)[: 4 * SR - int(0.3 * SR)]
    inputs = {"pluck": (r.render(pluck), 60), "click": (click, 60), "late": (late, 60),
              "low": (r.render(pluck, 30, 85), 30),
              "high": (r.render(pluck, 96, 85), 96)}  # fmt: skip
    with Programmer(model_dir, quality="fast", budget=float("inf")) as prog:
        for name, (audio, note) in inputs.items():
            res = prog.run_audio(audio, Path(name), note=note, onset=None)  # onset: read
            out = r.render(res.voice, note, 85)
            assert np.abs(out).max() > 1e-3, name
            assert res.loss < float(Target(audio).loss(np.zeros((1, 4 * SR), np.float32))[0])


def test_together_matches_one_voice_to_several_recordings(model_dir, tmp_path):
    """A library voice recorded at three keys and velocities: --together finds it (it is in
    the library) and it matches all three at once, each played at its own key."""
    from companion.data import presets
    from companion.dx7.sysex import bank_message
    from companion.evaluation.recordings import RATE, Recording, record

    from .conftest import FIXTURE_VOICES

    (tmp_path / "carts").mkdir()
    (tmp_path / "carts" / "bank.syx").write_bytes(bank_message(FIXTURE_VOICES[:32]))
    presets.build(tmp_path / "carts", tmp_path / "lib.sqlite", progress=False)
    r = Renderer()
    voice = next(v for v in FIXTURE_VOICES[7:32] if np.abs(r.render(v, 48)).max() > 0.05
                 and np.abs(r.render(v, 72)).max() > 0.05)  # fmt: skip
    paths, notes, vels = [], [48, 60, 72], [50, 85, 120]
    for note, vel in zip(notes, vels):
        rec = Recording(note=note, velocity=vel, hold_s=1.0, onset_s=0.1, peak_db=-6.0)
        paths.append(tmp_path / f"take{note}.wav")
        sf.write(paths[-1], record(r, voice, rec), RATE, subtype="PCM_24")
    (res,) = program(paths, tmp_path / "out", model=model_dir, note=notes, velocity=vels,
                     hold=[1.0] * 3, library=tmp_path / "lib.sqlite", quality="fast",
                     together=True, tune=False, progress=False)  # fmt: skip
    assert res.error is None and [p.name for p in res.outputs] == ["take48.syx"]
    assert [(t.play.note, t.play.velocity) for t in res.takes] == list(zip(notes, vels))
    # the voice itself (not exactly loss 0: the recordings went through 44.1 kHz and 24 bits)
    assert res.voice.params == voice.params
    with pytest.raises(ValueError, match="--note: one value, or with --together one per input"):
        program(paths, tmp_path / "out", model=model_dir, note=notes, progress=False)


def test_variants_bank_holds_distinct_answers_best_first(model_dir, sounds, tmp_path):
    from companion.dx7.sysex import read_voices
    from companion.matching.logmel import EMBEDDING

    (res,) = program([sounds / "brass.wav"], tmp_path, model=model_dir, quality="fast",
                     variants=5, tune=False, progress=False)  # fmt: skip
    bank = read_voices(tmp_path / "brass-variants.syx")
    assert len(bank) == 32 and tmp_path / "brass-variants.syx" in res.outputs
    found = [v for v in bank if v.params != INIT_VOICE.params]
    assert 2 <= len(found) <= 5 and all(v == INIT_VOICE for v in bank[len(found):])
    assert [v.display_name for v in found] == [f"brass  {k:>3}" for k in range(1, len(found) + 1)]
    # ordered by loss, and distinct by sound (their log-mels >= 1 dB RMS apart)
    take = read_take(sounds / "brass.wav")
    play = res.takes[0].play
    r = Renderer()
    renders = [r.play(v, play) for v in found]
    losses = Target(take.audio).loss(np.stack(renders))
    assert all(a <= b + 1e-6 for a, b in zip(losses, losses[1:]))
    feats = [EMBEDDING(x[play.offset :]) for x in renders]
    for i in range(len(feats)):
        for j in range(i):
            assert 10 * np.sqrt(np.mean((feats[i] - feats[j]) ** 2)) >= 1.0


def test_demo_passes_its_variables_to_program():
    """make demo INPUT=... NOTE=... QUALITY=... VARIANTS=...: the command it would run."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-C", str(root), "demo", "INPUT=my take.wav", "NOTE=48",
                          "QUALITY=fast", "VARIANTS=4", "CARTRIDGES="],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if " program " in x)
    assert '"my take.wav"' in line and "--note 48" in line and "--quality fast" in line
    assert "--variants 4" in line and "sounds gm-violin" not in out
    assert "--overwrite" in line  # the demo's own folder: a second demo replaces the first
    default = subprocess.run(["make", "-n", "-C", str(root), "demo", "CARTRIDGES="],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    line = next(x for x in default.splitlines() if " program " in x)
    assert "--note auto" in line and "--quality best" in line and "gm-violin.wav" in line
    # no cartridges: the public collection first (once; offline it goes on without)
    assert "companion library get || true" in default and "--library" not in line
    mine = subprocess.run(["make", "-n", "-C", str(root), "demo", "CARTRIDGES=/my/carts"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "presets build --cartridges \"/my/carts\"" in mine and "library get" not in mine
    assert "--library data/presets.sqlite" in next(x for x in mine.splitlines() if " program " in x)


@pytest.fixture(scope="module")
def designed_library(tmp_path_factory):
    """A preset database of voices that sound like instruments (tests/conftest.py)."""
    from companion.data import presets
    from companion.dx7.sysex import bank_message

    from .conftest import designed_voices

    root = tmp_path_factory.mktemp("designed")
    (root / "carts").mkdir()
    voices = designed_voices()
    (root / "carts" / "bank.syx").write_bytes(bank_message(voices))
    presets.build(root / "carts", root / "lib.sqlite", progress=False)
    return root / "lib.sqlite", voices


def _as_printed(res, length: int):
    """How program says its answer plays the recording: (key, velocity, key held, key-on in
    the file) as a Play over the whole file."""
    import dataclasses

    t = res.takes[0]
    return dataclasses.replace(t.play, offset=round(t.key_on_s * SR), length=length)


@pytest.mark.parametrize("seed", range(3))
def test_a_recorded_library_voice_comes_back_near_exact(model_dir, designed_library, tmp_path,
                                                       seed):  # fmt: skip
    """A library voice recorded as a user would (a random key, velocity, hold, onset and
    level, 44.1 kHz stereo), programmed from the file with the defaults: the answer, played
    as program printed it and recorded the same way, is the recording again (SC < 0.05), and
    the printed key is the note of its pitch."""
    from companion.data.audio import read_mono
    from companion.data.pitch import note_of
    from companion.evaluation.metrics import spectral_convergence
    from companion.evaluation.recordings import RATE, Recording, as_recorded, level_matched, record

    db, voices = designed_library
    rng = np.random.default_rng(seed)
    voice = voices[int(rng.integers(len(voices)))]
    rec = Recording(note=int(rng.integers(36, 85)), velocity=int(rng.integers(50, 121)),
                    hold_s=float(rng.uniform(0.4, 2.5)), onset_s=float(rng.uniform(0, 0.3)),
                    peak_db=float(rng.uniform(-12, -1)))  # fmt: skip
    path = tmp_path / "take.wav"
    sf.write(path, record(Renderer(), voice, rec), RATE, subtype="PCM_24")
    (res,) = program([path], tmp_path / "out", model=model_dir, library=db, progress=False)
    assert res.error is None
    recording, _ = read_mono(path, SR)
    played = as_recorded(Renderer().play(res.voice, _as_printed(res, len(recording))))
    assert spectral_convergence(recording, level_matched(played, recording)) < 0.05
    assert res.note == note_of(res.takes[0].pitch_hz)
    assert f"plays at key {res.note} (" in res.summary()


def test_note_given_is_where_the_voice_plays_it(model_dir, designed_library, tmp_path):
    """--note N: "I played it at N": the answer plays the recording at key N (whatever its
    pitch: this one sounds a fifth below), and the output line says the key was given."""
    from companion.data.audio import read_mono
    from companion.evaluation.metrics import spectral_convergence
    from companion.evaluation.recordings import RATE, Recording, as_recorded, level_matched, record

    db, voices = designed_library
    rec = Recording(note=50, velocity=90, hold_s=1.0, onset_s=0.05, peak_db=-6.0)
    path = tmp_path / "take.wav"
    sf.write(path, record(Renderer(), voices[3], rec), RATE, subtype="PCM_24")
    (res,) = program([path], tmp_path / "out", model=model_dir, library=db, note=57,
                     progress=False)  # fmt: skip
    assert res.note == 57 and "plays at key 57 (A3, as given" in res.summary()
    recording, _ = read_mono(path, SR)
    played = as_recorded(Renderer().play(res.voice, _as_printed(res, len(recording))))
    assert spectral_convergence(recording, level_matched(played, recording)) < 0.05


def test_onset_given_is_kept(model_dir, tmp_path):
    """--onset S: the key-on is S, whatever the sound does (this voice waits 1 s before it
    sounds: read alone, its note would start there)."""
    slow = INIT_VOICE.replace(op1_eg_level1=0, op1_eg_rate1=20, op1_eg_level2=99,
                              op1_eg_rate2=99, op1_eg_level3=99)  # fmt: skip
    audio = Renderer().play(slow, Play(60, 100, 2.5, round(0.2 * SR), round(4 * SR)))
    sf.write(tmp_path / "slow.wav", audio, SR, subtype="FLOAT")
    with Programmer(model_dir, quality="fast") as prog:
        free = prog.run(tmp_path / "slow.wav")
        given = prog.run(tmp_path / "slow.wav", onset=0.2)
    assert given.takes[0].key_on_s == pytest.approx(0.2, abs=1e-4)
    assert "onset" not in given.takes[0].estimated and "key-on 0.200 s," in given.summary()
    assert free.takes[0].key_on_s > 0.3  # the sound itself starts late
