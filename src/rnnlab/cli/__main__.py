"""``python -m rnnlab.cli``: the same as ``python -m rnnlab`` and the ``rnnlab`` command."""
from rnnlab.cli import main

raise SystemExit(main())
