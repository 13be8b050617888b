"""A JackPlayer (audio out + frame-exact MIDI in) in a process of its own, for latency takes.

In the engine's process the player's Python callback would wait for the GIL the engine's worker
holds, JACK would run the cycle late and skip clients (PortAudio then loses input periods): a
measurement artefact no musician has. Here the player has its own interpreter.

    python -m rtmirror.testing.jack_player AUDIO.npy OUT.npz --name N --midi-from PORT

prints "ready" once its ports are connected (PortAudio's input must exist), plays on a line
"play" from stdin, prints "done" when the audio has played, and on a line "stop" writes OUT.npz:
midi_times (n,) s, midi_bytes (n, 3) (short messages padded with 0), cycles (m, 2) = (cycle
start s, first sample played in that cycle), rate; times on this process's perf_counter clock.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("audio")
    p.add_argument("out")
    p.add_argument("--name", default="player")
    p.add_argument("--midi-from", required=True)
    a = p.parse_args(argv)
    from rtmirror.fileio import atomic_write
    from rtmirror.testing.jack import JackPlayer

    player = JackPlayer(np.load(a.audio), name=a.name, midi_from=a.midi_from)
    try:
        player.connect_to_portaudio()
        print("ready", flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "play":
                player.play()
                while not player.done:
                    time.sleep(0.01)
                print("done", flush=True)
            elif cmd == "stop":
                break
        time.sleep(0.05)
    finally:
        player.close()
    msgs = np.zeros((len(player.midi), 3), np.int64)
    for i, (_, m) in enumerate(player.midi):
        msgs[i, :len(m[:3])] = m[:3]

    with atomic_write(a.out, "wb") as f:
        np.savez(f, midi_times=np.array([t for t, _ in player.midi], np.float64), midi_bytes=msgs,
                 cycles=np.array(player.cycles, np.float64).reshape(-1, 2), rate=player.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
