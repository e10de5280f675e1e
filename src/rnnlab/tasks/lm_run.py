"""High-level entry points behind ``rnnlab train``, ``eval`` and ``generate``.

They connect corpus loading, datasets, the trainer and checkpoints; the CLI calls
these and only formats what they return.

:func:`train` and :func:`resume` run data-parallel when started by ``torchrun``
(:func:`rnnlab.training.distributed.launch`): every process reads the corpus and
trains its rows of each global batch; rank 0 prepares the output folder, writes,
logs and computes the n-gram baselines.
"""
from __future__ import annotations

import os
from pathlib import Path

from rnnlab.data.corpus import allowed_roots, read_text_file, recorded_location, reload_corpus
from rnnlab.data.dataset import TextDataset, prepare_text
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError
from rnnlab.progress import logger
from rnnlab.checkpoint import prepare_output_folder
from rnnlab.fileio import check_input_file
from rnnlab.lm import LanguageModel
from rnnlab.models.base import memory_guard
from rnnlab.precision import resolve_device, resolve_precision
from rnnlab.tasks.lm import language_model_trainer
from rnnlab.training import budget
from rnnlab.training.checkpoint import KIND, load_training_config
from rnnlab.training.config import UNLIMITED_EPOCHS, TrainConfig
from rnnlab.training.state import Progress, resumed_options
from rnnlab.training.distributed import Distributed, launch
from rnnlab.training.loop import Callback, Trainer, check_world_size
from rnnlab.checkpoint import attach_subword


def dataset_for(config: TrainConfig, data_dir=None, vocab: Vocab | None = None,
                saved_sources: list[str] | None = None, saved_data: dict | None = None,
                corpus: str | None = None, roles=("", "val_", "test_"), doing: str = "resuming",
                checkpoint=None) -> tuple[TextDataset, dict]:
    """Load and encode the corpus that ``config`` names; also return its provenance.

    ``saved_sources`` (from a checkpoint) lets a named download such as
    ``timemachine`` be found again where training found it. Validation and test files
    (``config.val_corpus``/``test_corpus``, or those of a split folder) add
    ``val_source``/``val_sha1``/``val_location`` and ``test_...`` to the provenance.

    ``saved_data`` (a checkpoint's ``data`` record) means: read the data the checkpoint
    was trained on, from the absolute location recorded then (else the path as given,
    for a checkpoint that recorded none or a run folder moved together with its corpus), and refuse
    it unless its SHA-1 for each of ``roles`` matches the record (see
    :func:`_check_unchanged`). ``corpus`` replaces the training corpus's location: a
    moved copy, which must have the recorded SHA-1. Recorded paths are read only inside
    the user's folders (:func:`rnnlab.data.corpus.allowed_roots`, with ``checkpoint``).
    """
    if saved_data is None:
        spec, val, test = config.corpus, config.val_corpus, config.test_corpus
    else:
        # Paths in a checkpoint are data: read only inside the user's folders (allowed_roots).
        roots = allowed_roots(data_dir, corpus, checkpoint)
        spec = corpus if corpus is not None else recorded_location(saved_data.get("location"), config.corpus, roots)
        val, test = (recorded_location(saved_data.get(f"{role}_location"), getattr(config, f"{role}_corpus"), roots,
                                       what=f"{'validation' if role == 'val' else 'test'} file",
                                       hint="--data-dir FOLDER holding it")
                     for role in ("val", "test"))
        if corpus is not None and not saved_data.get("sha1"):
            raise DataError("the checkpoint records no checksum of its training corpus, so --corpus "
                            f"{corpus} cannot be checked against it; leave out --corpus")
    loaded = reload_corpus(spec, saved_sources, data_dir=data_dir, encoding_errors=config.encoding_errors,
                           val=val, test=test)
    info = {"corpus": loaded.name, "sources": loaded.sources, "sha1": loaded.sha1, "location": loaded.location}
    for role in ("val", "test"):
        part = getattr(loaded, role)
        if part is not None:
            info.update({f"{role}_source": part.sources[0], f"{role}_sha1": part.sha1,
                         f"{role}_location": part.location})
    if saved_data is not None:
        _check_unchanged(saved_data, info, roles=roles, doing=doing, override=corpus)
    dataset = prepare_text(loaded, mode=config.mode, token=config.token, split=config.split,
                           min_freq=config.min_freq, max_tokens=config.max_tokens, vocab=vocab,
                           vocab_size=config.vocab_size)
    return dataset, {**info, **dataset.info}



