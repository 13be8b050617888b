"""A real JACK server (dummy driver) and clients for tests and `rtmirror bench live --jack`:
`JackServer` starts a named jackd that needs no sound card; `JackPlayer` plays an array into a
port; `JackMidiRecorder` records a MIDI port with the JACK frame of each message's arrival."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np


class JackServer:
    """A real jackd with the dummy driver under a unique name; clients find it via env vars."""

    def __init__(self, rate: int = 16000, period: int = 128):
        self.name = f"rtm{uuid.uuid4().hex[:8]}"
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen | None = None

    def start(self) -> "JackServer":
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._saved_env = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        return self

    def stop(self) -> None:
        if "sounddevice" in sys.modules:
            # PortAudio's JACK host API aborts the interpreter at exit (pa_jack.c Terminate
            # assertion) when its server is gone: re-initialize it without JACK first.
            from rtmirror.audio_io import forget_jack
            forget_jack()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # the server that was the default before start() (another one may still run) is again
        for key, value in getattr(self, "_saved_env", {"JACK_DEFAULT_SERVER": None}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _JackTime:
    """JACK's microsecond clock (the one RtMidi stamps with) and its map to frames, which the
    JACK-Client binding does not expose: called through ctypes on the already loaded libjack."""

    def __init__(self, client):
        import ctypes
        import ctypes.util

        import jack
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_get_time.restype = ctypes.c_uint64
        lib.jack_get_time.argtypes = []
        lib.jack_time_to_frames.restype = ctypes.c_uint32
        lib.jack_time_to_frames.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
        self._lib = lib
        self._client = client   # the pointer below is valid while the client is open
        self._ptr = ctypes.c_void_p(int(jack._ffi.cast("uintptr_t", client._ptr)))

    def now_us(self) -> int:
        return int(self._lib.jack_get_time())

    def frame_at(self, time_us: int) -> int:
        return int(self._lib.jack_time_to_frames(self._ptr, time_us))


class JackMidiRecorder:
    """Records the JACK MIDI output port whose name contains `port_substring`: `got` holds
    (JACK frame of arrival, message bytes) in order.

    No Python code runs in JACK's process cycle: RtMidi queues each message there (C, no GIL)
    with the delta of jack_get_time() since the previous one, and a thread here drains the
    queue. (A python-rtmidi callback takes the GIL inside the cycle; on a loaded machine it runs
    late, JACK skips the client's next cycle and that cycle's messages are lost: CI saw one CC
    go missing in 600.) The deltas put every message on one time line; its origin is the
    smallest (drain time - time line position) over the messages, i.e. the one drained soonest,
    so an arrival frame is late by at most that message's drain delay (~1 ms poll).
    """

    def __init__(self, port_substring: str, name: str = "recorder", timeout: float = 10.0):
        import threading

        import jack
        import rtmidi
        self.clock = jack.Client(f"{name}-clock", no_start_server=True)
        self._jack_time = _JackTime(self.clock)
        self.midi = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name, queue_size_limit=16384)
        self._raw: list[tuple[int, int, tuple]] = []     # (time line us, drained at us, message)
        self._line_us = 0
        self._closed_got: list | None = None   # frozen by close(): the clock maps no more then
        self._running = True
        ports = self.midi.get_ports()
        match = [i for i, p in enumerate(ports) if port_substring in p]
        if not match:
            self.clock.close()
            raise LookupError(f"no JACK MIDI port contains {port_substring!r} (ports: {ports})")
        self.midi.open_port(match[0], "in")
        self._thread = threading.Thread(target=self._drain, name=f"{name}-drain", daemon=True)
        self._thread.start()
        if not self._wait_connected(port_substring, timeout):
            self.close()
            raise TimeoutError(f"JACK never connected {port_substring!r}")

    def _take(self, item) -> None:
        """One (message, seconds since the previous one) from RtMidi's queue onto the time line."""
        msg, delta = item
        self._line_us += round(delta * 1e6)
        self._raw.append((self._line_us, self._jack_time.now_us(), tuple(msg)))

    def _drain(self) -> None:
        while self._running:
            item = self.midi.get_message()
            if item is None:
                time.sleep(0.001)
            else:
                self._take(item)

    def _wait_connected(self, port_substring: str, timeout: float) -> bool:
        """JACK lists a connection before the running graph uses it (messages sent in between
        are lost, seen on loaded machines): wait until it is listed, then three periods of the
        server's frame clock."""
        c, t0 = self.clock, time.monotonic()
        while time.monotonic() - t0 < timeout:
            ports = [p for p in c.get_ports(is_midi=True, is_output=True) if port_substring in p.name]
            if len(ports) == 1 and c.get_all_connections(ports[0]):
                f0 = c.last_frame_time
                while c.last_frame_time - f0 < 3 * c.blocksize and time.monotonic() - t0 < timeout:
                    time.sleep(0.005)
                return c.last_frame_time - f0 >= 3 * c.blocksize
            time.sleep(0.01)
        return False

    @property
    def messages(self) -> list[tuple]:
        return [m for _, _, m in list(self._raw)]

    @property
    def got(self) -> list[tuple[int, tuple]]:
        """(JACK frame of arrival, message) for everything received so far (after close(): all)."""
        if self._closed_got is not None:
            return self._closed_got
        raw = list(self._raw)
        if not raw:
            return []
        origin = min(drained - line for line, drained, _ in raw)
        return [(self._jack_time.frame_at(origin + line), m) for line, _, m in raw]

    def wait_for(self, pred, timeout: float = 10.0) -> bool:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(pred(m) for m in self.messages):
                return True
            time.sleep(0.01)
        return False

    def wait_count(self, n: int, timeout: float = 5.0) -> bool:
        """Until n messages arrived (what was sent crosses JACK within a few periods; a loaded
        machine may delay the cycles)."""
        t0 = time.monotonic()
        while len(self._raw) < n and time.monotonic() - t0 < timeout:
            time.sleep(0.01)
        return len(self._raw) >= n

    def close(self) -> None:
        """Stops draining (what is queued by then is kept) and closes both clients."""
        time.sleep(0.005)
        self._running = False
        self._thread.join(1.0)
        while (item := self.midi.get_message()) is not None:
            self._take(item)
        self.midi.close_port()
        self._closed_got = self.got
        self.clock.close()


