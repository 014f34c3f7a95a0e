"""This project's own trained generators, shipped as self-describing safetensors.

The files are listed in `esrgan.weights.zoo.REGISTRY` as bundled entries.
"""
