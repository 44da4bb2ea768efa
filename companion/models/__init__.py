"""The paper's networks: spectrogram encoder and decoder, RealNVP flows, preset regression."""
