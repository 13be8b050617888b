"""rtmirror: learns to play a synthesizer by ear (MirrorNet, streamed in real time)."""

__version__ = "0.1.0"
