"""Programming the DX7 from sounds of other instruments (companion.data.instruments), against
retrieval of the nearest library voice: audio distances of each result to its input, sounds
and voices written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from companion.data.dataset import open_dataset
from companion.data.instruments import SOURCES, render_source
from companion.data.render import Renderer
from companion.dx7.sysex import single_voice_message
from companion.dx7.voice import Voice
from companion.evaluation import tables
from companion.evaluation.metrics import audio_metrics
from companion.evaluation.paper_table import model_name, nearest_train, provenance
from companion.io import write_atomic, write_audio
from companion.matching.program import Programmer

METHODS = ("network", "program", "retrieval")
COLUMNS = [("sc", "spectral conv."), ("log_stft_mae", "log STFT MAE"), ("mfcc_mae", "MFCC MAE"),
           ("mss", "multi-scale"), ("pitch_cents", "pitch err. (cents)")]  # fmt: skip


def evaluate_ood(model_dir, data: str, out_dir: str | Path, figures: str | Path | None = None,
                 sources=None) -> dict:  # fmt: skip
    """Program every source, and retrieve the train voice nearest to it by log-mel distance.

    Writes out_dir/<source>.wav (the input) and <source>_<method>.{wav,syx} for the network's
    answer alone, the full program pipeline and retrieval; with ``figures``,
    figures/table_ood.{md,csv}. Returns {source: {method: metrics}}.
    """
    info = open_dataset(data)
    db = info.header.get("database")  # program's library: the dataset's train split
    full = Programmer(model_dir, library=db if db and Path(db).is_file() else None, split="train")
    if full.cfg != info.audio:
        raise ValueError(f"{model_dir or 'the shipped model'}: trained on other spectrograms "
                         f"than {data}")  # fmt: skip
    network = Programmer(model_dir, candidates=1)
    renderer, cfg = Renderer(info.audio), info.audio
    train = np.load(info.path / "train.voices.npy").astype(np.int64)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in sources or SOURCES:
        audio = render_source(name, cfg=cfg)
        write_audio(out / f"{name}.wav", audio, cfg.sample_rate, subtype="PCM_16")
        near = nearest_train(info, full.spectrogram(audio)[None].numpy())[0]
        voices = {
            "network": network.run_audio(audio, Path(name), tune=False).voice,
            "program": full.run_audio(audio, Path(name)).voice,
            "retrieval": Voice.from_values(train[near], name[:10]),
        }
        results[name] = {}
        for method, voice in voices.items():
            render = renderer.render(voice)
            write_audio(out / f"{name}_{method}.wav", render, cfg.sample_rate, subtype="PCM_16")
            write_atomic(out / f"{name}_{method}.syx", single_voice_message(voice))
            results[name][method] = audio_metrics(audio, render, cfg.sample_rate)
    if figures is not None:
        write_table(results, f"Model: {model_name(model_dir)}; library: train split of "
                    f"{info.path.name}; {provenance()}.", Path(figures))  # fmt: skip
    return results


def write_table(results: dict, head: str, out: Path) -> None:
    """figures/table_ood.md (one row per source and method, then the means) and .csv."""
    rows = pd.DataFrame([{"source": name, "method": method, **{t: per[method][c]
                                                               for c, t in COLUMNS}}
                         for name, per in results.items() for method in METHODS])  # fmt: skip
    means = []
    for method in METHODS:
        cols = [np.array([per[method][c] for per in results.values()]) for c, _ in COLUMNS]
        vals = [np.nanmean(v) if np.isfinite(v).any() else np.nan for v in cols]
        means.append({"source": "mean", "method": method,
                      **{t: v for (_, t), v in zip(COLUMNS, vals)}})  # fmt: skip
    data = rows.rename(columns={t: c for c, t in COLUMNS})
    tables.write_table(out / "table_ood", pd.concat([rows, pd.DataFrame(means)], ignore_index=True),
                data=data, caption=f"{head} Every input: MIDI note 60, velocity 85, 4 s; "
                "distances of the DX7 result to the input (lower is better).")  # fmt: skip
