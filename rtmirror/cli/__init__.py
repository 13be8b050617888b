"""The one console command, `rtmirror`, with subcommands.

Each subcommand is a module here, rtmirror/cli/<name>.py, which defines
`add_arguments(parser: argparse.ArgumentParser)` and `run(args) -> int`.
Modules are imported only when their subcommand runs, so `rtmirror live` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "live": ("rtmirror.cli.live", "microphone -> synth controls -> MIDI, in real time"),
    "gui": ("rtmirror.cli.gui", "open the desktop window (live input or a WAV file)"),
    "demo": ("rtmirror.cli.demo", "the main job: live with the GUI where possible, else a demo melody"),
    "file": ("rtmirror.cli.file", "WAV -> MIDI file + control CSV (+ resynthesis), offline"),
    "devices": ("rtmirror.cli.devices", "list audio input devices"),
    "ports": ("rtmirror.cli.ports", "list MIDI output ports (--learn: sweep one CC for MIDI learn)"),
    "spectrogram": ("rtmirror.cli.spectrogram", "draw the auditory spectrogram of a WAV file as a PNG"),
    "render": ("rtmirror.cli.render", "render a MIDI file or control CSV through a synth"),
    "data": ("rtmirror.cli.data", "render melody datasets through a synth (builtin or VST)"),
    "warmup": ("rtmirror.cli.warmup", "compile the frontend for this CPU and load the model (install time)"),
    "bench": ("rtmirror.cli.bench", "run a benchmark: frontend | synth | data | encoder | live"),
    "train": ("rtmirror.cli.train", "train a MirrorNet encoder/decoder from a config (needs [train])"),
    "eval": ("rtmirror.cli.eval", "evaluate encoders on held-out sets and write REPORT.md (needs [train])"),
    "export": ("rtmirror.cli.export", "export a checkpoint to a streaming ONNX model + manifest (needs [train])"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="rtmirror", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rtmirror {__import__('rtmirror').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    # Parse only the command name first: loading every module would import torch for `live`.
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser.parse_args(argv or ["--help"])
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        parser.error(f"unknown command {name!r} (choose from {', '.join(SUBCOMMANDS)})")
    try:
        target = importlib.import_module(SUBCOMMANDS[name][0])
        cmd_parser = argparse.ArgumentParser(prog=f"rtmirror {name}", description=SUBCOMMANDS[name][1])
        target.add_arguments(cmd_parser)
        args = cmd_parser.parse_args(argv[1:])
        from rtmirror.cli.common import run_guarded
        return run_guarded(name, target.run, args)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        extra = EXTRA_OF.get(missing)
        if extra is None:
            raise
        print(f"rtmirror {name}: needs the [{extra}] extra ({missing} is not installed): "
              f"pip install 'rtmirror[{extra}]'{EXTRA_HINT.get(extra, '')}", file=sys.stderr)
        return 2


# Optional packages -> the extra that installs them (pyproject.toml).
EXTRA_OF = {"torch": "train", "onnx": "train", "dawdreamer": "train", "safetensors": "train",
            "fluidsynth": "train", "mir_eval": "train", "scipy": "train",
            "PyQt6": "gui", "pyqtgraph": "gui", "jack": "dev", "naplib": "dev", "hypothesis": "dev"}
EXTRA_HINT = {"train": " (CPU-only torch first: pip install torch==2.13.0 --index-url "
                       "https://download.pytorch.org/whl/cpu; README, Train your own)"}

if __name__ == "__main__":
    sys.exit(main())
