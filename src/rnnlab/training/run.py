"""High-level entry points behind ``rnnlab train``, ``eval`` and ``generate``.

They connect corpus loading, datasets, the trainer and checkpoints; the CLI calls
these and only formats what they return.
"""
from __future__ import annotations

import os
from pathlib import Path

from rnnlab.data.corpus import reload_corpus
from rnnlab.data.dataset import TextDataset, prepare_text
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError, UsageError
from rnnlab.progress import logger
from rnnlab.training.checkpoint import load_training_config
from rnnlab.training.config import TrainConfig
from rnnlab.training.loop import Callback, Trainer


def dataset_for(config: TrainConfig, data_dir=None, vocab: Vocab | None = None,
                saved_sources: list[str] | None = None) -> tuple[TextDataset, dict]:
    """Load and encode the corpus that ``config`` names; also return its provenance.

    ``saved_sources`` (from a checkpoint) lets a named download such as
    ``timemachine`` be found again where training found it. Validation and test files
    (``config.val_corpus``/``test_corpus``, or those of a split folder) add
    ``val_source``/``val_sha1`` and ``test_source``/``test_sha1`` to the provenance.
    """
    corpus = reload_corpus(config.corpus, saved_sources, data_dir=data_dir, encoding_errors=config.encoding_errors,
                           val=config.val_corpus, test=config.test_corpus)
    dataset = prepare_text(corpus, mode=config.mode, token=config.token, split=config.split,
                           min_freq=config.min_freq, max_tokens=config.max_tokens, vocab=vocab)
    info = {"corpus": corpus.name, "sources": corpus.sources, "sha1": corpus.sha1}
    for role in ("val", "test"):
        part = getattr(corpus, role)
        if part is not None:
            info.update({f"{role}_source": part.sources[0], f"{role}_sha1": part.sha1})
    return dataset, {**info, **dataset.info}


def _check_unchanged(saved: dict, info: dict, roles=("", "val_", "test_"), doing: str = "resuming") -> None:
    """Refuse data files whose SHA-1 differs from the one the checkpoint recorded.

    ``roles``: key prefixes to compare, ``""`` for the training corpus (``sha1``,
    ``sources``), ``"val_"``/``"test_"`` for the held-out files.
    """
    for prefix in roles:
        old, new = saved.get(f"{prefix}sha1"), info.get(f"{prefix}sha1")
        if old and new and old != new:
            source = info["sources"][0] if not prefix else info[f"{prefix}source"]
            what = {"": "corpus", "val_": "validation file", "test_": "test file"}[prefix]
            raise DataError(f"the {what} {source} changed since the "
                            f"checkpoint was written (SHA-1 {new} != {old}); {doing} would not use the same data")


def train(config: TrainConfig, out_dir: str | os.PathLike | None = None, data_dir=None,
          callbacks: list[Callback] | tuple = ()) -> tuple[Trainer, dict]:
    """Train a new model as ``config`` says; return the trainer and its summary."""
    config.validate()
    dataset, info = dataset_for(config, data_dir)
    _check_batch(config, dataset)
    trainer = Trainer(config, dataset, out_dir=out_dir, callbacks=callbacks, data_info=info)
    logger.info("training %s (%s parameters) on %s: %s train / %s val %s tokens, vocabulary %s, device %s",
                config.model, f"{trainer.model.num_parameters():,}", info["corpus"], f"{len(dataset.train):,}",
                f"{len(dataset.val):,}", config.token, len(dataset.vocab), trainer.device)
    return trainer, trainer.fit()


def resume(folder: str | os.PathLike, epochs: int | None = None, max_time: float | None = None,
           max_steps: int | None = None,
           out_dir: str | os.PathLike | None = None, device: str | None = None, precision: str | None = None,
           data_dir=None, callbacks: list[Callback] | tuple = ()) -> tuple[Trainer, dict]:
    """Continue the training run saved in ``folder`` exactly where it stopped."""
    saved = load_training_config(folder)
    config = TrainConfig.from_dict(saved["train_config"])
    if epochs is not None:
        config.epochs = epochs
    if max_time is not None:
        config.max_time = max_time
    config.max_steps = max_steps  # a step cap applies to one invocation, never inherited
    if device is not None:
        config.device = device
    if precision is not None:  # bf16 and fp32 compute the same function: a run may switch
        config.precision = precision
    config.validate()
    dataset, info = dataset_for(config, data_dir, vocab=Vocab.from_dict(saved["vocab"]),
                                saved_sources=saved.get("data", {}).get("sources"))
    _check_unchanged(saved.get("data", {}), info)
    trainer = Trainer(config, dataset, out_dir=out_dir if out_dir is not None else folder,
                      callbacks=callbacks, data_info=info)
    trainer.restore(folder)
    done = trainer.progress["epoch"]
    if done >= config.epochs and not trainer.progress["batch_in_epoch"]:
        raise UsageError(f"{folder} already finished {done} epochs; pass a larger --epochs to train further")
    logger.info("resuming %s at epoch %d, step %d", folder, done + 1, trainer.progress["step"])
    return trainer, trainer.fit()


def _check_batch(config: TrainConfig, dataset: TextDataset) -> None:
    need = config.batch_size * config.num_steps + 1
    if len(dataset.train) < need:
        raise DataError(f"the training split has {len(dataset.train):,} tokens, fewer than one batch needs "
                        f"(batch_size * num_steps + 1 = {need:,}); use a smaller --batch-size or --num-steps "
                        "or a larger corpus")


def evaluate_checkpoint(folder, split: str = "val", text_path: str | None = None, data_dir=None,
                        encoding_errors: str = "strict") -> dict:
    """Perplexity of a saved model on a split of its training corpus or on a text file."""
    from rnnlab.data.corpus import read_text_file
    from rnnlab.lm import LanguageModel
    lm = LanguageModel.load(folder)
    if text_path is not None:
        path = Path(text_path)
        if not path.is_file():
            raise DataError(f"--text {text_path}: no such file")
        text = read_text_file(path, encoding_errors)
        result = lm.score(text)
        source = str(path)
    else:
        saved = load_training_config(folder)
        config = TrainConfig.from_dict(saved["train_config"])
        dataset, info = dataset_for(config, data_dir, vocab=lm.vocab,
                                    saved_sources=saved.get("data", {}).get("sources"))
        ids = dataset.part(split)
        if dataset.split == "files":
            _check_unchanged(saved.get("data", {}), info, roles=(f"{split}_",) if split != "train" else ("",),
                             doing="scoring it")
        if len(ids) < 2:
            if dataset.split == "files" and split != "train":
                raise DataError(f"{folder} was trained without a {split} file (--{split}), so there is nothing to "
                                "score; use --text FILE or another --split")
            raise DataError(f"the '{split}' split of {config.corpus or 'the built-in corpus'} has no tokens to score "
                            f"(split {config.split}); use --text FILE or another --split")
        result = lm.score(ids)
        source = f"{dataset.corpus_name}:{split}"
    return {**result, "source": source}


__all__ = ["train", "resume", "evaluate_checkpoint", "dataset_for"]
