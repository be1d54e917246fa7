"""Static accelerator checks of an exported file, with no device: which ops LiteRT's GPU
delegate, Android's NNAPI and the Edge TPU compiler take, and whether an int8 model computes in
integers only. ``registry`` runs them all by manifest key."""