def _check_unchanged(saved: dict, info: dict, roles=("", "val_", "test_"), doing: str = "resuming",
                     override: str | None = None) -> None:
    """Refuse data whose SHA-1 differs from the one the checkpoint recorded.

    ``roles``: key prefixes to compare, ``""`` for the training corpus (``sha1``,
    ``sources``), ``"val_"``/``"test_"`` for the held-out files. Checkpoints that
    recorded no SHA-1 cannot be checked: a warning.
    """
    for prefix in roles:
        old, new = saved.get(f"{prefix}sha1"), info.get(f"{prefix}sha1")
        what = {"": "corpus", "val_": "validation file", "test_": "test file"}[prefix]
        if not old:
            if new and (prefix == "" or saved.get(f"{prefix}source")):
                logger.warning("the checkpoint records no checksum of its %s: cannot check that it is unchanged", what)
            continue
        if new == old:
            continue
        if prefix == "" and override is not None:
            raise DataError(f"--corpus {override} is not a copy of the training corpus (SHA-1 {new} != {old}, "
                            "the one the checkpoint recorded)")
        source = info.get(f"{prefix}location") or (info["sources"][0] if not prefix else info[f"{prefix}source"])
        hint = " (--corpus PATH names a copy of the original)" if prefix == "" else ""
        raise DataError(f"the {what} {source} changed since the checkpoint was written "
                        f"(SHA-1 {new} != {old}); {doing} would not use the same data{hint}")


def train(config: TrainConfig, out_dir: str | os.PathLike | None = None, data_dir=None,
          callbacks: list[Callback] | tuple = (), overwrite: bool = False,
          baselines: bool = True) -> tuple[Trainer, dict]:
    """Train a new model as ``config`` says; return the trainer and its summary (with
    ``baselines``: the unigram and Kneser-Ney validation perplexities beside the model's).

    ``out_dir`` is checked and created before anything else
    (:func:`rnnlab.checkpoint.prepare_output_folder`): a folder of other files is refused,
    an existing run only replaced with ``overwrite``.

    Under ``torchrun`` this is one process of a data-parallel run (``config.batch_size``
    is the global batch); its summary has ``rank`` and ``processes``.
    """
    config.validate()
    with launch(config.device) as dist:
        if out_dir is not None:
            out_dir = dist.on_main(lambda: prepare_output_folder(out_dir, KIND, overwrite=overwrite))
        dataset, info = dataset_for(config, data_dir)
        if config.rule_fields:
            apply_size_rule(config, dataset, dist)
        _check_batch(config, dataset)
        trainer = _make_trainer(config, dataset, out_dir=out_dir, callbacks=callbacks, data_info=info,
                                baselines=baselines and dist.is_main, dist=dist)
        if dist.is_main:
            logger.info("training %s (%s parameters) on %s: %s train / %s val %s tokens, vocabulary %s, device %s%s",
                        config.model, f"{trainer.model.num_parameters():,}", info["corpus"], f"{len(dataset.train):,}",
                        f"{len(dataset.val):,}", config.token, len(dataset.vocab), trainer.device, _processes(dist))
        return trainer, trainer.fit()


def apply_size_rule(config: TrainConfig, dataset: TextDataset, dist: Distributed) -> None:
    """Set the options in ``config.rule_fields`` from :func:`rnnlab.training.budget.choose`
    (the model's size for this budget, corpus and precision) and record why in ``size_rule``.

    Under ``torchrun`` rank 0 probes the speed and every rank uses its number, so all
    ranks build the same model.
    """
    auto = set(config.rule_fields.split(","))
    given = {name: getattr(config, name) for name in budget.RULE_FIELDS if name not in auto}
    device = dist.device if dist.device is not None else resolve_device(config.device)
    precision = resolve_precision(config.precision, device, warn=False)  # the trainer says it once
    model = config.model if "model" in given else None
    if (model or budget.DEFAULT_MODEL) not in budget.LADDERS:  # the book's models keep their fixed sizes
        config.rule_fields = ""
        return
    def rate_of(options: dict) -> float:  # every rank asks for the same rungs in the same order
        return dist.broadcast(budget.probe_rate(options, len(dataset.vocab), precision, device)
                              if dist.is_main else 0.0)

    choice = budget.choose(model, config.size, len(dataset.vocab), len(dataset.train), precision,
                           max_time=config.max_time, max_steps=config.max_steps,
                           epochs=config.epochs if config.epochs < UNLIMITED_EPOCHS else None,
                           given=given, rate_of=rate_of, device=device)
    for name, value in choice.options.items():
        setattr(config, name, value)
    config.rule_fields, config.size_rule = "", choice.reason
    config.validate()
    if dist.is_main:
        logger.info("size: %s", choice.reason)


def _processes(dist: Distributed) -> str:
    if not dist.enabled:
        return ""
    backend = "nccl" if dist.device is not None and dist.device.type == "cuda" else "gloo"
    return f"; {dist.world_size} processes (DDP over {backend}), each with 1/{dist.world_size} of the global batch"


def resume(folder: str | os.PathLike, epochs: int | None = None, max_time: float | None = None,
           max_steps: int | None = None,
           out_dir: str | os.PathLike | None = None, device: str | None = None, precision: str | None = None,
           data_dir=None, callbacks: list[Callback] | tuple = (), corpus: str | None = None,
           overwrite: bool = False, baselines: bool = True) -> tuple[Trainer, dict]:
    """Continue the training run saved in ``folder`` exactly where it stopped.

    The training data is read again from where the checkpoint says and must be unchanged
    (same SHA-1); ``corpus`` points at a moved copy of it. ``out_dir`` (default: ``folder``
    itself) is checked like a new run's unless it is ``folder``. Under ``torchrun`` the
    number of processes must be the one that wrote the checkpoint.
    """
    saved = load_training_config(folder)
    with launch(device if device is not None else saved["train_config"].get("device", "auto")) as dist:
        return _resume(folder, saved, dist, epochs=epochs, max_time=max_time, max_steps=max_steps, out_dir=out_dir,
                       device=device, precision=precision, data_dir=data_dir, callbacks=callbacks, corpus=corpus,
                       overwrite=overwrite, baselines=baselines)


