"""FluidSynthInstrument: a General MIDI program of a sound font as a Synth (notes only).

Named in the synth registry (rtmirror.synth.make_synth) as "fluidsynth:PROGRAM" (the default
sound font) or "fluidsynth:PROGRAM@/path/to/font.sf2". Needs pyfluidsynth (the [train] extra).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, Event, sorted_events

GM_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


class FluidSynthInstrument:
    """A General MIDI program of a sound font, played offline by FluidSynth (pyfluidsynth).

    Implements the Synth protocol for note events (CONTROL events are ignored: a piano has no
    cutoff knob). A fresh FluidSynth per render keeps renders bit-reproducible (a reused one
    carries voice state over); lazy sample loading makes that cheap (~0.1 s). Events are placed
    on FluidSynth's 64-sample block grid (1.5 ms at 44.1 kHz), where it applies them anyway."""

    BLOCK = 64

    def __init__(self, program: int = 0, sample_rate: int = 44100, soundfont: str = GM_SOUNDFONT,
                 gain: float = 0.8):
        if not Path(soundfont).is_file():
            raise FileNotFoundError(f"sound font not found: {soundfont} (apt: fluid-soundfont-gm)")
        if not (0 <= int(program) <= 127):
            raise ValueError(f"GM program must be 0..127, got {program}")
        self.program = int(program)
        self.sample_rate = int(sample_rate)
        self.soundfont = soundfont
        self.gain = float(gain)

    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        import fluidsynth

        n = int(round(duration_s * self.sample_rate))
        fs = fluidsynth.Synth(samplerate=self.sample_rate, gain=self.gain, **{
            "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.dynamic-sample-loading": 1})
        try:
            sfid = fs.sfload(self.soundfont)
            if sfid < 0:
                raise RuntimeError(f"FluidSynth could not load {self.soundfont}")
            fs.program_select(0, sfid, 0, self.program)
            chunks, pos = [], 0
            for ev in sorted_events(events):
                if ev.kind not in (NOTE_ON, NOTE_OFF):
                    continue
                at = min(n, int(round(ev.time * self.sample_rate / self.BLOCK)) * self.BLOCK)
                if at > pos:
                    chunks.append(fs.get_samples(at - pos))
                    pos = at
                if ev.kind == NOTE_ON:
                    fs.noteon(0, int(ev.note), int(ev.velocity))
                else:
                    fs.noteoff(0, int(ev.note))
            if n > pos:
                chunks.append(fs.get_samples(n - pos))
        finally:
            fs.delete()
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) if chunks else np.zeros((0, 2), np.float32)
        mono = stereo.mean(axis=1) / 32768.0                   # interleaved int16 L, R -> mono
        out = np.zeros(n, dtype=np.float32)
        out[: len(mono)] = mono[:n]
        return out
