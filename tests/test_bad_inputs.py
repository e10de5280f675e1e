"""The bad-input matrix: every row is one command line that must fail with one clear line.

Each row: an id, the arguments (``T`` stands for a tiny training setup on ``fox.txt``),
the exit status (2: usage, 1: data or checkpoint) and a fragment of the ``error:`` line.
Everything runs before any training step, in a workspace holding the files the rows name
(see :func:`workspace`). ``docs/bad_inputs.md`` is generated from :data:`ROWS`::

    python tests/test_bad_inputs.py > docs/bad_inputs.md
"""
from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
from pathlib import Path

import pytest
from test_hostile_checkpoints import edit_config, edit_tensors  # one way to forge a checkpoint

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
T = ("--corpus fox.txt --model gru --hidden 8 --layers 1 --embed 4 --batch-size 4 --num-steps 8 "
     "--sample-length 0 --max-steps 1 --device cpu --precision fp32")

# (id, arguments, exit status, fragment of the message)
ROWS: list[tuple[str, str, int, str]] = [
    # --- train: options
    ("train-model", "train T --model transformer", 2, "unknown model 'transformer'"),
    ("train-preset", "train T --preset d2l-huge", 2, "unknown preset"),
    ("train-hidden-0", "train T --hidden 0", 2, "--hidden must be an integer from 1 to"),
    ("train-layers-0", "train T --layers 0", 2, "--layers must be an integer from 1 to"),
    ("train-embed-neg", "train T --embed -1", 2, "--embed must be an integer from 0"),
    ("train-lr-neg", "train T --lr -1", 2, "lr must be a finite number > 0"),
    ("train-lr-nan", "train T --lr nan", 2, "lr must be a finite number > 0"),
    ("train-lr-inf", "train T --lr inf", 2, "lr must be a finite number > 0"),
    ("train-lr-huge", "train T --lr 1e308", 2, "lr must be a finite number > 0"),
    ("train-dropout-big", "train T --dropout 1.5", 2, "dropout must be in [0, 1)"),
    ("train-dropout-neg", "train T --dropout -0.1", 2, "dropout must be in [0, 1)"),
    ("train-dropout-nan", "train T --dropout nan", 2, "dropout must be in [0, 1)"),
    ("train-epochs-0", "train T --epochs 0", 2, "epochs must be a positive integer"),
    ("train-batch-neg", "train T --batch-size -1", 2, "--batch-size must be an integer from 1 to 1,048,576"),
    ("train-num-steps-0", "train T --num-steps 0", 2, "--num-steps must be an integer from 1 to 16,777,216"),
    ("train-max-steps-0", "train T --max-steps 0", 2, "max-steps must be positive"),
    ("train-max-tokens-0", "train T --max-tokens 0", 2, "max-tokens must be positive"),
    ("train-max-time-nan", "train T --max-time nan", 2, "max-time must be > 0 seconds"),
    ("train-max-time-0", "train T --max-time 0", 2, "max-time must be > 0 seconds"),
    ("train-clip-nan", "train T --clip nan", 2, "clip must be > 0"),
    ("train-clip-0", "train T --clip 0", 2, "clip must be > 0"),
    ("train-wd-neg", "train T --weight-decay -1", 2, "weight-decay must be a finite number >= 0"),
    ("train-wd-nan", "train T --weight-decay nan", 2, "weight-decay must be a finite number >= 0"),
    ("train-optimizer", "train T --optimizer rmsprop", 2, "unknown optimizer"),
    ("train-sampling", "train T --sampling shuffled", 2, "unknown sampling"),
    ("train-bptt", "train T --bptt partial", 2, "unknown BPTT strategy"),
    ("train-bptt-full-random", "train T --bptt full --sampling random", 2, "needs --sampling sequential"),
    ("train-keep-prob-0", "train T --bptt-keep-prob 0", 2, "bptt-keep-prob must be in (0, 1]"),
    ("train-keep-prob-nan", "train T --bptt-keep-prob nan", 2, "bptt-keep-prob must be in (0, 1]"),
    ("train-full-mb-neg", "train T --full-bptt-max-mb -1", 2, "full-bptt-max-mb must be a finite number > 0"),
    ("train-full-mb-nan", "train T --full-bptt-max-mb nan", 2, "full-bptt-max-mb must be a finite number > 0"),
    ("train-lr-schedule", "train T --lr-schedule step", 2, "unknown lr schedule"),
    ("train-lr-decay-2", "train T --lr-decay 2", 2, "lr-decay must be in (0, 1)"),
    ("train-lr-decay-nan", "train T --lr-decay nan", 2, "lr-decay must be in (0, 1)"),
    ("train-lr-patience-0", "train T --lr-patience 0", 2, "lr-patience must be a positive integer"),
    ("train-early-stop-neg", "train T --early-stop -1", 2, "early-stop must be positive"),
    ("train-eval-every-0", "train T --eval-every 0", 2, "eval-every must be a positive integer"),
    ("train-eval-steps-0", "train T --eval-every-steps 0", 2, "eval-every-steps must be positive"),
    ("train-sample-length-neg", "train T --sample-length -1", 2, "--sample-length must be an integer from 0 to"),
    ("train-seed-neg", "train T --seed -1", 2, "--seed must be an integer from 0"),
    ("train-nonlinearity", "train T --model rnn --nonlinearity sigmoid", 2, "nonlinearity must be one of tanh, relu"),
    ("train-nonlinearity-lstm", "train T --model lstm --nonlinearity relu", 2, "applies to --model rnn only"),
    ("train-tie-weights", "train T --tie-weights --embed 0", 2, "weight tying needs embed_size == hidden_size"),
    ("train-size-unknown", "train T --size huge", 2, "unknown size 'huge'"),
    ("train-size-rnn", "train T --model rnn --size large", 2, "--size applies to --model lstm, gru, mingru, minlstm"),
    ("train-adam-beta2", "train T --adam-beta2 1", 2, "adam-beta2 must be in [0, 1), got 1.0"),
    ("classify-adam-beta2-nan", "classify train --data C --out c-beta --adam-beta2 nan", 2, "adam-beta2 must be in [0, 1)"),
    ("train-mingru-mlp-neg", "train T --model mingru --mlp-ratio -1", 2, "--mlp-ratio must be in [0, 64]"),
    ("train-device", "train T --device tpu", 2, "unknown device 'tpu'"),
    ("train-precision", "train T --precision fp8", 2, "unknown precision 'fp8'"),
    ("train-threads-0", "--threads 0 train T", 2, "--threads must be an integer from 1 to 4096"),
    # --- train: data
    ("train-split-two", "train T --split 0.5,0.5", 2, "split fractions must be three"),
    ("train-split-word", "train T --split abc", 2, "--split must be 'd2l' or three fractions"),
    ("train-split-over-1", "train T --split 0.9,0.2,0.1", 2, "summing to <= 1"),
    ("train-val-with-split", "train T --val fox.txt --split 0.5,0.25,0.25", 2, "cannot be combined with --split"),
    ("train-val-missing", "train T --val missing.txt", 1, "--val missing.txt: no such file"),
    ("train-corpus-empty-arg", "train T --corpus ''", 2, "--corpus is empty"),
    ("train-corpus-missing", "train T --corpus missing.txt", 1, "is neither a file, a folder, a glob"),
    ("train-corpus-glob-none", "train T --corpus 'nothing/*.txt'", 1, "no files match the pattern"),
    ("train-corpus-empty-file", "train T --corpus empty.txt", 1, "is empty"),
    ("train-corpus-not-utf8", "train T --corpus bad.bin", 1, "is not valid UTF-8: byte 0xff"),
    ("train-encoding-errors", "train T --encoding-errors lenient", 2, "unknown --encoding-errors"),
    ("train-token", "train T --token sentence", 2, "unknown tokenizer 'sentence'"),
    ("train-mode", "train T --mode lower", 2, "unknown mode 'lower'"),
    ("train-min-freq-neg", "train T --min-freq -1", 2, "--min-freq must be >= 0"),
    ("train-min-freq-all", "train T --min-freq 100000", 1, "the vocabulary has only <unk>"),
    ("train-corpus-short", "train T --corpus short.txt", 1, "batch_size * num_steps + 1"),
    # --- train: output folder
    ("train-out-foreign", "train T --out mine", 2, "is not empty and is not an rnnlab output folder"),
    ("train-out-foreign-overwrite", "train T --out mine --overwrite", 2, "not an rnnlab output folder"),
    ("train-out-existing-run", "train T --out lm", 2, "already holds an rnnlab language-model run"),
    ("train-out-ngram", "train T --out ng --overwrite", 2, "holds an rnnlab n-gram model, not an rnnlab language-model"),
    ("train-out-file", "train T --out fox.txt", 2, "is a file, not a folder"),
    ("train-out-under-file", "train T --out fox.txt/run", 2, "cannot create the folder"),
    # --- train --resume
    ("resume-fixed-option", "train --resume lm --hidden 8", 2, "--resume continues the saved configuration"),
    ("resume-preset", "train --resume lm --preset d2l-concise", 2, "(got --preset)"),
    ("resume-missing", "train --resume missing", 1, "is not a folder"),
    ("resume-not-checkpoint", "train --resume mine", 1, "not an rnnlab checkpoint"),
    ("resume-ngram", "train --resume ng", 1, "holds a 'ngram' model"),
    ("resume-epochs-0", "train --resume lm --epochs 0", 2, "epochs must be a positive integer"),
    ("resume-max-steps-done", "train --resume lm --max-steps 1", 2, "is not above the 1 steps"),
    ("resume-other-corpus", "train --resume lm --max-steps 5 --corpus other.txt", 1,
     "is not a copy of the training corpus"),
    ("resume-out-existing", "train --resume lm --max-steps 5 --out ng", 2, "holds an rnnlab n-gram model"),
    ("resume-out-foreign", "train --resume lm --max-steps 5 --out mine", 2, "not an rnnlab output folder"),
    # --- demo
    ("demo-seconds-0", "demo --seconds 0 --out d", 2, "max-time must be > 0 seconds"),
    ("demo-seconds-nan", "demo --seconds nan --out d", 2, "max-time must be > 0 seconds"),
    ("demo-eval-steps-neg", "demo --eval-every-steps -1 --out d", 2, "eval-every-steps must be positive"),
    ("demo-seed-neg", "demo --seed -1 --out d", 2, "--seed must be an integer from 0"),
    ("demo-out-foreign", "demo --seconds 1 --out mine", 2, "not an rnnlab output folder"),
    ("demo-out-existing", "demo --seconds 1 --out lm", 2, "already holds an rnnlab language-model run"),
    # --- eval
    ("eval-missing", "eval missing", 1, "is not a folder"),
    ("eval-file", "eval fox.txt", 1, "is not a folder"),
    ("eval-not-checkpoint", "eval mine", 1, "not an rnnlab checkpoint"),
    ("eval-ngram", "eval ng", 1, "holds a 'ngram' model, not a 'language-model' model"),
    ("eval-split", "eval lm --split dev", 2, "unknown split 'dev'"),
    ("eval-text-missing", "eval lm --text missing.txt", 1, "--text missing.txt: no such file"),
    ("eval-text-not-utf8", "eval lm --text bad.bin", 1, "is not valid UTF-8"),
    ("eval-other-corpus", "eval lm --corpus other.txt", 1, "is not a copy of the training corpus"),
    ("eval-tampered", "eval tampered", 1, "does not match the checksum"),
    # --- score
    ("score-text-missing", "score lm --text missing.txt", 1, "--text missing.txt: no such file"),
    ("score-text-empty", "score lm --text empty.txt", 1, "is empty: nothing to score"),
    ("score-text-not-utf8", "score lm --text bad.bin", 1, "is not valid UTF-8: byte 0xff"),
    ("score-unknown-words", "score ng --text unknown.txt", 1, "is unknown to the model's vocabulary"),
    ("score-one-token", "score ng --text oneword.txt", 1, "scoring needs at least 2"),
    ("score-not-checkpoint", "score mine --text fox.txt", 1, "not an rnnlab checkpoint"),
    ("score-no-text", "score lm", 2, "the following arguments are required: --text"),
    ("score-top-0", "score lm --text fox.txt --per-token --top 0", 2, "top must be an integer from 1"),
    # --- export
    ("export-format", "export lm --format tflite --out m.tflite", 2, "invalid choice: 'tflite'"),
    ("export-int8-gru-onnx", "export lm --format onnx --quantize int8 --out m.onnx", 2,
     "has no int8 GRU operator"),
    ("export-out-exists", "export lm --format onnx --out fox.txt", 2, "already exists; pass --overwrite"),
    ("export-out-folder", "export lm --format torchscript --out mine", 2, "is a folder; give a file name"),
    ("export-ngram", "export ng --format onnx --out m.onnx", 1, "holds a 'ngram' model, not a 'language-model'"),
    # --- generate
    ("generate-missing", "generate missing", 1, "is not a folder"),
    ("generate-length-neg", "generate lm --length -1", 2, "length must be >= 0"),
    ("generate-temperature-0", "generate lm --temperature 0", 2, "temperature must be > 0"),
    ("generate-temperature-neg", "generate lm --temperature -1", 2, "temperature must be > 0"),
    ("generate-temperature-nan", "generate lm --temperature nan", 2, "temperature must be > 0"),
    ("generate-top-k-neg", "generate lm --top-k -1", 2, "top_k must be >= 0"),
    ("generate-top-p-0", "generate lm --top-p 0", 2, "top_p must be in (0, 1]"),
    ("generate-top-p-big", "generate lm --top-p 1.5", 2, "top_p must be in (0, 1]"),
    ("generate-top-p-nan", "generate lm --top-p nan", 2, "top_p must be in (0, 1]"),
    ("generate-num-samples-0", "generate lm --num-samples 0", 2, "--num-samples must be >= 1"),
    ("generate-num-samples-neg", "generate lm --num-samples -1", 2, "--num-samples must be >= 1"),
    ("generate-seed-neg", "generate lm --seed -1", 2, "--seed must be an integer from 0"),
    ("generate-device", "generate lm --device tpu", 2, "unknown device 'tpu'"),
    ("generate-empty-prefix", "generate lm --prefix ''", 2, "has no char tokens"),
    # --- generation (issue 20)
    ("generate-prefix-file-missing", "generate lm --prefix-file missing.txt", 1,
     "--prefix-file missing.txt: no such file"),
    ("generate-prefix-file-folder", "generate lm --prefix-file special/folder.txt", 1,
     "--prefix-file special/folder.txt is a folder, not a file"),
    ("generate-prefix-file-fifo", "generate lm --prefix-file special/fifo.txt", 1,
     "--prefix-file special/fifo.txt is a FIFO (named pipe), not a regular file"),
    ("generate-prefix-file-empty", "generate lm --prefix-file empty.txt", 1,
     "--prefix-file empty.txt holds no prompt"),
    ("generate-prefix-file-lines-empty", "generate lm --prefix-file empty.txt --prompts-per-line", 1,
     "--prefix-file empty.txt holds no prompt"),
    ("generate-prefix-file-not-utf8", "generate lm --prefix-file bad.bin", 1,
     "--prefix-file bad.bin is not valid UTF-8 (byte 0xff at offset 0)"),
    ("generate-prefix-file-no-name", "generate lm --prefix-file ''", 2, "--prefix-file needs a file name"),
    ("generate-prefix-and-file", "generate lm --prefix the --prefix-file fox.txt", 2,
     "give --prefix or --prefix-file, not both"),
    ("generate-prompts-per-line-alone", "generate lm --prompts-per-line", 2,
     "--prompts-per-line reads --prefix-file FILE"),
    ("generate-prompts-empty-one", "generate lm --prefix the --prefix ''", 2, "has no char tokens"),
    ("generate-beam-0", "generate lm --beam 0", 2, "--beam must be an integer from 1 to 10,000, got 0"),
    ("generate-beam-neg", "generate lm --beam -3", 2, "--beam must be an integer from 1 to 10,000, got -3"),
    ("generate-beam-huge", "generate lm --beam 100000", 2, "--beam must be an integer from 1 to 10,000"),
    ("generate-beam-num-samples", "generate lm --beam 2 --num-samples 3", 2, "--beam finds one text per prompt"),
    ("generate-beam-temperature", "generate lm --beam 2 --temperature 0.5", 2,
     "--beam searches, it does not sample"),
    ("generate-beam-greedy", "generate lm --beam 2 --greedy", 2, "--beam searches, it does not sample"),
    ("generate-beam-seed", "generate lm --beam 2 --seed 1", 2, "--beam searches, it does not sample"),
    ("generate-penalty-without-beam", "generate lm --length-penalty 0.5", 2,
     "--length-penalty steers beam search; add --beam N"),
    ("generate-penalty-neg", "generate lm --beam 2 --length-penalty -1", 2,
     "--length-penalty must be a finite number >= 0"),
    ("generate-penalty-nan", "generate lm --beam 2 --length-penalty nan", 2,
     "--length-penalty must be a finite number >= 0"),
    ("generate-penalty-inf", "generate lm --beam 2 --length-penalty inf", 2,
     "--length-penalty must be a finite number >= 0"),
    ("generate-stop-unknown", "generate lm --beam 2 --stop zz", 2,
     "--stop 'zz' is not one token of the model's vocabulary"),
    ("generate-stop-empty", "generate lm --beam 2 --stop ''", 2, "--stop '' is not one token"),
    ("generate-stop-unk", "generate lm --beam 2 --stop '<unk>'", 2, "--stop '<unk>' is not one token"),
    ("generate-sampling-stop-unknown", "generate lm --stop zz", 2,
     "--stop 'zz' is not one token of the model's vocabulary"),
    ("generate-batch-stop-unk", "generate lm --num-samples 2 --stop '<unk>'", 2, "--stop '<unk>' is not one token"),
    # --- explore (every row fails before the server listens)
    ("explore-missing", "explore missing", 1, "is not a folder"),
    ("explore-file", "explore fox.txt", 1, "is not a folder"),
    ("explore-not-checkpoint", "explore mine", 1, "not an rnnlab checkpoint"),
    ("explore-ngram-folder", "explore ng", 1, "holds a 'ngram' model, not a 'language-model' model"),
    ("explore-tampered", "explore tampered", 1, "does not match the checksum"),
    ("explore-weights-nan", "explore h-nan", 1, "tensor 'output.weight' holds NaN or infinite values"),
    ("explore-port-neg", "explore lm --port -1", 2, "--port must be an integer from 1 to 65535"),
    ("explore-port-big", "explore lm --port 70000", 2, "--port must be an integer from 1 to 65535"),
    ("explore-port-text", "explore lm --port http", 2, "argument --port: invalid int value: 'http'"),
    ("explore-host-empty", "explore lm --host ''", 2, "--host is empty"),
    ("explore-ngram-missing", "explore lm --ngram missing", 1, "is not a folder"),
    ("explore-ngram-not-ngram", "explore lm --ngram lm", 1, "holds a 'language-model' model, not a 'ngram' model"),
    ("explore-ngram-other-tokens", "explore lm --ngram ng", 2, "the n-gram model reads word tokens in d2l mode"),
    # --- corpus stats
    ("stats-top-neg", "corpus stats --corpus fox.txt --top -1", 2, "--top must be >= 0"),
    ("stats-corpus-missing", "corpus stats --corpus missing.txt", 1, "is neither a file, a folder, a glob"),
    ("stats-not-utf8", "corpus stats --corpus bad.bin", 1, "is not valid UTF-8"),
    ("stats-token", "corpus stats --corpus fox.txt --token sentence", 2, "unknown tokenizer"),
    ("stats-plot-exists", "corpus stats --corpus fox.txt --plot exists.png", 2,
     "--plot exists.png already exists; pass --overwrite"),
    ("stats-plot-format", "corpus stats --corpus fox.txt --plot zipf.xyz", 2, "unknown figure format '.xyz'"),
    ("stats-plot-folder", "corpus stats --corpus fox.txt --plot mine", 2, "is a folder; give a file name"),
    ("stats-plot-under-file", "corpus stats --corpus fox.txt --plot fox.txt/zipf.png", 2, "cannot create the folder"),
    # --- artifact folders (issue 18): prepared corpora and checkpoints whose manifest names files it should not
    # (p-* and h-link/h-files-*: see make_artifact_folders)
    ("art-shard-absolute", "train T --corpus p-absolute", 1,
     "p-absolute/manifest.json: key 'splits.val.shards[0].file' is an absolute path"),
    ("art-shard-dotdot", "train T --corpus p-dotdot", 1, "must be a relative path inside the folder (no '..'"),
    ("art-shard-symlink", "train T --corpus p-symlink", 1, "names 'val-00000.bin', a symbolic link leading outside"),
    ("art-shard-fifo", "train T --corpus p-fifo", 1, "'splits.val.shards[0].file') is a FIFO (named pipe)"),
    ("art-shard-missing", "train T --corpus p-missing", 1, "key 'splits.test.shards[0].file') is missing"),
    ("art-shard-swapped", "train T --corpus p-swapped", 1, "val-00000.bin does not match the checksum in manifest.json"),
    ("art-shard-flipped", "train T --corpus p-flipped", 1, "train-00000.bin does not match the checksum"),
    ("art-shard-resized", "train T --corpus p-resized", 1, "train-00000.bin does not match the checksum"),
    ("art-shard-truncated", "train T --corpus p-truncated", 1, "bytes, the manifest says"),
    ("art-shard-file-type", "train T --corpus p-file-type", 1, "key 'splits.train.shards[0].file' must be a non-empty"),
    ("art-shard-sha-type", "train T --corpus p-sha-type", 1, "key 'splits.train.shards[0].sha256' must be a SHA-256"),
    ("art-shard-bytes", "train T --corpus p-bytes", 1, "key 'splits.train.shards[0].bytes' is"),
    ("art-dtype", "train T --corpus p-dtype", 1, "p-dtype/manifest.json: key 'dtype' must name an unsigned integer"),
    ("art-ngram-swapped", "ngram train --corpus p-swapped --out ng-swapped", 1,
     "val-00000.bin does not match the checksum"),
    ("art-stats-symlink", "corpus stats --corpus p-symlink --mode raw", 1, "a symbolic link leading outside"),
    ("art-verify-swapped", "corpus verify p-swapped", 1, "val-00000.bin does not match the checksum"),
    ("art-verify-flipped", "corpus verify p-flipped", 1, "train-00000.bin does not match the checksum"),
    ("art-verify-dotdot", "corpus verify p-dotdot", 1, "must be a relative path inside the folder"),
    ("art-verify-not-corpus", "corpus verify mine", 1, "mine is not a prepared corpus (no manifest.json)"),
    ("art-verify-file", "corpus verify fox.txt", 1, "fox.txt is not a folder; expected a prepared corpus folder"),
    ("art-verify-missing", "corpus verify nowhere", 1, "nowhere is missing; expected a prepared corpus folder"),
    ("art-checkpoint-symlink", "eval h-link-out", 1, "names 'model.safetensors', a symbolic link leading outside"),
    ("art-resume-symlink", "train --resume h-link-out --max-steps 5", 1, "a symbolic link leading outside"),
    ("art-files-escape", "eval h-files-escape", 1, "key 'files' names '../x.safetensors', which must be a relative"),
    ("art-files-digest", "generate h-files-digest", 1, "key 'files.model.safetensors' must be a SHA-256"),
    ("art-files-type", "eval h-files-type", 1, "key 'files' must be a JSON object"),
    # --- ngram
    ("ngram-no-out", "ngram train --corpus fox.txt", 2, "the following arguments are required: --out"),
    ("ngram-order-0", "ngram train --corpus fox.txt --order 0 --out o", 2, "n-gram order must be an integer from 1"),
    ("ngram-order-huge", "ngram train --corpus fox.txt --order 1000 --out o", 2,
     "n-gram order must be an integer from 1 to 64"),
    ("ngram-smoothing", "ngram train --corpus fox.txt --smoothing wb --out o", 2, "unknown smoothing 'wb'"),
    ("ngram-k-neg", "ngram train --corpus fox.txt --smoothing addk --k -1 --out o", 2, "add-k needs k > 0"),
    ("ngram-k-nan", "ngram train --corpus fox.txt --smoothing addk --k nan --out o", 2, "add-k needs k > 0"),
    ("ngram-k-inf", "ngram train --corpus fox.txt --smoothing addk --k inf --out o", 2, "add-k needs k > 0"),
    ("ngram-corpus-missing", "ngram train --corpus missing.txt --out o", 1, "is neither a file, a folder, a glob"),
    ("ngram-out-existing", "ngram train --corpus fox.txt --out ng", 2, "already holds an rnnlab n-gram model"),
    ("ngram-out-lm", "ngram train --corpus fox.txt --out lm --overwrite", 2, "holds an rnnlab language-model run"),
    ("ngram-out-foreign", "ngram train --corpus fox.txt --out mine", 2, "not an rnnlab output folder"),
    ("ngram-arpa-exists", "ngram train --corpus fox.txt --out o --arpa exists.arpa", 2,
     "--arpa exists.arpa already exists"),
    ("ngram-eval-missing", "ngram eval missing", 1, "is not a folder"),
    ("ngram-eval-lm", "ngram eval lm", 1, "holds a 'language-model' model, not a 'ngram' model"),
    ("ngram-eval-arpa", "ngram eval exists.arpa", 1, "is an ARPA file; import it first"),
    ("ngram-eval-split", "ngram eval ng --split dev", 2, "unknown split 'dev'"),
    ("ngram-eval-text-missing", "ngram eval ng --text missing.txt", 1, "--text missing.txt: no such file"),
    ("ngram-generate-length-neg", "ngram generate ng --length -1", 2, "length must be >= 0"),
    ("ngram-generate-temperature-0", "ngram generate ng --temperature 0", 2, "temperature must be > 0"),
    ("ngram-generate-temperature-inf", "ngram generate ng --temperature inf", 2, "temperature must be > 0"),
    ("ngram-generate-seed-neg", "ngram generate ng --seed -1", 2, "--seed must be an integer from 0"),
    ("ngram-export-addk", "ngram export ngk k.arpa", 2, "add-k smoothing is not a backoff model"),
    ("ngram-export-exists", "ngram export ng exists.arpa", 2, "export file exists.arpa already exists"),
    ("ngram-export-missing", "ngram export missing x.arpa", 1, "is not a folder"),
    ("ngram-import-missing", "ngram import missing.arpa --out i", 1, "cannot read ARPA file missing.arpa"),
    ("ngram-import-text", "ngram import fox.txt --out i", 1, "is not an ARPA file"),
    ("ngram-import-not-utf8", "ngram import bad.bin --out i", 1, "bad.bin:1: not valid UTF-8"),
    ("ngram-import-positive", "ngram import positive.arpa --out i", 1, "positive.arpa:6: log10 probability 0.5"),
    ("ngram-import-nan", "ngram import nan.arpa --out i", 1, "nan.arpa:7: log10 probability nan"),
    ("ngram-import-inf", "ngram import inf.arpa --out i", 1, "inf.arpa:7: log10 probability -inf"),
    ("ngram-import-bow-nan", "ngram import nanbow.arpa --out i", 1, "log10 backoff weight nan"),
    ("ngram-import-truncated", "ngram import truncated.arpa --out i", 1, "header says 3 1-grams, found 1"),
    ("ngram-import-out-existing", "ngram import ok.arpa --out ng", 2, "already holds an rnnlab n-gram model"),
    # --- forecast
    ("forecast-tau-0", "forecast --tau 0", 2, "tau must be an integer >= 1"),
    ("forecast-horizon-0", "forecast --horizon 0", 2, "horizon must be >= 1"),
    ("forecast-horizon-long", "forecast --horizon 100000", 1, "too short for a window"),
    ("forecast-epochs-0", "forecast --epochs 0", 2, "epochs must be >= 1"),
    ("forecast-lr-nan", "forecast --lr nan", 2, "lr must be > 0"),
    ("forecast-batch-0", "forecast --batch-size 0", 2, "batch-size must be >= 1"),
    ("forecast-hidden-0", "forecast --hidden 0", 2, "hidden must be >= 1"),
    ("forecast-model", "forecast --model arima", 2, "unknown forecaster 'arima'"),
    ("forecast-n-train-0", "forecast --n-train 0", 2, "n-train must be >= 1"),
    ("forecast-train-horizon-0", "forecast --train-horizon 0", 2, "train-horizon must be >= 1"),
    ("forecast-context-0", "forecast --model rnn --context 0", 2, "context must be >= 1"),
    ("forecast-stride-0", "forecast --stride 0", 2, "stride must be >= 1"),
    ("forecast-stride-neg", "forecast --stride -1", 2, "stride must be >= 1"),
    ("forecast-season-neg", "forecast --season -1", 2, "season must be >= 1"),
    ("forecast-season-0", "forecast --season 0", 2, "season must be >= 1"),
    ("forecast-fill", "forecast --fill zero", 2, "unknown --fill 'zero'"),
    ("forecast-seed-neg", "forecast --seed -1", 2, "--seed must be an integer from 0"),
    ("forecast-series-missing", "forecast --series missing.csv", 1, "is neither a file nor a known name"),
    ("forecast-series-gaps", "forecast --series gaps.txt", 1, "missing or non-numeric value at row 3"),
    ("forecast-plot-exists", "forecast --plot exists.png", 2, "--plot exists.png already exists"),
    ("forecast-out-foreign", "forecast --out mine", 2, "not an rnnlab output folder"),
    ("forecast-out-ngram", "forecast --out ng", 2, "holds an rnnlab n-gram model, not an rnnlab forecaster"),
    # --- hostile checkpoint folders: copies of lm/ng with one value edited (see HOSTILE), checksums recomputed
    ("hostile-config-bytes", "eval h-bytes", 1, "h-bytes/config.json is unreadable"),
    ("hostile-missing-key", "eval h-no-model", 1, "h-no-model/config.json: key 'model.model' is missing"),
    ("hostile-hidden-type", "eval h-hidden", 1, "config.json: key 'model.hidden_size' must be an integer from 1"),
    ("hostile-layers-huge", "generate h-layers", 1, "key 'model.num_layers' must be an integer from 1 to 1024"),
    ("hostile-vocab-size", "generate h-vocab-size", 1, "key 'model.vocab_size' is 3, but the vocabulary has"),
    ("hostile-vocab", "generate h-vocab", 1, "key 'vocab' is not a valid vocabulary"),
    ("hostile-token", "generate h-token", 1, "key 'preprocessing.token' must be one of"),
    ("hostile-progress", "eval h-progress", 1, "key 'progress.step' must be an integer >= 0"),
    ("hostile-history", "eval h-history", 1, "key 'progress.history[0]' must be an evaluation record"),
    ("hostile-train-config", "train --resume h-train-config --max-steps 5", 1,
     "key 'train_config.hidden_size' is 16, but the model has hidden_size 8"),
    ("hostile-weights-shape", "eval h-shape", 1, "tensor 'output.weight' is float32 [3, 3], but the model"),
    ("hostile-weights-dtype", "generate h-dtype", 1, "tensor 'output.weight' is float64"),
    ("hostile-weights-missing", "eval h-no-tensor", 1, "lacks tensor 'output.weight'"),
    ("hostile-weights-nan", "generate h-nan", 1, "tensor 'output.weight' holds NaN or infinite values"),
    ("hostile-not-safetensors", "eval h-not-safetensors", 1, "is not a valid safetensors file"),
    ("hostile-optimizer-shape", "train --resume h-optimizer --max-steps 5", 1,
     "tensor '0.exp_avg' is float32 [2, 2], but parameter 0 of the model needs"),
    ("hostile-optimizer-betas", "train --resume h-betas --max-steps 5", 1,
     "key 'optimizer.param_groups[0].betas' must be like"),
    ("hostile-rng", "train --resume h-rng --max-steps 5", 1, "tensor 'torch_rng' is uint8 [3]"),
    ("hostile-sample-length", "train --resume h-sample-length --max-steps 5", 1,
     "key 'train_config.sample_length' must be at most 1,000,000"),
    ("hostile-corpus-outside", "eval h-outside", 1, "records its training corpus at"),
    ("hostile-resume-outside", "train --resume h-outside --max-steps 5", 1, "outside the current folder"),
    ("hostile-corpus-escape", "eval h-escape", 1, "names its training corpus '../elsewhere/secret.txt', outside"),
    ("hostile-ngram-order", "ngram eval h-ng-order", 1, "key 'model.order' must be an integer from 1 to 64"),
    ("hostile-ngram-keys", "ngram generate h-ng-keys", 1, "tensor 'keys.2' must be strictly increasing"),
    ("hostile-ngram-logp", "ngram export h-ng-logp out.arpa", 1, "tensor 'logp.1' must be float64"),
    ("hostile-ngram-outside", "ngram eval h-ng-outside --split test", 1, "records its training corpus at"),
    # --- special files (special/: a FIFO, a socket, symlink loops; see workspace): refused before any read
    ("special-corpus-fifo", "train T --corpus special/fifo.txt", 1,
     "corpus special/fifo.txt is a FIFO (named pipe), not a regular file"),
    ("special-corpus-socket", "train T --corpus special/sock.txt", 1, "is a socket, not a regular file"),
    ("special-corpus-device", "train T --corpus /dev/null", 1, "corpus /dev/null is a character device"),
    ("special-corpus-folder-fifo", "train T --corpus special/mixed", 1,
     "special/mixed/b.txt (in the corpus folder special/mixed) is a FIFO"),
    ("special-corpus-glob-fifo", "train T --corpus 'special/mixed/*.txt'", 1,
     "special/mixed/b.txt (matched by 'special/mixed/*.txt') is a FIFO"),
    ("special-corpus-split-fifo", "train T --corpus special/split", 1,
     "special/split/valid.txt (in the corpus folder special/split) is a FIFO"),
    ("special-val-fifo", "train T --val special/fifo.txt", 1, "--val special/fifo.txt is a FIFO (named pipe)"),
    ("special-test-device", "train T --test /dev/zero", 1, "--test /dev/zero is a character device"),
    ("special-corpus-symlink-loop", "train T --corpus special/loop.txt", 1, "is a symbolic link to nothing"),
    ("special-corpus-dangling", "train T --corpus special/dangling.txt", 1, "is a symbolic link to nothing"),
    ("special-corpus-folder-named-txt", "train T --corpus special/folder.txt", 1, "has no text files"),
    ("special-val-folder", "train T --val special/folder.txt", 1, "--val special/folder.txt: is a folder"),
    ("special-eval-corpus-fifo", "eval lm --corpus special/fifo.txt", 1, "is a FIFO (named pipe)"),
    ("special-eval-text-fifo", "eval lm --text special/fifo.txt", 1, "--text special/fifo.txt"),
    ("special-eval-text-device", "eval lm --text /dev/zero", 1, "--text /dev/zero"),
    ("special-eval-text-folder", "eval lm --text special/folder.txt", 1, "--text special/folder.txt"),
    ("special-eval-fifo", "eval special/fifo.txt", 1, "is not a folder; expected an rnnlab checkpoint folder"),
    ("special-eval-device", "eval /dev/null", 1, "is not a folder; expected an rnnlab checkpoint folder"),
    ("special-ngram-train-fifo", "ngram train --corpus special/fifo.txt --out ng-fifo", 1, "is a FIFO (named pipe)"),
    ("special-ngram-import-folder", "ngram import special/folder.txt --out ng-dir", 1, "cannot read ARPA file"),
    ("special-ngram-import-loop", "ngram import special/loop.txt --out ng-loop", 1,
     "Too many levels of symbolic links"),
    ("special-ngram-eval-text-fifo", "ngram eval ng --text special/fifo.txt", 1, "--text special/fifo.txt"),
    ("special-forecast-fifo", "forecast --series special/fifo.txt", 1, "is a FIFO (named pipe)"),
    ("special-forecast-folder", "forecast --series special/folder.txt", 1, "special/folder.txt is a folder, not a file"),
    ("special-ngram-import-fifo", "ngram import special/fifo.txt --out ng-fifo2", 1, "ARPA file special/fifo.txt is a FIFO"),
    ("special-classify-fifo", "classify train --data special/fifo.txt --out c-fifo", 1, "special/fifo.txt"),
    ("special-classify-folder", "classify train --data special/folder.txt --out c-dir", 1, "special/folder.txt"),
    ("special-tag-fifo", "tag train --data special/fifo.txt --out t-fifo", 1, "special/fifo.txt"),
    ("special-stats-fifo", "corpus stats --corpus special/fifo.txt", 1, "is a FIFO (named pipe)"),
    ("special-stats-device", "corpus stats --corpus /dev/zero", 1, "corpus /dev/zero is a character device"),
    # --- hostile holes (issue 18): task folders (cls, tgr: a trained classifier and tagger; h-cls-*, h-tgr-*:
    # copies with one value of config.json edited, best/ too), resumed task runs, --max-len, --split, bounds
    ("hole-tagger-hidden-nan", "tag predict h-tgr-nan 'a b'", 1,
     "config.json: key 'model.hidden_size' must be an integer from 1 to 1048576, got NaN"),
    ("hole-tagger-hidden-str", "tag predict h-tgr-str 'a b'", 1, "key 'model.hidden_size' must be an integer from 1"),
    ("hole-tagger-hidden-neg", "tag predict h-tgr-neg 'a b'", 1, "key 'model.hidden_size' must be an integer from 1"),
    ("hole-tagger-hidden-float", "tag predict h-tgr-float 'a b'", 1, "key 'model.hidden_size' must be an integer"),
    ("hole-tagger-layers-bool", "tag predict h-tgr-bool 'a b'", 1, "key 'model.num_layers' must be an integer from 1"),
    ("hole-tagger-lowercase-str", "tag eval h-tgr-lower --data tags.conll", 1,
     "key 'task.lowercase' must be true or false, got \"false\""),
    ("hole-tagger-duplicate-tags", "tag predict h-tgr-tags 'a b'", 1, "key 'task.tags' lists 'O' twice"),
    ("hole-tagger-duplicate-chars", "tag predict h-tgr-chars 'a b'", 1, "key 'task.chars' lists 'a' twice"),
    ("hole-tagger-unk-replace-nan", "tag predict h-tgr-unk 'a b'", 1,
     "key 'task.unk_replace' must be a number from 0 to 1, got NaN"),
    ("hole-tagger-singletons-str", "tag predict h-tgr-single 'a b'", 1, "key 'task.singletons' must be a list"),
    ("hole-tagger-crf-str", "tag predict h-tgr-crf 'a b'", 1, "key 'model.crf' must be True or False"),
    ("hole-tagger-num-tags", "tag predict h-tgr-num-tags 'a b'", 1, "key 'model.num_tags' is 5, but task.tags has"),
    ("hole-classifier-hidden-nan", "classify predict h-cls-nan 'a b'", 1,
     "key 'model.hidden_size' must be an integer from 1 to 1048576, got NaN"),
    ("hole-classifier-bidirectional-str", "classify predict h-cls-bidir 'a b'", 1,
     "key 'model.bidirectional' must be True or False, got \"yes\""),
    ("hole-classifier-lowercase-str", "classify predict h-cls-lower 'a b'", 1,
     "key 'task.lowercase' must be true or false, got \"false\""),
    ("hole-classifier-duplicate-labels", "classify predict h-cls-labels 'a b'", 1,
     "key 'task.labels' lists 'neg' twice; every label must be distinct"),
    ("hole-classifier-one-label", "classify eval h-cls-one --data labels.csv", 1,
     "key 'task.labels' must be a list of at least 2 strings"),
    ("hole-classifier-task-number", "classify predict h-cls-task 'a b'", 1, "key 'task' must be a JSON object, got 5"),
    ("hole-classifier-cell", "classify predict h-cls-cell 'a b'", 1, "key 'model.cell' must be one of rnn, gru, lstm"),
    ("hole-classifier-extra-key", "classify predict h-cls-extra 'a b'", 1,
     "key 'model.colour' is not an option of the classifier"),
    ("hole-classifier-vocab-no-pad", "classify predict h-cls-vocab 'a b'", 1,
     "key 'task.vocab' must be a list of strings starting with '<pad>', '<unk>'"),
    ("hole-classifier-weights-nan", "classify predict h-cls-weights 'a b'", 1,
     "tensor 'output.weight' holds NaN or infinite values"),
    ("hole-classifier-resume-batch-huge", "classify train --data labels.csv --resume h-cls-batch --epochs 5", 1,
     "key 'train_config' is not valid (--batch-size must be an integer from 1 to 1,048,576"),
    ("hole-classifier-resume-data-record", "classify train --data labels.csv --resume h-cls-sha --epochs 5", 1,
     "key 'data.train_sha1' must be a string or null, got 123"),
    ("hole-classify-resume-hidden", "classify train --data labels.csv --resume cls --epochs 5 --hidden-size 16", 2,
     "--resume continues the saved run: --hidden-size 16 differs from it (4 there)"),
    ("hole-classify-resume-unidirectional", "classify train --data labels.csv --resume cls --epochs 5 --unidirectional",
     2, "--unidirectional differs from it (it was not given there)"),
    ("hole-classify-resume-lr", "classify train --data labels.csv --resume cls --epochs 5 --lr 0.1", 2,
     "--lr 0.1 differs from it (0.002 there)"),
    ("hole-classify-resume-pooling", "classify train --data labels.csv --resume cls --epochs 5 --pooling last", 2,
     "--pooling last differs from it ('max' there)"),
    ("hole-classify-resume-other-data", "classify train --data labels2.csv --resume cls --epochs 5", 1,
     "the training examples differ from the"),
    ("hole-classify-resume-val-fraction", "classify train --data labels.csv --resume cls --epochs 5 --val-fraction 0.5",
     1, "resuming would not use the same data"),
    ("hole-classify-resume-seed", "classify train --data labels.csv --resume cls --epochs 5 --seed 3", 2,
     "--seed 3 differs from it (0 there)"),
    ("hole-tag-resume-crf", "tag train --data tags.conll --resume tgr --epochs 5 --crf", 2,
     "--crf differs from it (it was not given there)"),
    ("hole-tag-resume-char-size", "tag train --data tags.conll --resume tgr --epochs 5 --char-size 8", 2,
     "--char-size 8 differs from it (4 there)"),
    ("hole-tag-resume-other-data", "tag train --data tags2.conll --resume tgr --epochs 5", 1,
     "the training examples differ from the"),
    ("hole-classify-predict-max-len-0", "classify predict cls 'a b' --max-len 0", 2,
     "--max-len must be a positive integer, got 0"),
    ("hole-classify-predict-max-len-neg", "classify predict cls 'a b' --max-len -3", 2,
     "--max-len must be a positive integer, got -3"),
    ("hole-classify-predict-max-len-text", "classify predict cls 'a b c' --max-len 2", 1,
     "the text has 3 tokens, above the limit of 2 (--max-len)"),
    ("hole-tag-predict-max-len-0", "tag predict tgr 'a b' --max-len 0", 2, "--max-len must be a positive integer"),
    ("hole-tag-predict-max-len-text", "tag predict tgr 'a b c' --max-len 2", 1,
     "the sentence has 3 tokens, above the limit of 2 (--max-len)"),
    ("hole-train-split-nan", "train T --split nan,0.5,0.5", 2, "--split fractions must be three finite"),
    ("hole-train-split-inf", "train T --split inf,0,0", 2, "--split fractions must be three finite"),
    ("hole-train-split-nan-middle", "train T --split 0.5,nan,0.1", 2, "--split fractions must be three finite"),
    ("hole-ngram-split-nan", "ngram train --corpus fox.txt --split nan,0.5,0.5 --out o", 2,
     "--split fractions must be three finite"),
    ("hole-tag-char-size-huge", "tag train --data tags.conll --out t-big --char-size 100000000000", 2,
     "--char-size must be an integer from 0 to 1048576"),
    # the network's options of classify/tag train are named by the flag typed (the registry's ranges)
    ("flag-classify-hidden-0", "classify train --data C --out c-h0 --hidden-size 0", 2,
     "--hidden-size must be an integer from 1 to 1048576, got 0"),
    ("flag-classify-dropout-1", "classify train --data C --out c-d1 --dropout 1", 2, "--dropout must be in [0, 1), got 1.0"),
    ("flag-tag-layers-0", "tag train --data tags.conll --out t-l0 --layers 0", 2, "--layers must be an integer from 1"),
    ("flag-tag-embed-neg", "tag train --data tags.conll --out t-e --embed-size -2", 2, "--embed-size must be an integer"),
    ("hole-forecast-hidden-huge", "forecast --hidden 100000000000", 2, "hidden must be at most 65,536"),
    ("hole-forecast-context-huge", "forecast --model rnn --context 100000000", 2, "context must be at most 65,536"),
    ("hole-ngram-generate-length-huge", "ngram generate ng --length 100000000000000", 2,
     "length must be at most 10,000,000 tokens per call"),
    ("hole-ngram-config-split", "ngram eval h-ng-split", 1,
     "key 'preprocessing.split' must be 'd2l', 'files' or three fractions, got \"abc\""),
    ("hole-resume-config-split-nan", "train --resume h-split --max-steps 5", 1,
     "key 'train_config' is not a valid training configuration (--split fractions must be three finite"),
    ("hole-resume-config-token", "train --resume h-train-token --max-steps 5", 1,
     "key 'train_config' is not a valid training configuration (unknown tokenizer 'morpheme'"),
    ("hole-resume-config-min-freq", "train --resume h-min-freq --max-steps 5", 1,
     "key 'train_config' is not a valid training configuration (--min-freq must be >= 0, got -1)"),
    ("hole-classify-sep-empty", "classify train --data labels.csv --out c-sep --sep ''", 2,
     "--sep must be one character or one of tab"),
    ("hole-classify-sep-quote", "classify eval cls --data labels.csv --sep '\"'", 2,
     "--sep cannot be a quote or a line break"),
    ("hole-train-data-dir-file", "train T --corpus timemachine --data-dir fox.txt", 2,
     "--data-dir fox.txt is a file, not a folder"),
    ("hole-stats-data-dir-file", "corpus stats --corpus timemachine --data-dir fox.txt", 2,
     "--data-dir fox.txt is a file, not a folder"),
    # --- outputs inside other outputs, files where folders belong, sizes that cannot fit
    ("nested-out-in-best", "train T --out lm/best", 2, "lies inside"),
    ("nested-out-in-run", "train T --out lm/sub", 2, "which holds an rnnlab language-model run"),
    ("nested-out-in-ngram", "train T --out ng/sub", 2, "which holds an rnnlab n-gram model"),
    ("nested-resume-out-best", "train --resume lm --max-steps 5000 --out lm/best", 2, "lies inside"),
    ("nested-resume-best-in-place", "train --resume lm/best --max-steps 5000", 2, "lies inside"),
    ("nested-ngram-out-in-run", "ngram train --corpus fox.txt --out lm/ng", 2, "lies inside"),
    ("nested-reproduce-out-in-run", "reproduce --out lm/report", 2, "lies inside"),
    ("nested-forecast-out-in-ngram", "forecast --series sine --out ng/forecast", 2, "lies inside"),
    ("out-is-corpus", "train T --out fox.txt", 2, "--out fox.txt is a file, not a folder"),
    ("out-under-a-file", "train T --out fox.txt/run", 2, "cannot create the folder"),
    ("out-is-checkpoint-file", "train T --out lm/model.safetensors", 2, "is a file, not a folder"),
    ("reproduce-out-is-file", "reproduce --out fox.txt", 2, "is a file, not a folder"),
    ("stats-plot-is-corpus", "corpus stats --corpus fox.txt --plot fox.txt", 2, "--plot fox.txt already exists"),
    ("eval-a-file", "eval fox.txt", 1, "fox.txt is not a folder; expected an rnnlab checkpoint folder"),
    ("eval-config-file", "eval lm/config.json", 1, "is not a folder; expected an rnnlab checkpoint folder"),
    ("generate-a-file", "generate fox.txt", 1, "is not a folder; expected an rnnlab checkpoint folder"),
    ("generate-seed-huge", "generate lm --seed 100000000000000000000", 2, "--seed must be an integer from 0"),
    ("huge-hidden", "train T --hidden 1000000000000", 2, "--hidden must be an integer from 1 to"),
    ("huge-hidden-20-digits", "train T --hidden 100000000000000000000", 2, "--hidden must be an integer from 1"),
    ("huge-embed", "train T --embed 1000000000000", 2, "--embed must be an integer from 0 to"),
    ("huge-layers", "train T --layers 100000", 2, "--layers must be an integer from 1 to"),
    ("huge-batch", "train T --batch-size 1000000000", 2, "--batch-size must be an integer from 1 to 1,048,576"),
    ("train-clip-and-no-clip", "train T --clip 3 --no-clip", 2, "--no-clip and --clip 3.0 contradict each other"),
    ("huge-threads", "--threads 100000000000 train T", 2, "--threads must be an integer from 1 to 4096"),
    ("huge-generate-samples", "generate lm --num-samples 1000000000", 2, "num_samples must be an integer from 1 to"),
    ("huge-generate-length", "generate lm --length 1000000000000", 2, "length must be at most 10,000,000"),
    ("huge-bench-repeats", "bench --repeats 100000000000", 2, "--repeats must be an integer from 1 to 1000"),
    ("huge-num-steps", "train T --num-steps 1000000000", 2, "--num-steps must be an integer from 1 to 16,777,216"),
    ("huge-sample-length", "train T --sample-length 2000000", 2, "--sample-length must be an integer from 0 to 1,000,000"),
    ("train-max-time-inf", "train T --max-time inf", 2, "--max-time must be > 0 seconds, got inf"),
    ("train-clip-inf", "train T --clip inf", 2, "--clip must be > 0, got inf"),
    ("train-weight-decay-huge", "train T --weight-decay 1e39", 2, "--weight-decay must be a finite number >= 0"),
    ("classify-batch-huge", "classify train --data C --out c-bh --batch-size 2000000", 2,
     "--batch-size must be an integer from 1 to 1,048,576"),
    # --- explore panels (issue 19): classifier and tagger folders (see make_task_folders)
    ("explore-panels-forecaster", "explore fc", 1,
     "holds a 'forecaster' model, not a 'language-model' model nor a 'classifier' or 'tagger' one"),
    ("explore-panels-classifier-ngram", "explore clf --ngram ng", 2,
     "--ngram applies to language-model folders only; clf holds a classifier"),
    ("explore-panels-tagger-ngram", "explore tagger --ngram ng", 2, "--ngram applies to language-model folders only"),
    ("explore-panels-tagger-data-dir", "explore tagger --data-dir .", 2,
     "--data-dir applies to language-model folders only"),
    ("explore-panels-classifier-corpus", "explore clf --corpus fox.txt", 2,
     "--corpus applies to language-model folders only"),
    ("explore-panels-frames", "explore clf-frames", 1, "classifies numeric sequences (classify train --frames)"),
    ("explore-panels-classifier-tampered", "explore clf-tampered", 1, "does not match the checksum"),
    ("explore-panels-tagger-port", "explore tagger --port 70000", 2, "--port must be an integer from 1 to 65535"),
    # --- subword tokens (issue 20)
    ("bpe-vocab-size-char", "train T --vocab-size 500", 2, "--vocab-size applies to --token bpe or unigram only"),
    ("bpe-vocab-size-word", "train T --token word --vocab-size 500", 2, "(got --token word)"),
    ("bpe-vocab-size-0", "train T --token bpe --vocab-size 0", 2, "--vocab-size must be a positive integer, got 0"),
    ("bpe-vocab-size-neg", "train T --token bpe --vocab-size -5", 2, "--vocab-size must be a positive integer, got -5"),
    ("bpe-vocab-size-small", "train T --token bpe --vocab-size 100", 2,
     "--vocab-size 100 is too small for the alphabet"),
    ("bpe-vocab-size-huge", "train T --token unigram --vocab-size 1000000000", 2, "--vocab-size must be at most"),
    ("bpe-ngram-vocab-size-word", "ngram train --corpus fox.txt --vocab-size 300 --out ng-v", 2,
     "--vocab-size applies to --token bpe or unigram only (got --token word)"),
    ("bpe-ngram-vocab-size-0", "ngram train --corpus fox.txt --token bpe --vocab-size 0 --out ng-v", 2,
     "--vocab-size must be a positive integer"),
    ("bpe-stats-vocab-size-small", "corpus stats --corpus fox.txt --token bpe --vocab-size 255", 2,
     "too small for the alphabet"),
    ("bpe-prepare-vocab-size-char", "corpus prepare --corpus fox.txt --out prep-bpe --vocab-size 300", 2,
     "--vocab-size applies to --token bpe or unigram only (got --token char)"),
    ("bpe-prepare-vocab-size-small", "corpus prepare --corpus fox.txt --out prep-bpe --token bpe --vocab-size 99", 2,
     "--vocab-size 99 is too small for the alphabet"),
    ("bpe-resume-vocab-size", "train --resume lm-bpe --vocab-size 300", 2, "only --epochs, --max-time"),
    ("bpe-tokenizer-tampered", "eval h-bpe-tampered", 1, "tokenizer.json does not match the checksum"),
    ("bpe-tokenizer-missing", "generate h-bpe-missing", 1, "has no tokenizer.json"),
    ("bpe-tokenizer-not-json", "score h-bpe-not-json --text fox.txt", 1, "is not a tokenizers JSON file"),
    ("bpe-tokenizer-not-utf8", "eval h-bpe-not-utf8", 1, "is not UTF-8 text"),
    ("bpe-tokenizer-not-byte-level", "generate h-bpe-whitespace", 1, "is not a byte-level tokenizer"),
    ("bpe-tokenizer-kind", "eval h-bpe-kind", 1, "holds a 'BPE' tokenizer, not unigram"),
    ("bpe-tokenizer-no-bytes", "generate h-bpe-no-bytes", 1, "lacks 1 of the 256 byte symbols"),
    ("bpe-tokenizer-invalid", "generate h-bpe-invalid", 1, "is not a valid tokenizer"),
    ("bpe-tokenizer-other-run", "eval h-bpe-other-run", 1, "makes tokens that the vocabulary"),
    ("bpe-tokenizer-file-name", "eval h-bpe-file-name", 1, "preprocessing.tokenizer_file' must be a plain file name"),
    ("bpe-tokenizer-resume", "train --resume h-bpe-tampered --max-steps 5000", 1, "does not match the checksum"),
    ("bpe-ngram-tokenizer-tampered", "ngram eval h-bpe-ng-tampered --text fox.txt", 1, "does not match the checksum"),
]


