"""``rnnlab explore``: a local web page for looking inside one trained language model.

Modules: :mod:`~rnnlab.explore.analysis` (surprisal, hidden units, text features, the
training log: pure functions), :mod:`~rnnlab.explore.session` (the model loaded once,
one method per API route, the limits), :mod:`~rnnlab.explore.server` (HTTP: routing,
request checks, server-sent events) and ``static/`` (the page: plain HTML, CSS and
JavaScript, no build step, nothing fetched from elsewhere).

>>> from rnnlab.explore import Explorer, make_server, serve   # doctest: +SKIP
>>> server = make_server(Explorer("runs/tm"), port=0); print(server.url); serve(server)
"""
from rnnlab.explore.server import make_server, serve
from rnnlab.explore.session import Explorer, Limits

__all__ = ["Explorer", "Limits", "make_server", "serve"]
