"""The Python API in one page: corpus -> model -> training with a callback -> evaluation -> generation.

Run: RNNLAB_DATA=../shared/data python examples/api_tour.py
"""
import rnnlab

corpus = rnnlab.load_corpus("timemachine")                      # or a path, or None for the built-in corpus
config = rnnlab.make_config(mode="d2l", token="char", model="gru", hidden_size=128, num_layers=1,
                            embed_size=32, batch_size=32, num_steps=35, epochs=3, lr=0.005,
                            sample_prefix="time traveller", sample_length=30)
data = rnnlab.prepare_text(corpus, mode=config.mode, token=config.token, split=config.split)
print(f"{len(data.train):,} training tokens, vocabulary {len(data.vocab)}: {data.vocab.idx_to_token[:6]}")

model = rnnlab.build_model("gru", len(data.vocab), seed=0, hidden_size=128, num_layers=1, embed_size=32)


def report(record):                                             # called after every evaluation
    print(f"epoch {record['epoch']}: val perplexity {record['val_perplexity']:.2f} | {record['sample']!r}")


trainer = rnnlab.language_model_trainer(config, data, model=model, out_dir="runs/api", callbacks=[report])
summary = trainer.fit()
print(f"{summary['tokens_per_second']:,.0f} tokens/s; best val perplexity {summary['best_val_perplexity']:.2f}")

lm = rnnlab.load("runs/api/best")                               # any checkpoint folder, on the CPU
print("test perplexity:", round(lm.score(data.test)["perplexity"], 3))
print(lm.generate("the time machine", length=60, temperature=0.6, seed=0))
