"""Side-by-side benchmarks of manystore and its peers (``python -m bench.run``)."""
