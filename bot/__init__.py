"""kap12-bot: answers about opplæringslova kapittel 12 with cited passages, and walks users through what to do."""

__version__ = "0.1.0"
