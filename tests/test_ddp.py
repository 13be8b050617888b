"""Data-parallel training: the same Trainer under torchrun with 2 CPU processes (gloo) stays in sync."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SCRIPT = textwrap.dedent('''
    import sys, torch
    from safetensors.torch import save_file
    from torch import distributed as dist
    from rtmirror.models.train.trainer import Trainer, load_config
    cfg = load_config("tiny")
    cfg["init"].update(decoder_epochs=1, encoder_epochs=1)
    cfg["mirror"].update(rounds=1, decoder_epochs=1, encoder_epochs=1, encoder_sup_weight=0.5)
    out = sys.argv[1]
    t = Trainer(cfg, out, progress=False)
    t.train()
    rank = dist.get_rank()
    state = {f"encoder.{k}": v for k, v in t.encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in t.decoder.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, f"{out}/rank{rank}.safetensors",
              metadata={"step": str(t.step), "world": str(t.world)})
    dist.destroy_process_group()
''')


@pytest.mark.timeout(180)
def test_two_gloo_ranks_stay_in_sync(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           f"--master_port={_free_port()}", str(script), str(out)]
    env_threads = {"OMP_NUM_THREADS": "1"}
    import os
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, env={**os.environ, **env_threads})
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(out / "rank0.safetensors"))
    b = load_file(str(out / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"ranks diverged at {k}"
    # the ranks trained (weights moved from the seed's initialization) and rank 0 wrote the run
    from rtmirror.models.train.trainer import Trainer, load_config
    torch.set_num_threads(1)
    fresh = Trainer(load_config("tiny"), tmp_path / "unused", progress=False)
    init = {f"encoder.{k}": v for k, v in fresh.encoder.state_dict().items()}
    assert any(not torch.equal(init[k], a[k]) for k in init)
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "metrics.csv").is_file()
