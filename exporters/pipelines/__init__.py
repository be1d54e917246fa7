"""Pipelines a user runs: export (convert + gate), verify, Android assets, fine-tuning. They
compose the conversion steps and the evaluation; nothing below imports them."""
