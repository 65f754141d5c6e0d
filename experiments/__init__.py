"""The research harness: benchmarks, out of fold, pooling, the race against the tutorial, GPU checks. Its log is
experiments/README.md; what it measured is in benchmarks/. Nothing here ships to Kaggle."""
