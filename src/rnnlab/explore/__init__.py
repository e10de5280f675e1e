"""``rnnlab explore``: a local web page for looking inside one trained model: a language
model, a classifier or a tagger.

Modules: :mod:`~rnnlab.explore.analysis` (surprisal, hidden units, text features, the
training log: pure functions), :mod:`~rnnlab.explore.session` (the language model loaded
once, one method per API route, the limits), :mod:`~rnnlab.explore.labelling` (the same
for classifier and tagger folders, and :func:`open_explorer`, which picks the explorer
of a folder's kind), :mod:`~rnnlab.explore.server` (HTTP: routing,
request checks, server-sent events) and ``static/`` (the page: plain HTML, CSS and
JavaScript, no build step, nothing fetched from elsewhere).

>>> from rnnlab.explore import Explorer, make_server, serve   # doctest: +SKIP
>>> server = make_server(Explorer("runs/tm"), port=0); print(server.url); serve(server)
>>> server = make_server(open_explorer("runs/ner"), port=0)   # doctest: +SKIP
"""
from rnnlab.explore.labelling import ClassifierExplorer, TaggerExplorer, entity_spans, open_explorer
from rnnlab.explore.server import make_server, serve
from rnnlab.explore.session import Explorer, Limits

__all__ = ["ClassifierExplorer", "Explorer", "Limits", "TaggerExplorer", "entity_spans", "make_server",
           "open_explorer", "serve"]
