"""kap12-bot: answers about opplæringslova kapittel 12 with cited passages, and walks users through what to do."""

import os

# Before numpy, faiss or the embedding engine load: their thread pools (OpenBLAS, OpenMP) otherwise start one
# thread per core that keeps spinning after every small matrix product, ~100 ms of CPU per message on two
# cores. One message needs one thread; a build asks for more where it pays (bot/embed.py). Set them to
# override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

__version__ = "0.1.0"
