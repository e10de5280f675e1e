"""Performance measurements; ``rnnlab bench`` runs them all (:mod:`rnnlab.bench.suite`).

* :mod:`~rnnlab.bench.timing` -- interleaved repetitions, medians, the machine's description;
* :mod:`~rnnlab.bench.steps` -- one training step several ways, its FLOPs and kept memory;
* :mod:`~rnnlab.bench.roofline` -- ``torch.mm`` rates at a step's product shapes;
* :mod:`~rnnlab.bench.memory` -- measured peak and saved-for-backward bytes of a step;
* :mod:`~rnnlab.bench.data` -- corpus encoding and n-gram throughput;
* :mod:`~rnnlab.bench.export_bench` -- PyTorch against ONNX Runtime fp32/int8 (``--only export``);
* ``encode_bench`` / ``ngram_bench`` -- the older stand-alone scripts (``python -m``).

Nothing here is imported by the rest of the library; importing this package is cheap.
"""

SECTIONS = ("rnn", "gru-lstm", "parallel", "roofline", "generate", "memory", "data", "export")
