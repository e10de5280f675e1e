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
    ``timemachine`` be found again where training found it.
    """
    corpus = reload_corpus(config.corpus, saved_sources, data_dir=data_dir, encoding_errors=config.encoding_errors)
    dataset = prepare_text(corpus, mode=config.mode, token=config.token, split=config.split,
                           min_freq=config.min_freq, max_tokens=config.max_tokens, vocab=vocab)
    info = {"corpus": corpus.name, "sources": corpus.sources, "sha1": corpus.sha1, **dataset.info}
    return dataset, info


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
           out_dir: str | os.PathLike | None = None, device: str | None = None, data_dir=None,
           callbacks: list[Callback] | tuple = ()) -> tuple[Trainer, dict]:
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
    config.validate()
    dataset, info = dataset_for(config, data_dir, vocab=Vocab.from_dict(saved["vocab"]),
                                saved_sources=saved.get("data", {}).get("sources"))
    old_sha = saved.get("data", {}).get("sha1")
    if old_sha and info.get("sha1") and old_sha != info["sha1"]:
        raise DataError(f"the corpus {info['sources'][0]} changed since the checkpoint was written "
                        f"(SHA-1 {info['sha1']} != {old_sha}); resuming would not continue the same run")
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
        dataset, _ = dataset_for(config, data_dir, vocab=lm.vocab, saved_sources=saved.get("data", {}).get("sources"))
        ids = dataset.part(split)
        if len(ids) < 2:
            raise DataError(f"the '{split}' split of {config.corpus or 'the built-in corpus'} has no tokens to score "
                            f"(split {config.split}); use --text FILE or another --split")
        result = lm.score(ids)
        source = f"{dataset.corpus_name}:{split}"
    return {**result, "source": source}


__all__ = ["train", "resume", "evaluate_checkpoint", "dataset_for"]
