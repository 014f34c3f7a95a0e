"""This project's own trained generators, shipped as self-describing safetensors (see `esrgan.weights.zoo`)."""
