"""The one console command, `rtmirror`, with subcommands.

Each subcommand lives in its own module, which defines
`add_arguments(parser: argparse.ArgumentParser)` and `run(args) -> int`.
Modules are imported only when their subcommand runs, so `rtmirror live` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "spectrogram": ("rtmirror.frontend.cli", "draw the auditory spectrogram of a WAV file as a PNG"),
    "data": ("rtmirror.synth.data_cli", "render melody datasets through a synth (builtin or VST)"),
    "render": ("rtmirror.synth.render_cli", "render a MIDI file or control CSV through a synth"),
    "train": ("rtmirror.models.train_cli", "train a MirrorNet encoder/decoder from a config (needs [train])"),
    "eval": ("rtmirror.models.eval_cli", "evaluate encoders on held-out sets and write REPORT.md (needs [train])"),
    "export": ("rtmirror.export.cli", "export a checkpoint to a streaming ONNX model + manifest (needs [train])"),
    "live": ("rtmirror.live_cli", "microphone -> synth controls -> MIDI, in real time"),
    "file": ("rtmirror.file_cli", "WAV -> MIDI file + control CSV (+ resynthesis), offline"),
    "devices": ("rtmirror.live_cli:devices", "list audio input devices"),
    "ports": ("rtmirror.live_cli:ports", "list MIDI output ports"),
    "gui": ("rtmirror.gui.cli", "open the desktop window (live input or a WAV file)"),
    "demo": ("rtmirror.live_cli:demo", "the main job: live with the GUI where possible, else a demo melody"),
    "bench": ("rtmirror.bench", "run a benchmark: frontend | synth | data | encoder | live"),
}


def _load(spec: str):
    """'pkg.mod' -> module; 'pkg.mod:name' -> object with add_arguments/run attributes."""
    mod_name, _, attr = spec.partition(":")
    mod = importlib.import_module(mod_name)
    if not attr:
        return mod
    return getattr(mod, attr)


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
        target = _load(SUBCOMMANDS[name][0])
    except ImportError as exc:
        print(f"rtmirror {name}: cannot load ({exc}). "
              f"Training/export need the extra: pip install 'rtmirror[train]'", file=sys.stderr)
        return 2
    cmd_parser = argparse.ArgumentParser(prog=f"rtmirror {name}", description=SUBCOMMANDS[name][1])
    target.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    return int(target.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
