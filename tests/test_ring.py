"""Ring buffer: random push/pop sizes against a plain list, overflow drop-and-count, threads."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmirror.ring import Ring


@settings(max_examples=25, deadline=None)
@given(capacity=st.integers(1, 64),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 80)), min_size=1, max_size=60))
def test_ring_matches_a_list(capacity, ops):
    ring, model = Ring(capacity), []
    counter, dropped = 0, 0
    for is_write, n in ops:
        if is_write:
            block = np.arange(counter, counter + n, dtype=np.float32)
            counter += n
            ok = ring.write(block)
            assert ok == (len(model) + n <= capacity)
            if ok:
                model.extend(block.tolist())
            else:
                dropped += n
        else:
            out = np.full(n, -1.0, np.float32)
            got = ring.read(out)
            want = model[:n]
            del model[:n]
            assert got == len(want)
            assert out[:got].tolist() == want
        assert ring.available() == len(model)
        assert ring.free() == capacity - len(model)
    assert ring.dropped_samples == dropped


def test_write_frames_downmix_and_channel():
    frames = np.array([[1.0, 3.0], [2.0, 6.0], [0.0, -2.0]], np.float32)
    ring = Ring(4)
    assert ring.write_frames(frames)                   # mono downmix: mean over channels
    assert ring.write_frames(frames[:1], channel=1)    # wraps around the end
    out = np.zeros(4, np.float32)
    assert ring.read(out) == 4
    np.testing.assert_array_equal(out, [2.0, 4.0, -1.0, 3.0])
    assert not ring.write_frames(np.zeros((5, 2), np.float32))   # too big: dropped, counted
    assert ring.dropped_samples == 5


def test_discard_counts_and_keeps_newest():
    ring = Ring(10)
    ring.write(np.arange(8, dtype=np.float32))
    assert ring.discard(5) == 5 and ring.discarded_samples == 5
    out = np.zeros(10, np.float32)
    assert ring.read(out) == 3
    np.testing.assert_array_equal(out[:3], [5, 6, 7])
    assert ring.discard(3) == 0


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Ring(0)


def test_threads_deliver_whole_blocks_in_order():
    """A producer thread writes numbered blocks; the consumer sees them in order, whole, and
    exactly the blocks that were not counted as dropped."""
    ring = Ring(256)
    block, n_blocks = 48, 3000
    done = threading.Event()

    def produce():
        for b in range(n_blocks):
            ring.write(np.full(block, b, np.float32))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    out = np.zeros(100, np.float32)
    while not (done.is_set() and ring.available() == 0):
        n = ring.read(out)
        got.extend(out[:n].tolist())
    t.join()
    got = np.asarray(got)
    ids, counts = np.unique(got, return_counts=True)
    assert (counts == block).all()                     # no torn blocks
    assert (np.diff(got) >= 0).all()                   # in order
    assert len(ids) * block + ring.dropped_samples == n_blocks * block
