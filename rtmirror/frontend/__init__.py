"""rtmirror.frontend: the NSL auditory spectrogram, offline (`wav2aud`) and streaming (`CochlearStream`),
plus resampling in front of it (`StreamResampler`, `load_audio`)."""
from .cochlea import CochlearStream, wav2aud
from .config import FrontendConfig
from .resample import StreamResampler, load_audio

__all__ = ["wav2aud", "CochlearStream", "StreamResampler", "load_audio", "FrontendConfig"]
