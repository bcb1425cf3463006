"""Live models of each framework: load a checkpoint into a torch module, a Keras model or a Flax tree.

One module per framework (``torch``, ``keras``, ``flax``), each importing its framework at the top,
like safetensors' own ``torch.py`` / ``tensorflow.py`` / ``flax.py``: import the one you need.
Conversion itself never imports them.
"""