def _resume(folder, saved: dict, dist: Distributed, epochs, max_time, max_steps, out_dir, device, precision, data_dir,
            callbacks, corpus, overwrite, baselines) -> tuple[Trainer, dict]:
    check_world_size(folder, saved, dist.world_size)
    # bf16 and fp32 compute the same function: a run may switch precision (and device) on resume
    config = resumed_options(TrainConfig.from_dict(saved["train_config"]),
                             Progress.from_dict(saved["progress"], str(Path(folder) / "config.json")), folder,
                             epochs=epochs, max_time=max_time, max_steps=max_steps, device=device, precision=precision)
    target = Path(out_dir) if out_dir is not None else Path(folder)
    in_place = target.exists() and Path(folder).exists() and os.path.samefile(target, folder)
    target = dist.on_main(lambda: prepare_output_folder(target, KIND, overwrite=overwrite, resume=in_place))
    vocab = Vocab.from_dict(saved["vocab"])
    attach_subword(folder, saved, vocab)  # bpe/unigram: the run's own tokenizer, verified
    dataset, info = dataset_for(config, data_dir, vocab=vocab,
                                saved_sources=saved.get("data", {}).get("sources"),
                                saved_data=saved.get("data", {}), corpus=corpus, checkpoint=folder)
    trainer = _make_trainer(config, dataset, out_dir=target, callbacks=callbacks, data_info=info,
                            baselines=baselines and dist.is_main, dist=dist)
    trainer.restore(folder)
    if dist.is_main:
        logger.info("resuming %s at epoch %d, step %d%s", folder, trainer.progress.epoch + 1, trainer.progress.step,
                    _processes(dist))
    return trainer, trainer.fit()


def _make_trainer(config: TrainConfig, dataset: TextDataset, **options) -> Trainer:
    """A language model's :class:`Trainer`; a model too large for memory is a clear error, not a traceback."""
    with memory_guard(hint="use a smaller --hidden, --layers or --embed"):
        return language_model_trainer(config, dataset, **options)


def _check_batch(config: TrainConfig, dataset: TextDataset) -> None:
    if len(dataset.vocab) < 2:  # only <unk>: every token is the same, there is nothing to learn
        raise DataError(f"the vocabulary has only <unk> after --min-freq {config.min_freq} (no {config.token} "
                        "token is that frequent); lower --min-freq or use a larger corpus")
    need = config.batch_size * config.num_steps + 1
    if len(dataset.train) < need:
        raise DataError(f"the training split has {len(dataset.train):,} tokens, fewer than one batch needs "
                        f"(batch_size * num_steps + 1 = {need:,}); use a smaller --batch-size or --num-steps "
                        "or a larger corpus")


def evaluate_checkpoint(folder, split: str = "val", text_path: str | None = None, data_dir=None,
                        encoding_errors: str = "strict", corpus: str | None = None) -> dict:
    """Perplexity of a saved model on a split of its training corpus or on a text file.

    The corpus is read from where the checkpoint recorded it and refused when its SHA-1
    differs from the recorded one; ``corpus`` points at a moved copy.
    """
    lm = LanguageModel.load(folder)
    if text_path is not None:
        path = check_input_file(text_path, f"--text {text_path}")
        text = read_text_file(path, encoding_errors)
        result = lm.score(text)
        source = str(path)
    else:
        saved = load_training_config(folder)
        config = TrainConfig.from_dict(saved["train_config"])
        # The fractions of one text split all of it; held-out files stand alone.
        data = saved.get("data", {})
        held_out_files = config.split == "files" or bool(data.get("val_source") or data.get("test_source"))
        roles = (f"{split}_",) if held_out_files and split in ("val", "test") else ("",)
        dataset, info = dataset_for(config, data_dir, vocab=lm.vocab,
                                    saved_sources=saved.get("data", {}).get("sources"),
                                    saved_data=saved.get("data", {}), corpus=corpus, roles=roles,
                                    doing="scoring it (--text FILE scores other text)", checkpoint=folder)
        ids = dataset.part(split)
        if len(ids) < 2:
            if dataset.split == "files" and split != "train":
                raise DataError(f"{folder} was trained without a {split} file (--{split}), so there is nothing to "
                                "score; use --text FILE or another --split")
            raise DataError(f"the '{split}' split of {config.corpus or 'the built-in corpus'} has no tokens to score "
                            f"(split {config.split}); use --text FILE or another --split")
        result = lm.score(ids, chars=dataset.covered_chars(split))
        source = f"{dataset.corpus_name}:{split}"
    return {**result, "source": source}


__all__ = ["train", "resume", "evaluate_checkpoint", "dataset_for"]
