"""The tasks the training loop runs: language modelling, many-to-one classification and
many-to-many tagging.

* :mod:`rnnlab.tasks.lm`: the language-model task; :mod:`rnnlab.tasks.lm_run`: its train, resume
  and evaluate entry points (``rnnlab train``, ``rnnlab eval``);
* :mod:`rnnlab.tasks.classify` / :mod:`rnnlab.tasks.tag`: the task definitions (batches, loss, metrics);
* :mod:`rnnlab.tasks.models`: the networks (packed sequences: padding never changes a prediction);
* :mod:`rnnlab.tasks.loop`: the one training loop they share;
* :mod:`rnnlab.tasks.metrics`: accuracy/macro-F1/confusion and conlleval's entity F1;
* :mod:`rnnlab.tasks.base`: vocabularies, batching, checkpoint folders.

Readers of CSV/TSV and CoNLL files are in :mod:`rnnlab.data.labelled`.
"""
