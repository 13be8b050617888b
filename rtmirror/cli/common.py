"""Option groups that several subcommands share (live, gui, file, demo), defined once."""
from __future__ import annotations

import argparse

MIDI_APIS = ("alsa", "jack", "coremidi", "winmm")


def add_note_options(p: argparse.ArgumentParser) -> None:
    """The note-making options `live`, `gui` and `file` share."""
    p.add_argument("--pitch-bend", action="store_true", help="send pitch bend for glides/vibrato (range: the CC map's bend_range)")
    p.add_argument("--legato", action="store_true", help="on a pitch change, new note-on before the old note-off (mono legato)")
    p.add_argument("--settle-frames", type=int, default=None, metavar="N",
                   help="longest wait of a note-on for the pitch to settle, in 8 ms frames (default: the "
                        "model's rule, 1 for the shipped model; 0: lowest latency, more short extra notes; "
                        "4-6: fewest extra notes, for transcription; docs/PERFORMER.md)")
    p.add_argument("--key", metavar="NOTE|auto", help="snap notes to a scale with this tonic (C, F#, Bb ...), "
                   "or 'auto': detect the key from what is played (default: off)")
    p.add_argument("--scale", default="major", help="the scale for --key: major, minor, harmonic-minor, dorian, "
                   "phrygian, lydian, mixolydian, locrian, major-pentatonic, minor-pentatonic, blues (default major)")
    p.add_argument("--cc-in-silence", action="store_true",
                   help="send knob CCs while no note sounds too (default: held from 0.5 s after the last "
                        "note-off and sent, newest values only, just before the next note-on)")
    p.add_argument("--gate-floor", type=float, default=-75.0, metavar="DBFS",
                   help="no note while the input RMS (before the AGC) is under this level or within 12 dB "
                        "of the tracked room noise; closes 6 dB lower (default -75)")


def add_engine_options(p: argparse.ArgumentParser, *, wav_flag: bool = True) -> None:
    """Every option of a live engine (`rtmirror live`; `rtmirror gui` takes the same)."""
    p.add_argument("--input", metavar="DEV", help="audio input device (index or name; default: system default)")
    if wav_flag:
        from rtmirror.audio_file import LIMITS_HELP
        p.add_argument("--wav", metavar="FILE", help="play a WAV file through the engine at real-time pace instead "
                       f"(limits: {LIMITS_HELP})")
    p.add_argument("--sample-rate", type=int, help="input sample rate (default: the device's)")
    p.add_argument("--input-channel", type=int, help="use this input channel, 1-based (default: mono mix)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--port", metavar="NAME", help="send to this existing MIDI port (index or name)")
    g.add_argument("--virtual", metavar="NAME", default="rtmirror", help="open a virtual MIDI port (default 'rtmirror')")
    p.add_argument("--channel", type=int, default=1, help="MIDI channel 1..16 (default 1)")
    p.add_argument("--model", metavar="PATH", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--cc-map", metavar="FILE", help="CC map TOML (default: GM sound controllers, see docs/LIVE.md)")
    p.add_argument("--record", metavar="OUT.mid", help="also record what is sent to a MIDI file")
    p.add_argument("--controls", metavar="OUT.csv", help="also write frame-level controls to a CSV")
    p.add_argument("--midi-api", choices=MIDI_APIS,
                   help="MIDI API (default: $RTMIRROR_MIDI_API, else ALSA if /dev/snd/seq exists, else JACK)")
    add_note_options(p)
    p.add_argument("--stop-on-port-loss", action="store_true", help="stop when the MIDI port disappears (default: report, keep running)")
    p.add_argument("--print-midi", action="store_true", help="print every MIDI message sent")
    p.add_argument("--duration", type=float, help="stop after this many seconds")


# Exceptions that mean "this input (file, flag, folder) cannot be used", never a bug in rtmirror:
# ValueError covers UserError, ModelError, DatasetError, JSON/TOML/Unicode decode errors.
BAD_INPUT = (ValueError, OSError, MemoryError)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (libsndfile, mido and numpy add detail lines)."""
    text = str(exc).strip()
    if isinstance(exc, MemoryError):
        return "not enough memory for this input (a corrupt file or an absurd size?); check the input"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror.lower()}; check the path and its permissions"
    return text.splitlines()[0] if text else type(exc).__name__


def run_guarded(name: str, run, args) -> int:
    """run(args) with the last resort: a bad-input exception that escaped the subcommand's own
    checks becomes one line on stderr and exit code 2 instead of a traceback."""
    import sys
    try:
        return int(run(args) or 0)
    except BAD_INPUT as exc:
        print(f"rtmirror {name}: {one_line(exc)}", file=sys.stderr)
        return 2


def load_space(spec: str):
    """ControlSpace.load(spec) with a malformed control-set file as one ValueError line."""
    import tomllib

    from rtmirror.controls import ControlSpace
    try:
        return ControlSpace.load(spec)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{spec}: not valid TOML ({exc}); fix the control-set file") from None
    except (TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ValueError(f"{spec}: not a valid control set ({type(exc).__name__}: {exc}); "
                         "see rtmirror/resources/control_sets.toml for the format") from None