def expand(arguments: str) -> list[str]:
    """The argv of a row: ``-q`` (no log lines), with the token ``T`` expanded."""
    argv = ["-q"]
    for token in shlex.split(arguments):
        argv += shlex.split(T) if token == "T" else [token]
    return argv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The files the rows name: a corpus, a trained LM and n-gram models, ARPA files,
    a folder of someone else's files, and existing output files."""
    from rnnlab.cli import main

    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "fox.txt").write_text(TEXT)
    (root / "other.txt").write_text(TEXT.upper())
    (root / "short.txt").write_text("tiny text")
    (root / "empty.txt").write_text("")
    (root / "unknown.txt").write_text("zebra quagga okapi\n")  # no word of TEXT
    (root / "oneword.txt").write_text("fox\n")
    (root / "bad.bin").write_bytes(b"\xff\xfe abc\n")
    (root / "gaps.txt").write_text("1\n2\nn/a\n4\n" * 100)
    (root / "labels.csv").write_text("text,label\n" + "".join(
        f"{'a b' if i % 2 else 'b c'} d{i % 5},{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    (root / "labels2.csv").write_text((root / "labels.csv").read_text().replace("d1", "e1"))
    (root / "tags.conll").write_text("".join(f"a B-X\nb O\nc{i % 4} O\n\n" for i in range(30)))
    (root / "tags2.conll").write_text((root / "tags.conll").read_text().replace("c1", "e1"))
    (root / "mine").mkdir()
    (root / "mine" / "config.json").write_text('{"learning_rate": 3}')
    (root / "exists.png").write_bytes(b"a figure")
    make_special(root)
    unigrams = "\n\\data\\\nngram 1=3\n\n\\1-grams:\n"
    (root / "positive.arpa").write_text(unigrams + "0.5\t<s>\n-1\ta\n-1\t</s>\n\n\\end\\\n")
    (root / "nan.arpa").write_text(unigrams + "-0.5\t<s>\nnan\ta\n-1\t</s>\n\n\\end\\\n")
    (root / "inf.arpa").write_text(unigrams + "-0.5\t<s>\n-inf\ta\n-1\t</s>\n\n\\end\\\n")
    (root / "truncated.arpa").write_text(unigrams + "-0.5\t<s>\n")
    (root / "nanbow.arpa").write_text("\n\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-0.5\ta\tnan\n-0.5\tb\t0\n\n"
                                      "\\2-grams:\n-0.3\ta b\n\n\\end\\\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(expand("train T --out lm")) == 0
            assert main(expand("train T --out tampered")) == 0
            assert main(expand("ngram train --corpus fox.txt --out ng --arpa ok.arpa")) == 0
            assert main(expand("ngram train --corpus fox.txt --smoothing addk --out ngk")) == 0
            assert main(expand("train T --token bpe --vocab-size 260 --out lm-bpe")) == 0
            assert main(expand("ngram train --corpus fox.txt --token bpe --vocab-size 260 --out ng-bpe")) == 0
            tiny = "--hidden-size 4 --embed-size 4 --epochs 1 --batch-size 8"
            assert main(expand(f"classify train --data labels.csv --out cls {tiny}")) == 0
            assert main(expand(f"tag train --data tags.conll --out tgr --char-size 4 {tiny}")) == 0
    finally:
        os.chdir(cwd)
    (root / "exists.arpa").write_text((root / "ok.arpa").read_text())
    make_hostile(root)
    make_artifact_folders(root)
    make_task_folders(root)
    weights = root / "tampered" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return root


def make_special(root: Path) -> None:
    """``special/``: a FIFO (a read would block forever), a socket, symlink loops, a folder
    named like a text file, and corpus folders holding a FIFO. Made where the platform can."""
    import socket

    special = root / "special"
    (special / "mixed").mkdir(parents=True)
    (special / "split").mkdir()
    (special / "folder.txt").mkdir()
    (special / "mixed" / "a.txt").write_text(TEXT)
    (special / "split" / "train.txt").write_text(TEXT)
    (special / "loop.txt").symlink_to("loop.txt")
    (special / "dangling.txt").symlink_to("missing.txt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(special / "fifo.txt")
        os.mkfifo(special / "mixed" / "b.txt")
        os.mkfifo(special / "split" / "valid.txt")
    if hasattr(socket, "AF_UNIX"):
        cwd = os.getcwd()
        os.chdir(special)  # a relative name: socket paths are limited to about 100 bytes
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind("sock.txt")  # the socket file stays after close
        finally:
            os.chdir(cwd)


def make_artifact_folders(root: Path) -> None:
    """The ``p-*`` folders: copies of a prepared corpus of ``story.txt`` (distinct val and
    test shards) with its manifest or one shard edited, and the ``h-link-out`` and
    ``h-files-*`` checkpoints: copies of ``lm`` whose files leave the folder."""
    import json
    import shutil

    from rnnlab.data.prepare import prepare_corpus

    words = TEXT.split()
    (root / "story.txt").write_text("".join(" ".join(words[(i * 7 + j * j) % len(words)] for j in range(i % 9 + 3))
                                            + ".\n" for i in range(200)))
    prepare_corpus(root / "story.txt", root / "prepared", show_progress=False)
    outside = root.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    (outside / "val.bin").write_bytes((root / "prepared" / "val-00000.bin").read_bytes())

    def copy(name: str, change=None, split: str = "val", **record) -> Path:
        folder = root / name
        shutil.copytree(root / "prepared", folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["splits"][split]["shards"][0].update(record)
        if change:
            change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    copy("p-absolute", file=str(outside / "val.bin"))
    copy("p-dotdot", file="../../elsewhere/val.bin")
    link = copy("p-symlink") / "val-00000.bin"
    link.unlink()
    link.symlink_to(outside / "val.bin")
    if hasattr(os, "mkfifo"):
        fifo = copy("p-fifo") / "val-00000.bin"
        fifo.unlink()
        os.mkfifo(fifo)
    (copy("p-missing") / "test-00000.bin").unlink()
    swapped = copy("p-swapped")
    val, test = (swapped / "val-00000.bin").read_bytes(), (swapped / "test-00000.bin").read_bytes()
    assert len(val) == len(test) and val != test
    (swapped / "val-00000.bin").write_bytes(test)
    (swapped / "test-00000.bin").write_bytes(val)
    flipped = copy("p-flipped") / "train-00000.bin"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 1
    flipped.write_bytes(bytes(data))
    train = json.loads((root / "prepared" / "manifest.json").read_text())["splits"]["train"]["shards"][0]
    shorter = train["num_tokens"] - 10

    def shrink(manifest):
        manifest["splits"]["train"]["num_tokens"] = shorter
    resized = copy("p-resized", shrink, split="train", num_tokens=shorter, bytes=shorter) / "train-00000.bin"
    resized.write_bytes(resized.read_bytes()[:shorter])
    truncated = copy("p-truncated") / "val-00000.bin"
    truncated.write_bytes(truncated.read_bytes()[:-1])
    copy("p-file-type", split="train", file=7)
    copy("p-sha-type", split="train", sha256="not a digest")
    copy("p-bytes", split="train", bytes=train["bytes"] + 1)
    copy("p-dtype", lambda m: m.update(dtype="float32"))

    shutil.copytree(root / "lm", root / "h-link-out")
    shutil.move(str(root / "h-link-out" / "model.safetensors"), str(outside / "model.safetensors"))
    (root / "h-link-out" / "model.safetensors").symlink_to(outside / "model.safetensors")
    for name, files in (("h-files-escape", {"../x.safetensors": "0" * 64}),
                        ("h-files-digest", {"model.safetensors": "nope"}), ("h-files-type", [])):
        shutil.copytree(root / "lm", root / name)
        config = json.loads((root / name / "config.json").read_text())
        config["files"] = {**config["files"], **files} if isinstance(files, dict) else files
        (root / name / "config.json").write_text(json.dumps(config))


def make_hostile(root: Path) -> None:
    """The ``h-*`` folders of the hostile rows: copies of ``lm`` and ``ng`` with one edit.
    ``elsewhere/secret.txt`` lies outside the workspace: the rows check that eval, --resume
    and ngram eval refuse it instead of reading it."""
    import hashlib
    import json
    import shutil

    import torch

    outside = root.parent / "elsewhere" / "secret.txt"
    outside.parent.mkdir(exist_ok=True)
    outside.write_text(TEXT)

    def copy(source: str, name: str) -> Path:
        shutil.copytree(root / source, root / name)
        return root / name

    copy("lm", "h-bytes").joinpath("config.json").write_bytes(b"\xff{not json")
    edit_config(copy("lm", "h-no-model"), "model.model", delete=True)
    edit_config(copy("lm", "h-hidden"), "model.hidden_size", "8")
    edit_config(copy("lm", "h-layers"), "model.num_layers", 10**9)
    edit_config(copy("lm", "h-vocab-size"), "model.vocab_size", 3)
    edit_config(copy("lm", "h-vocab"), "vocab.idx_to_token", ["<unk>", "a"])
    edit_config(copy("lm", "h-token"), "preprocessing.token", "sentence")
    edit_config(copy("lm", "h-progress"), "progress.step", -5)
    edit_config(copy("lm", "h-history"), "progress.history", [{"step": 1}])
    edit_config(copy("lm", "h-train-config"), "train_config.hidden_size", 16)
    edit_config(copy("lm", "h-sample-length"), "train_config.sample_length", 10**12)
    edit_tensors(copy("lm", "h-shape"), "model", lambda t: t.update({"output.weight": torch.zeros(3, 3)}))
    edit_tensors(copy("lm", "h-dtype"), "model", lambda t: t.update({"output.weight": t["output.weight"].double()}))
    edit_tensors(copy("lm", "h-no-tensor"), "model", lambda t: t.pop("output.weight"))
    edit_tensors(copy("lm", "h-nan"), "model", lambda t: t["output.weight"].fill_(float("nan")))
    edit_tensors(copy("lm", "h-optimizer"), "optimizer", lambda t: t.update({"0.exp_avg": torch.zeros(2, 2)}))
    edit_config(copy("lm", "h-betas"), "optimizer.param_groups.0.betas", ["a", 2])
    edit_tensors(copy("lm", "h-rng"), "state", lambda t: t.update(torch_rng=torch.zeros(3, dtype=torch.uint8)))
    folder = copy("lm", "h-not-safetensors")
    data = b"\x08\x00\x00\x00\x00\x00\x00\x00{not json"  # a header length, then no header
    (folder / "model.safetensors").write_bytes(data)
    files = json.loads((folder / "config.json").read_text())["files"]
    edit_config(folder, "files", {**files, "model.safetensors": hashlib.sha256(data).hexdigest()})
    edit_config(copy("lm", "h-outside"), "data.location", str(outside))
    edit_config(root / "h-outside", "train_config.corpus", str(outside))
    edit_config(copy("lm", "h-escape"), "data.location", None)
    edit_config(root / "h-escape", "train_config.corpus", "../elsewhere/secret.txt")
    edit_config(copy("ng", "h-ng-order"), "model.order", 10**6)
    edit_tensors(copy("ng", "h-ng-keys"), "model", lambda t: t.update({"keys.2": t["keys.2"].flip(0)}))
    edit_tensors(copy("ng", "h-ng-logp"), "model", lambda t: t.update({"logp.1": t["logp.1"].float()}))
    edit_config(copy("ng", "h-ng-outside"), "preprocessing.location", str(outside))
    edit_config(copy("ng", "h-ng-split"), "preprocessing.split", "abc")
    edit_config(copy("lm", "h-split"), "train_config.split", "nan,0.5,0.5")
    edit_config(copy("lm", "h-train-token"), "train_config.token", "morpheme")
    edit_config(copy("lm", "h-min-freq"), "train_config.min_freq", -1)

    def task_copy(source: str, name: str, key: str, value) -> None:
        """A copy of a task folder with ``key`` edited in its config.json and in best/'s (what is loaded)."""
        folder = copy(source, name)
        for config in (folder, folder / "best"):
            edit_config(config, key, value)

    for name, key, value in [("nan", "model.hidden_size", float("nan")), ("str", "model.hidden_size", "8"),
                             ("neg", "model.hidden_size", -3), ("float", "model.hidden_size", 8.0),
                             ("bool", "model.num_layers", True), ("lower", "task.lowercase", "false"),
                             ("tags", "task.tags", ["O", "O"]), ("chars", "task.chars", ["<pad>", "<unk>", "a", "a"]),
                             ("unk", "task.unk_replace", float("nan")), ("single", "task.singletons", "abc"),
                             ("crf", "model.crf", "false"), ("num-tags", "model.num_tags", 5)]:
        task_copy("tgr", f"h-tgr-{name}", key, value)
    for name, key, value in [("nan", "model.hidden_size", float("nan")), ("bidir", "model.bidirectional", "yes"),
                             ("lower", "task.lowercase", "false"), ("labels", "task.labels", ["neg", "neg"]),
                             ("one", "task.labels", ["neg"]), ("task", "task", 5),
                             ("cell", "model.cell", "transformer"), ("extra", "model.colour", "red"),
                             ("vocab", "task.vocab", ["a", "b"])]:
        task_copy("cls", f"h-cls-{name}", key, value)
    edit_tensors(copy("cls", "h-cls-weights") / "best", "model", lambda t: t["output.weight"].fill_(float("nan")))
    edit_config(copy("cls", "h-cls-batch"), "train_config.batch_size", 10**12)
    edit_config(copy("cls", "h-cls-sha"), "data.train_sha1", 123)
    edit_config(root / "h-ng-outside", "preprocessing.corpus_arg", str(outside))
    make_hostile_tokenizers(root, copy)


def make_hostile_tokenizers(root: Path, copy) -> None:
    """``h-bpe-*``: copies of ``lm-bpe`` (and ``ng-bpe``) whose ``tokenizer.json`` was edited,
    its checksum recomputed except in the ``tampered`` ones, or whose config names another."""
    import hashlib
    import json

    original = json.loads((root / "lm-bpe" / "tokenizer.json").read_text(encoding="utf-8"))

    def tokenizer(name: str, data: bytes, source: str = "lm-bpe", checksum: bool = True) -> None:
        folder = copy(source, name)
        (folder / "tokenizer.json").write_bytes(data)
        if checksum:
            files = json.loads((folder / "config.json").read_text())["files"]
            edit_config(folder, "files", {**files, "tokenizer.json": hashlib.sha256(data).hexdigest()})

    def edited(change) -> bytes:
        data = json.loads(json.dumps(original))
        change(data)
        return json.dumps(data).encode("utf-8")

    tokenizer("h-bpe-tampered", edited(lambda d: d["model"]["vocab"].update({"zz": 999})), checksum=False)
    tokenizer("h-bpe-ng-tampered", b"{}", source="ng-bpe", checksum=False)
    copy("lm-bpe", "h-bpe-missing").joinpath("tokenizer.json").unlink()
    tokenizer("h-bpe-not-json", b"{not json")
    tokenizer("h-bpe-not-utf8", b"\xff\xfe{}")
    tokenizer("h-bpe-whitespace", edited(lambda d: d.update(pre_tokenizer={"type": "Whitespace"})))
    tokenizer("h-bpe-kind", edited(lambda d: None))
    edit_config(root / "h-bpe-kind", "preprocessing.token", "unigram")
    tokenizer("h-bpe-no-bytes", edited(lambda d: d["model"]["vocab"].pop("\u0100")))  # byte 0, in no merge
    tokenizer("h-bpe-invalid", edited(lambda d: d["model"].update(merges=[["no such", "token here"]])))
    tokenizer("h-bpe-other-run", edited(lambda d: d["model"]["vocab"].update({"zz": len(d["model"]["vocab"])})))
    edit_config(copy("lm-bpe", "h-bpe-file-name"), "preprocessing.tokenizer_file", "../lm-bpe/tokenizer.json")


def make_task_folders(root: Path) -> None:
    """The explore panels' rows: an untrained classifier (``clf``, and ``clf-tampered`` with a
    weight flipped), a classifier of numeric sequences (``clf-frames``), a tagger (``tagger``)
    and a folder of another kind (``fc``, a forecaster's config alone), written in memory."""
    from rnnlab.checkpoint import save_checkpoint
    from rnnlab.tasks.base import PAD, UNK, Index, save_task
    from rnnlab.tasks.classify import ClassificationTask, FeatureClassificationTask
    from rnnlab.tasks.tag import TaggingTask

    words = Index([PAD, UNK, "the", "fox"])
    for name in ("clf", "clf-tampered"):
        classifier = ClassificationTask(words, ["neg", "pos"])
        save_task(root / name, classifier, classifier.build_model(seed=0, embed_size=4, hidden_size=4))
    weights = root / "clf-tampered" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    frames = FeatureClassificationTask(["high", "low"], [0.0, 0.0], [1.0, 1.0])
    save_task(root / "clf-frames", frames, frames.build_model(seed=0, hidden_size=4))
    tagger = TaggingTask(words, Index([PAD, UNK, "f", "o", "x"]), ["B-PER", "I-PER", "O"])
    save_task(root / "tagger", tagger, tagger.build_model(seed=0, embed_size=4, hidden_size=4, char_embed_size=2,
                                                           char_hidden_size=2))
    save_checkpoint(root / "fc", {}, {}, kind="forecaster")


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _platform_lacks(arguments: str, workspace: Path) -> str | None:
    for word in shlex.split(arguments):
        if word.startswith("/dev/") and not os.path.exists(word):
            return f"no {word} here"
        if word.startswith("special/") and word.split("/")[1].split("*")[0] and not any(
                os.path.lexists(p) for p in [workspace / word.split("*")[0]]):
            return f"this platform cannot make {word}"
    return None


@contextlib.contextmanager
def _time_limit(seconds: int):
    """Fail instead of hanging (a FIFO read blocks forever): SIGALRM where there is one."""
    import signal
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(signum, frame):
        raise AssertionError(f"the command took over {seconds} s: blocked on a read?")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("arguments,status,fragment", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input(workspace, monkeypatch, capsys, arguments, status, fragment):
    from rnnlab.cli import main
    import rnnlab.training.loop as loop

    missing = _platform_lacks(arguments, workspace)
    if missing:
        pytest.skip(missing)

    def no_training(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(loop.Trainer, "fit", no_training)
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    try:
        with _time_limit(120):
            code = main(expand(arguments))
        from_argparse = False
    except SystemExit as exc:  # argparse's own errors (a missing required argument)
        code, from_argparse = exc.code, True
    err = capsys.readouterr().err.strip().splitlines()
    assert code == status, err
    if from_argparse:
        assert fragment in err[-1]
    else:
        assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
        assert fragment in err[0], err[0]
    changed = {k for k, v in snapshot(workspace).items() if before.get(k) != v}
    assert not changed, f"a refused command changed {sorted(changed)}"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    """In a subprocess with a time limit: without the check these reads block forever."""
    import subprocess

    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "fox.txt").write_text(TEXT)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text(TEXT)
    os.mkfifo(tmp_path / "corpus" / "b.txt")
    for arguments in ("corpus stats --corpus pipe.txt", "corpus stats --corpus corpus",
                      "corpus stats --corpus 'corpus/*.txt'", "train T --val pipe.txt --out run"):
        try:
            done = subprocess.run([sys.executable, "-m", "rnnlab", *expand(arguments)], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rnnlab {arguments} blocked on a FIFO")
        err = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(err) == 1 and "is a FIFO (named pipe), not a regular file" in err[0], \
            (arguments, done.stderr)


def test_a_file_swapped_for_a_fifo_after_the_check_is_not_waited_on(tmp_path, monkeypatch):
    """read_regular_file examines the open handle too: a FIFO that appears between the
    check and the open is refused, never read."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    import rnnlab.fileio as fileio
    from rnnlab.errors import DataError

    os.mkfifo(tmp_path / "pipe")
    monkeypatch.setattr(fileio, "refuse_special_file", lambda *args: None)  # the first check missed it
    with _time_limit(30), pytest.raises(DataError, match="is a FIFO"):
        fileio.read_regular_file(tmp_path / "pipe")


def test_an_unreadable_corpus_is_one_error(tmp_path, monkeypatch, capsys):
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        pytest.skip("runs as root (or not on POSIX): chmod 000 does not stop root from reading")
    from rnnlab.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fox.txt").write_text(TEXT)
    (tmp_path / "locked.txt").write_text(TEXT)
    (tmp_path / "locked.txt").chmod(0)
    try:
        for arguments in ("corpus stats --corpus locked.txt", "train T --val locked.txt --out run"):
            assert main(expand(arguments)) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "cannot read locked.txt: Permission denied" in err[0], err
    finally:
        (tmp_path / "locked.txt").chmod(0o644)


def test_names_that_are_not_utf8_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """A corpus or output name with bytes that are not UTF-8 would be recorded in
    config.json and printed: refused up front (it once ended in a traceback at the
    first save, after training), and a checkpoint that holds one still saves."""
    if sys.platform in ("win32", "darwin"):
        pytest.skip("file names here are always Unicode")
    from rnnlab.checkpoint import load_config, save_checkpoint
    from rnnlab.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fox.txt").write_text(TEXT)
    name = os.fsdecode(b"\xff\xfe.txt")  # a lone surrogate in Python's view
    try:
        (tmp_path / name).write_text(TEXT)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    for argv, status, fragment in [
            (["corpus", "stats", "--corpus", name], 1, "is not a UTF-8 name"),
            (expand("train T --val x")[1:-1] + [name, "--out", "run"], 1, "--val "),
            (expand("train T")[1:] + ["--out", os.fsdecode(b"run\xff")], 2, "--out "),
            (["corpus", "stats", "--corpus", "fox.txt", "--plot", os.fsdecode(b"p\xff.png")], 2, "--plot ")]:
        assert main(["-q", *argv]) == status, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0] and "is not a UTF-8 name" in err[0], err
    save_checkpoint(tmp_path / "ck", {"data": {"location": str(tmp_path / name)}}, {})
    assert load_config(tmp_path / "ck")["data"]["location"] == str(tmp_path / name)


def test_the_table_has_at_least_a_hundred_rows_and_unique_ids():
    assert len(ROWS) >= 100
    assert len({row[0] for row in ROWS}) == len(ROWS)


def markdown() -> str:
    lines = [
        "# Bad inputs: what every command refuses, and how",
        "",
        "Each row is a command line that rnnlab refuses with one `error:` line on stderr, before",
        "any training step and without changing any file. Exit status 2 means a usage mistake",
        "(an option or argument), 1 a problem with data, a checkpoint or an environment.",
        f"`T` stands for a tiny training setup: `{T}`.",
        "",
        "The table is generated from `ROWS` in `tests/test_bad_inputs.py`, which runs every row",
        "(`python tests/test_bad_inputs.py > docs/bad_inputs.md` regenerates it; a test checks",
        "that it is current). See the README for the rules behind the output-folder rows.",
        "The `h-*` folders of the `hostile-*` rows are copies of the trained `lm` and `ng` with one",
        "value of `config.json` or one tensor edited (tensor checksums recomputed, so only the",
        "validation of what a checkpoint holds can catch them; see `make_hostile`).",
        "",
        f"{len(ROWS)} rows.",
        "",
        "| id | command | exit | message contains |",
        "|---|---|---|---|",
    ]
    for row_id, arguments, status, fragment in ROWS:
        shown = fragment.replace("|", "\\|")
        lines.append(f"| {row_id} | `rnnlab {arguments}` | {status} | {shown} |")
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
    assert doc.read_text(encoding="utf-8") == markdown(), "regenerate: python tests/test_bad_inputs.py > docs/bad_inputs.md"


if __name__ == "__main__":
    sys.stdout.write(markdown())