def time_of(cycles: np.ndarray, sample: float, rate: int) -> float:
    """cycles (m, 2): (cycle start s, first sample played in it) -> when `sample` was played."""
    i = max(0, int(np.searchsorted(cycles[:, 1], sample, side="right")) - 1)
    return float(cycles[i, 0] + (sample - cycles[i, 1]) / rate)


class JackPlayer:
    """A JACK client with one output port that plays a mono array once, from a chosen period.

    midi_from: also a MIDI input port, connected to the output port whose name contains this,
    read in the same process callback: `midi` holds (time, message), on the clock of the audio it
    played (`time_of(sample)`): the cycle's start (time.perf_counter() as the callback begins)
    + the event's frame offset / rate. Wall-clock seconds, not JACK frames: a late cycle makes
    JACK's frame counter jump ahead by whole periods while the audio does not (JACK2's frame
    timer after an xrun), which would count as latency that nobody hears.
    """

    def __init__(self, audio: np.ndarray, name: str = "player", midi_from: str | None = None):
        import jack
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.midi_port = self.client.midi_inports.register("midi_in") if midi_from else None
        self.audio = np.asarray(audio, np.float32)
        self.rate = self.client.samplerate
        self.pos = -1                      # -1: silent until play()
        self.start_frame = None
        self.done = False
        self.midi: list[tuple[float, tuple]] = []
        self.cycles: list[tuple[float, int]] = []   # (cycle start, perf_counter s; first sample it played)
        self.client.set_process_callback(self._process)
        self.client.activate()
        if midi_from:
            sources = [p for p in self.client.get_ports(is_midi=True, is_output=True) if midi_from in p.name]
            if len(sources) != 1:
                self.close()
                raise LookupError(f"no single JACK MIDI output matches {midi_from!r}: {[p.name for p in sources]}")
            self.client.connect(sources[0], self.midi_port)
            f0 = self.client.last_frame_time           # the graph carries a connection within periods
            t0 = time.monotonic()
            while self.client.last_frame_time - f0 < 3 * self.client.blocksize and time.monotonic() - t0 < 10:
                time.sleep(0.005)

    def _process(self, frames: int) -> None:
        now = time.perf_counter()
        if self.midi_port is not None:
            for offset, data in self.midi_port.incoming_midi_events():
                self.midi.append((now + offset / self.rate, tuple(bytes(data))))
        buf = self.port.get_array()
        if self.pos < 0 or self.done:
            buf[:] = 0.0
            return
        if self.start_frame is None:
            self.start_frame = self.client.last_frame_time
        self.cycles.append((now, self.pos))
        chunk = self.audio[self.pos:self.pos + frames]
        buf[:len(chunk)] = chunk
        buf[len(chunk):] = 0.0
        self.pos += frames
        if self.pos >= len(self.audio):
            self.done = True

    def time_of(self, sample: float) -> float:
        """When audio sample `sample` was played (perf_counter s; after play() finished)."""
        return time_of(np.asarray(self.cycles, np.float64), sample, self.rate)

    def connect_to_portaudio(self) -> str:
        """Connect to the PortAudio input port of the open stream ('PortAudio:in_0', then in_1 for
        the next stream of the process, ...): the newest one."""
        targets = [p for p in self.client.get_ports(is_audio=True, is_input=True) if p.name.startswith("PortAudio")]
        if not targets:
            raise RuntimeError(f"no PortAudio input port in JACK: {[p.name for p in self.client.get_ports()]}")
        target = max(targets, key=lambda p: int(p.name.rsplit("_", 1)[-1]) if p.name[-1].isdigit() else -1)
        self.client.connect(self.port, target)
        return target.name

    def play(self) -> int:
        """Start at the next period; returns the JACK frame time of the first sample."""
        self.pos = 0
        while self.start_frame is None:
            time.sleep(0.001)
        return self.start_frame

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
