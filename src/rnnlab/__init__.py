"""rnnlab: recurrent sequence models from the RNN chapter of Dive into Deep Learning.

The public API is re-exported here so notebooks need one import::

    import rnnlab
    corpus = rnnlab.load_corpus("timemachine")
"""
from rnnlab.errors import RnnlabError, UsageError, DataError, CorpusNotFoundError, CheckpointError, TrainingError
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.data.text import preprocess, tokenize, detokenize
from rnnlab.data.vocab import Vocab
from rnnlab.data.encode import encode
from rnnlab.data.batches import BatchIterator, random_batches, sequential_batches
from rnnlab.data.dataset import TextDataset, prepare_text
from rnnlab.models import MODEL_NAMES, build_model
from rnnlab.lm import LanguageModel
from rnnlab.evaluation import evaluate
from rnnlab.training.config import TrainConfig, make_config, PRESETS
from rnnlab.training.loop import Trainer, StopTraining
from rnnlab.tasks.lm import LanguageModelTask, language_model_trainer

load = LanguageModel.load

__version__ = "0.1.0"

__all__ = [
    "RnnlabError", "UsageError", "DataError", "CorpusNotFoundError", "CheckpointError", "TrainingError", "Corpus", "load_corpus", "preprocess", "tokenize", "detokenize",
    "Vocab", "encode", "BatchIterator", "random_batches", "sequential_batches",
    "TextDataset", "prepare_text", "build_model", "MODEL_NAMES", "LanguageModel", "load", "evaluate",
    "TrainConfig", "make_config", "PRESETS", "Trainer", "StopTraining", "LanguageModelTask", "language_model_trainer", "__version__",
]
