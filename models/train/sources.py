"""What training may render: never a sound source kept for independent or our own evaluation.

Held out for independent checks (never trained, tuned or selected on): the FluidR3 family
(fluid-soundfont-gm/-gs, fluidr3mono-gm-soundfont, musescore-general-soundfont*), TimGM6mb and
OPL3 sound fonts. Reserved for our own evaluation: the csound GM bank (the exp3-piano held-out set
and the real-sound set, models/eval/heldout.py and real.py). A sound font is recognised by its
file name after symlinks (Debian's default-GM.sf2 is an alternatives link to FluidR3_GM.sf2), and
`fluidsynth:PROGRAM` without a font (the FluidR3 default) is refused: a training config names its
font.
"""
from __future__ import annotations

import os

HELD_OUT_FONTS = ("fluidr3", "musescore", "timgm6mb", "opl3", "opl-3")    # lower-case name parts
EVAL_FONTS = ("sf_gmbank",)                                                 # the csound GM bank


def check_training_source(spec: str) -> None:
    """Raise ValueError if training must not render synth spec (see the module doc)."""
    spec = str(spec)
    if not spec.startswith("fluidsynth:"):
        return
    _, _, font = spec[len("fluidsynth:"):].partition("@")
    if not font:
        raise ValueError(f"training synth {spec!r}: name the sound font (fluidsynth:PROGRAM@FONT.sf2); "
                         "the default one (FluidR3_GM) is held out for independent evaluation")
    name = os.path.basename(os.path.realpath(font)).lower()
    if any(k in name for k in HELD_OUT_FONTS):
        raise ValueError(f"training synth {spec!r}: {os.path.basename(font)} is held out for independent "
                         "evaluation (FluidR3 / MuseScore / TimGM6mb / OPL3 sound fonts): never train on it")
    if any(k in name for k in EVAL_FONTS):
        raise ValueError(f"training synth {spec!r}: the csound GM bank is reserved for rtmirror's own "
                         "held-out sets (exp3-piano, real): train on another source (e.g. 'piano')")
