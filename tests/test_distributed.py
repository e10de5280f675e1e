"""Distributed data-parallel training (issue 11): 2 processes over gloo on the loopback.

One ``torch.multiprocessing.spawn`` of two ranks runs every multi-process job of the
library tests (each rank joins the process group once; ``run.train``/``run.resume``
find it already joined); one ``torchrun`` launch checks the command line. Tiny models
on a tiny generated corpus keep the file at 18-26 s on 2 cores.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.errors import UsageError
from rnnlab.tasks import lm_run as run
from rnnlab.training.config import TrainConfig, make_config

WORLD = 2
MODELS = ("lstm", "gru", "rnn-scratch")


def _corpus(folder: Path) -> Path:
    import random
    rng = random.Random(0)
    words = "the time traveller said that it was a very curious thing and we all looked at him".split()
    path = folder / "corpus.txt"
    path.write_text(" ".join(rng.choice(words) for _ in range(400)), encoding="utf-8")  # about 1,900 chars
    return path


def _config(corpus: Path, **overrides) -> dict:
    """A tiny language-model run: float32, dropout 0, SGD without clipping (so a sum of the
    ranks' gradients instead of their mean would show), 8 rows of 12 steps globally."""
    values = dict(corpus=str(corpus), mode="raw", token="char", model="lstm", hidden_size=16, num_layers=2,
                  embed_size=8, dropout=0.0, batch_size=8, num_steps=12, sampling="random", precision="fp32",
                  optimizer="sgd", lr=0.5, lr_schedule="constant", epochs=3, seed=3, sample_length=0,
                  device="cpu", early_stop=0)
    values.update(overrides)
    config = make_config(**{k: v for k, v in values.items() if k != "clip"})
    config.clip = values.get("clip")  # None (no clipping) unless given
    return config.to_dict()


def _weights(folder) -> dict:
    from safetensors.torch import load_file
    return load_file(str(Path(folder) / "model.safetensors"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# What each rank runs (in a spawned process)

def _digest(model) -> list[float]:
    return [float(p.detach().double().sum()) for p in model.parameters()]


class _WriteRecorder:
    """Records every attempt of this process to create, write, move or delete a file under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base, self.seen, self.saved = str(base), [], []

    def _note(self, what, path) -> None:
        if isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(self.base):
            self.seen.append(f"{what} {os.fspath(path)}")

    def __enter__(self):
        import builtins
        import io
        import shutil
        recorder = self
        targets = [(builtins, "open"), (io, "open"), (os, "open"), (os, "replace"), (os, "rename"), (os, "mkdir"),
                   (os, "unlink"), (os, "remove"), (os, "rmdir"), (shutil, "rmtree")]
        for module, name in targets:
            original = getattr(module, name)
            self.saved.append((module, name, original))

            def patched(path, *args, _original=original, _name=name, **kwargs):
                mode = args[0] if args else kwargs.get("mode", kwargs.get("flags", "r"))
                reading = (_name == "open" and isinstance(mode, str) and not set(mode) & set("wax+")) or \
                          (_name == "open" and isinstance(mode, int) and not mode & (os.O_WRONLY | os.O_RDWR))
                if not reading:
                    recorder._note(_name, path)
                return _original(path, *args, **kwargs)
            setattr(module, name, patched)
        return self

    def __exit__(self, *exc) -> None:
        for module, name, original in reversed(self.saved):
            setattr(module, name, original)


def _rank_main(rank: int, port: int, base: str, jobs: list) -> None:
    import logging

    import torch.distributed as dist

    from rnnlab.errors import RnnlabError
    from rnnlab.progress import logger
    from rnnlab.tasks.lm_run import resume, train

    torch.set_num_threads(1)
    os.chdir(base)  # the project folder: resuming reads the recorded corpus only inside the user's folders
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    results = {}
    for job in jobs:
        name, kind = job["name"], job["kind"]
        config = TrainConfig.from_dict(job["config"]).validate() if "config" in job else None
        try:
            recorder = _WriteRecorder(Path(base))
            with recorder:
                if kind == "train":
                    if job.get("nan_on_rank") == rank:  # this rank alone sees a NaN loss at step 2
                        from rnnlab.tasks.lm import LanguageModelTask
                        original = LanguageModelTask.loss

                        def poisoned(self, model, batch, carry, step, _original=original):
                            loss, items, carry = _original(self, model, batch, carry, step)
                            return (loss * float("nan") if step == 2 else loss), items, carry
                        LanguageModelTask.loss = poisoned
                    if job.get("fail_on_rank") == rank:  # this rank alone fails at step 2
                        from rnnlab.errors import DataError
                        from rnnlab.tasks.lm import LanguageModelTask
                        original = LanguageModelTask.loss

                        def failing(self, model, batch, carry, step, _original=original):
                            if step == 2:
                                raise DataError("cannot read (simulated)")
                            return _original(self, model, batch, carry, step)
                        LanguageModelTask.loss = failing
                    trainer, summary = train(config, out_dir=job["out"], overwrite=True, baselines=False)
                else:
                    trainer, summary = resume(job["folder"], max_steps=job.get("max_steps"), baselines=False)
            results[name] = {"steps": summary["steps"], "stopped": summary["stopped"], "digest": _digest(trainer.model),
                             "writes": recorder.seen, "processes": summary["processes"]}
        except RnnlabError as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "writes": recorder.seen}
        finally:
            if rank in (job.get("nan_on_rank"), job.get("fail_on_rank")):
                LanguageModelTask.loss = original
        if job.get("fail_on_rank") == rank:  # the last job: this process leaves, the other must notice
            results["log_records"] = records
            Path(base, f"rank{rank}.json").write_text(json.dumps(results))
            os._exit(0)
    results["log_records"] = records
    dist.destroy_process_group()
    Path(base, f"rank{rank}.json").write_text(json.dumps(results))


# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Single-process references, then every 2-rank job in one spawn; each rank's results."""
    base = tmp_path_factory.mktemp("ddp")
    corpus = _corpus(base)
    single = {}
    for model in MODELS:  # (a): one step in one process on the global batch
        out = base / f"single-{model}"
        run.train(TrainConfig.from_dict(_config(corpus, model=model, max_steps=1)), out_dir=out, baselines=False)
        single[model] = out
    sequential = dict(sampling="sequential", dropout=0.2, optimizer="adam", lr=0.01)
    jobs = [{"name": f"one-{m}", "kind": "train", "out": str(base / f"one-{m}"),
             "config": _config(corpus, model=m, max_steps=1)} for m in MODELS]
    jobs += [{"name": f"bf16-{m}", "kind": "train", "out": str(base / f"bf16-{m}"),
              "config": _config(corpus, model=m, max_steps=4, precision="bf16", dropout=0.1)} for m in MODELS]
    jobs += [
        # (b) 26 steps (over an epoch boundary) in one go, or 9 + resume to 26 (mid-epoch: carried state)
        {"name": "full", "kind": "train", "out": str(base / "full"), "config": _config(corpus, max_steps=26, **sequential)},
        {"name": "part", "kind": "train", "out": str(base / "part"), "config": _config(corpus, max_steps=9, **sequential)},
        {"name": "resumed", "kind": "resume", "folder": str(base / "part"), "max_steps": 26},
        # (c) a checkpoint of one process resumed by two
        {"name": "resume-single", "kind": "resume", "folder": str(single["lstm"]), "max_steps": 3},
        # every rank stops at the same step: a NaN on rank 1 alone; a time budget
        {"name": "nan", "kind": "train", "out": str(base / "nan"), "config": _config(corpus, max_steps=6),
         "nan_on_rank": 1},
        {"name": "time", "kind": "train", "out": str(base / "time"),
         "config": _config(corpus, max_time=0.4, epochs=1000, hidden_size=32, lr_schedule="cosine")},
        # last: rank 1 alone fails and its process ends; rank 0 must stop with one clear error
        {"name": "lost", "kind": "train", "out": str(base / "lost"), "config": _config(corpus, max_steps=6),
         "fail_on_rank": 1},
    ]
    torch.multiprocessing.spawn(_rank_main, args=(_free_port(), str(base), jobs), nprocs=WORLD, join=True)
    results = [json.loads((base / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return {"base": base, "single": single, "results": results}


@pytest.mark.parametrize("model", MODELS)
def test_one_step_of_two_ranks_is_one_step_of_one(ranks, model):
    """(a) Gradients are averaged over the global batch: 2 x 4 rows give the parameters 8 rows give."""
    one, two = _weights(ranks["single"][model]), _weights(ranks["base"] / f"one-{model}")
    assert one.keys() == two.keys()
    start = TrainConfig.from_dict(_config(Path("x"), model=model))  # the step must have moved the weights
    from rnnlab.models import build_model
    initial = build_model(model, len(json.loads((ranks["single"][model] / "config.json").read_text())["vocab"]
                                     ["idx_to_token"]), seed=start.seed, **start.model_options()).state_dict()
    moved = max(float((two[k] - initial[k]).abs().max()) for k in two)
    assert moved > 1e-3
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    for result in ranks["results"]:
        assert result[f"one-{model}"]["processes"] == 2 and result[f"one-{model}"]["steps"] == 1


def test_fast_paths_and_bf16_keep_the_ranks_in_step(ranks):
    """LSTM (oneDNN), fused GRU and the scratch RNN under bf16 autocast with dropout: the
    ranks draw different dropout masks, yet DDP keeps their parameters equal."""
    first, second = ranks["results"]
    for model in MODELS:
        assert "error" not in first[f"bf16-{model}"], first[f"bf16-{model}"]
        assert first[f"bf16-{model}"]["digest"] == second[f"bf16-{model}"]["digest"]
        config = json.loads((ranks["base"] / f"bf16-{model}" / "config.json").read_text())
        assert config["progress"]["step"] == 4 and config["distributed"] == {"world_size": 2}


def test_resume_of_two_ranks_gives_the_uninterrupted_parameters(ranks):
    """(b) 9 steps, checkpoint (mid-epoch: the carried state of both ranks' rows), resume to
    26 steps = 26 steps in one go, with dropout and sequential partitioning."""
    base = ranks["base"]
    full, resumed = _weights(base / "full"), _weights(base / "part")
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=1e-6, msg=key)
    for result in ranks["results"]:
        assert result["part"]["steps"] == 9 and result["resumed"]["steps"] == result["full"]["steps"] == 26
        assert result["resumed"]["digest"] == result["full"]["digest"]


def test_resume_with_another_number_of_processes_is_refused(ranks):
    """(c) Both directions, one clear UsageError."""
    for result in ranks["results"]:
        assert result["resume-single"]["error"].startswith("UsageError: ")
        assert "trained by 1 process and this run has 2" in result["resume-single"]["error"]
    part = ranks["base"] / "part"
    with pytest.raises(UsageError, match=r"trained by 2 processes and this run has 1; resume it with 2 processes "
                                         r"\(torchrun --nproc_per_node=2"):
        run.resume(part, max_steps=30)
    import shutil

    from rnnlab.errors import CheckpointError
    forged = ranks["base"] / "forged"
    shutil.copytree(ranks["single"]["lstm"], forged)
    config = json.loads((forged / "config.json").read_text())
    config["distributed"] = {"world_size": "2"}
    (forged / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"key 'distributed.world_size' must be an integer from 1 to 2\*\*20"):
        run.resume(forged, max_steps=3)


def test_checkpoint_holds_the_unwrapped_model(ranks):
    """(d) No ``module.``/``_orig_mod.`` prefix; the same names as a single process's checkpoint."""
    base = ranks["base"]
    for model in MODELS:
        keys = set(_weights(base / f"one-{model}"))
        assert keys == set(_weights(ranks["single"][model]))
        assert not [k for k in keys if k.startswith(("module.", "_orig_mod."))]
    config = json.loads((base / "part" / "config.json").read_text())
    assert config["model"]["model"] == "lstm" and config["distributed"] == {"world_size": 2}
    from safetensors.torch import load_file
    state = load_file(str(base / "part" / "state.safetensors"))
    assert state["carried.0"].shape == (2, 8, 16)  # the global batch's rows, gathered from both ranks


def test_only_rank_zero_writes_and_logs(ranks):
    """(e) Rank 1 creates, writes, moves and deletes nothing, and logs nothing; rank 0 writes the run."""
    first, second = ranks["results"]
    for name, result in second.items():
        if name != "log_records":
            assert result["writes"] == [], name
    assert second["log_records"] == []
    assert any(w.endswith("model.safetensors") or "one-lstm" in w for w in first["one-lstm"]["writes"])
    assert any(line.startswith("training lstm") and "2 processes (DDP over gloo)" in line
               for line in first["log_records"])
    assert {p.name for p in (ranks["base"] / "full").iterdir()} >= {"config.json", "model.safetensors",
                                                                    "metrics.jsonl", "best"}


def test_every_rank_stops_at_the_same_step(ranks):
    """A NaN on rank 1 alone stops both ranks at that step with one error; a time budget ends
    both at the same step (rank 0's clock)."""
    first, second = ranks["results"]
    assert first["nan"]["error"] == second["nan"]["error"]
    assert first["nan"]["error"].startswith("TrainingError: ") and "at step 3" in first["nan"]["error"]
    assert first["time"]["stopped"] == second["time"]["stopped"] == "max_time"
    assert first["time"]["steps"] == second["time"]["steps"] > 0
    assert first["time"]["digest"] == second["time"]["digest"]


def test_a_rank_failing_alone_stops_the_others_with_one_error(ranks):
    first, second = ranks["results"]
    assert second["lost"]["error"] == "DataError: cannot read (simulated)"
    assert first["lost"]["error"].startswith("TrainingError: another process of the distributed run failed or was "
                                             "stopped, so this one cannot go on (")
    assert first["lost"]["error"].endswith("torchrun's report names the process that failed first and its error")


def test_torchrun_command_line(tmp_path):
    """``torchrun --nproc_per_node=2 -m rnnlab train``: one summary (rank 0's), one error line on failure."""
    corpus = _corpus(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    common = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "rnnlab",
              "--threads", "1", "train", "--corpus", str(corpus), "--model", "gru", "--hidden", "16", "--layers", "1",
              "--num-steps", "12", "--max-steps", "6", "--eval-every-steps", "3", "--device", "cpu",
              "--sample-length", "0"]
    done = subprocess.run(common + ["--batch-size", "8", "--out", str(tmp_path / "run"), "--json"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    summaries = [line for line in lines if line.startswith("{")]
    assert len(summaries) == 1, done.stdout
    summary = json.loads(summaries[0])
    assert summary["processes"] == 2 and summary["rank"] == 0 and summary["steps"] == 6
    assert summary["ngram_val_perplexity"] is not None  # baselines: computed once, on rank 0
    assert sum(line.startswith("training gru") for line in done.stderr.splitlines()) == 1
    assert sum(line.startswith("epoch ") for line in done.stderr.splitlines()) == 2
    failed = subprocess.run(common + ["--batch-size", "7", "--out", str(tmp_path / "bad")], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "must be a multiple of the 2 processes" in errors[0], failed.stderr[-3000:]
    assert failed.stdout == ""


def test_launch_environment_and_devices(monkeypatch, capsys):
    """torchrun's variables are checked; only ``train`` runs distributed; device choices per process."""
    from rnnlab.cli import main
    from rnnlab.precision import resolve_device
    from rnnlab.training.distributed import SINGLE, from_environment, process_device
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert from_environment() is SINGLE
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert from_environment().rank == 1 and not from_environment().is_main
    monkeypatch.setenv("RANK", "0")
    assert main(["ngram", "eval", "nowhere"]) == 2
    assert "error: rnnlab ngram runs in one process; of the commands only 'rnnlab train' runs under torchrun " \
           "(2 processes here)" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "two")
    assert main(["train"]) == 2
    assert "error: the environment variable RANK='two' (set by torchrun) is not an integer" in capsys.readouterr().err
    assert process_device("cpu", 1, 2).type == "cpu"
    if not torch.cuda.is_available():
        assert process_device("auto", 1, 2).type == "cpu"
        for option in ("cuda", "cuda:1"):
            with pytest.raises(UsageError, match=f"--device {option} was asked for but no CUDA GPU is available"):
                process_device(option, 0, 1)
            with pytest.raises(UsageError, match=f"--device {option} was asked for but no CUDA GPU is available"):
                resolve_device(option)
    with pytest.raises(UsageError, match="--device mps cannot be used by several processes"):
        process_device("mps", 0, 2)


@pytest.mark.parametrize("world_size", [2, 3, 7])
def test_sharded_validation_adds_up_to_one_process(world_size):
    """Each rank scores its block of the same rows (the last one the tail too): the NLL sums
    to one process's, also with more ranks than rows."""
    import numpy as np

    from rnnlab.evaluation import evaluate
    from rnnlab.models import build_model
    from rnnlab.training.distributed import Distributed

    class Alone(Distributed):  # each rank's own part, without the all-reduce
        def sum(self, values):
            return list(values)

    model = build_model("gru", 13, seed=1, hidden_size=8, num_layers=1, embed_size=4)
    ids = np.random.default_rng(0).integers(0, 13, 203)
    whole = evaluate(model, ids, rows=5, num_steps=7)
    parts = [evaluate(model, ids, rows=5, num_steps=7, shard=Alone(rank=r, world_size=world_size))
             for r in range(world_size)]
    assert sum(p["nll_nats"] for p in parts) == pytest.approx(whole["nll_nats"], rel=1e-6)
    assert all(p["tokens"] == whole["tokens"] == 202 for p in parts)
