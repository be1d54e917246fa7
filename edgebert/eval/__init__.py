"""Agreement between an export and its reference (cosine, task decisions, Wilson bounds), the
linear probe that turns embeddings into decisions, and the readers of users' text files."""
