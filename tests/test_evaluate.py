"""Metrics and the evaluation tables (smoke scale)."""

import re
import shutil

import numpy as np

from companion.data.render import Renderer
from companion.dx7.voice import INIT_VOICE, Voice, param_index
from companion.evaluation import paper_table
from companion.evaluation.metrics import audio_metrics, parameter_metrics

from .conftest import FIXTURE_VOICES


def test_parameter_metrics():
    true = np.stack([v.values for v in FIXTURE_VOICES[:4]]).astype(np.int64)
    perfect = parameter_metrics(true, true)
    assert np.all(perfect["num_mae"] == 0) and np.all(perfect["cat_acc"] == 1)
    off = true.copy()
    off[:, param_index("algorithm")] = (off[:, param_index("algorithm")] + 1) % 32
    off[:, param_index("fine", 1)] = np.where(off[:, param_index("fine", 1)] > 50, 0, 99)
    m = parameter_metrics(true, off)
    assert np.all(m["cat_acc"] < 1) and np.all(m["num_mae"] > 0)
    assert np.all(m["kv_num_mae"] == 0) and np.all(m["kv_cat_acc"] == 1)  # neither is key/vel


def test_audio_metrics():
    r = Renderer()
    a = r.render(INIT_VOICE)
    same = audio_metrics(a, a)
    assert same["sc"] == 0 and same["log_stft_mae"] == 0 and same["mfcc_mae"] == 0
    assert same["mss"] == 0 and same["pitch_cents"] == 0
    silent = audio_metrics(np.zeros_like(a), a)
    assert np.isnan(silent["sc"]) and np.isnan(silent["mss"])
    up = audio_metrics(a, r.render(INIT_VOICE.replace(transpose=25)))
    assert abs(up["pitch_cents"] - 100) < 5 and up["sc"] > 0.5


def test_tables(smoke_run, tmp_path):
    data, run = smoke_run
    summary = paper_table.evaluate([str(run)], str(data), str(tmp_path), limit=4, progress=False)
    assert set(summary) == {
        "NumCat++",
        "INIT VOICE",
        "nearest training voice",
        "program fast (train-split library)",
        "program good (train-split library)",
    }
    md = (tmp_path / "table_main.md").read_text()
    assert "| Num only | not run |" in md and "First 4 test voices" in md
    assert re.search(r"commit [0-9a-f]+(\+changes)?, \d{4}-\d{2}-\d{2}\.", md)  # and the date
    # its models are named, never given as a path of the machine that made the table
    assert f"NumCat++: run {run.name} (" in md and str(run.parent) not in md
    assert (tmp_path / "table_main.csv").read_text().startswith("row,label,statistic,num_mae")
    assert "\\begin{tabular}" in (tmp_path / "table_main.tex").read_text()
    init = summary["INIT VOICE"]["all/mean"]
    assert 0 < init["num_mae"] < 1 and 0 <= init["cat_acc"] <= 1


def test_notes_table(smoke_run, tmp_path):
    """Each row is also heard at the six notes and three more velocities; the originals
    compared with themselves are at zero everywhere."""
    from companion.evaluation import notes_table

    data, run = smoke_run
    measured = paper_table.measure([str(run)], str(data), limit=3, progress=False)
    measured.tables(tmp_path)
    notes = measured.notes
    assert set(notes) == set(measured.results) - {"Num only", "NumCat", "NumCat++, six notes",
                                                 "NumCat++, MLP regression"}  # fmt: skip
    assert notes["INIT VOICE"]["log_stft_mae"].shape == (len(notes_table.PAIRS), 3)
    same = notes_table.measure_notes({"same": measured.values}, measured.values,
                                     Renderer(measured.info.audio), progress=False)  # fmt: skip
    assert np.all(same["same"]["log_stft_mae"] == 0)
    md = (tmp_path / "table_notes.md").read_text()
    assert "| INIT VOICE |" in md and "60/127" in md and "six notes" in md
    main = (tmp_path / "table_main.md").read_text()
    assert "voices (" in main  # a table per label


def test_tables_name_models_without_local_paths(tmp_path):
    from companion.evaluation.paper_table import model_name
    from companion.models import default_model_dir

    assert model_name(None) == model_name(default_model_dir()) == (
        "the shipped model (companion/models/default)")
    assert model_name(tmp_path / "runs" / "small-single-numcat++") == "run small-single-numcat++"


def test_program_rows_take_a_silent_test_voice(smoke_run, tmp_path):
    """A test voice silent at (60, 85) (its operators all at level 0) is no input for program:
    the program rows keep the network's answer for it, and the table is made."""
    data, run = smoke_run
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    voices = np.load(copy / "test.voices.npy")
    voices[0] = 0  # ALL MIN: every output level 0
    np.save(copy / "test.voices.npy", voices)
    measured = paper_table.measure([str(run)], str(copy), limit=2, progress=False, notes=False)
    assert not np.abs(Renderer(measured.info.audio).render(Voice.from_values(voices[0]))).any()
    for quality in ("fast", "good"):
        program = measured.preds[f"program {quality} (train-split library)"]
        assert np.array_equal(program[0], measured.preds["NumCat++"][0])
    measured.tables(tmp_path / "figures")
    table = (tmp_path / "figures" / "table_main.md").read_text()
    assert "silent originals: the network's answer" in table
