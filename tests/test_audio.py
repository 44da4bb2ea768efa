import numpy as np
import pytest
import soundfile as sf
import torch

from companion.config import CONFIGS, AudioConfig
from companion.data.audio import AudioError, MelSpectrogram, load_audio

CFG = AudioConfig()


def tone(seconds, rate, channels=1, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize(
    "fmt,rate,channels,seconds",
    [
        ("wav", 44100, 2, 6.0),
        ("flac", 48000, 1, 1.5),
        ("ogg", 22050, 2, 4.0),
        ("wav", 8000, 1, 0.2),
        ("mp3", 44100, 1, 2.0),
    ],
)
def test_any_file_becomes_mono_22050_four_seconds(tmp_path, fmt, rate, channels, seconds):
    path = tmp_path / f"in.{fmt}"
    sf.write(path, tone(seconds, rate, channels), rate)
    audio = load_audio(path, CFG)
    assert audio.shape == (88200,) and audio.dtype == np.float32
    n = min(int(seconds * 22050), 88200)
    assert np.abs(audio[: n - 2000]).max() > 0.3  # the tone is there
    assert np.all(audio[n + 200 :] == 0)  # then zero padding
    spectrum = np.abs(np.fft.rfft(audio[: n - 2000]))
    assert abs(np.argmax(spectrum) * 22050 / (n - 2000) - 440) < 5  # same pitch after resampling


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.write_bytes(b""), "cannot read audio"),
        (lambda p: p.write_bytes(b"RIFF1234WAVEjunk"), "cannot read audio"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 22050), "empty audio"),
        (lambda p: sf.write(p, np.zeros(22050, np.float32), 22050), "silent"),
        (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 22050, subtype="FLOAT"), "NaN"),
    ],
)
def test_bad_audio_gives_one_line_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as err:
        load_audio(path, CFG)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav")


def test_folder_is_not_a_missing_file(tmp_path):
    (tmp_path / "take.wav").mkdir()  # a folder, even one named like a sound
    with pytest.raises(AudioError, match="take.wav: is a folder, expected an audio file"):
        load_audio(tmp_path / "take.wav")


@pytest.mark.parametrize("name", CONFIGS)
def test_mel_shapes_floor_and_batches(name):
    cfg = CONFIGS[name].audio
    mel = MelSpectrogram(cfg)
    x = torch.from_numpy(np.stack([tone(4.0, 22050), np.zeros(88200, np.float32)]))
    spec = mel(x)
    assert spec.shape == (2, *cfg.spectrogram_shape) and spec.dtype == torch.float32
    assert torch.all(spec[1] == cfg.floor_db) and spec[0].max() > 0
    assert torch.equal(mel(x[0]), spec[0])
    assert mel(x.reshape(2, 1, -1)).shape == (2, 1, *cfg.spectrogram_shape)


def test_paper_spectrogram_is_257_by_345_and_sparse_equals_dense():
    cfg = CONFIGS["paper"].audio
    assert cfg.spectrogram_shape == (257, 345)
    mel = MelSpectrogram(cfg)
    x = torch.from_numpy(tone(4.0, 22050, freq=261.63))
    spec = torch.stft(
        x, 1024, 256, window=torch.hann_window(1024), pad_mode="constant", return_complex=True
    ).abs()
    dense = mel.filters @ spec
    torch.testing.assert_close(mel.magnitude(x), dense, rtol=1e-5, atol=1e-5)
    # the loudest band is the one holding 261.63 Hz
    import librosa

    centres = librosa.mel_frequencies(n_mels=257 + 2, fmax=11025)[1:-1]
    band = int(torch.argmax(mel(x)[:, 100]))
    assert abs(centres[band] - 261.63) < 30
