"""Layout maps: per-architecture data that says what each tensor is and where it goes.

* ``kinds`` reads the hand-written kind maps (``data/kinds/<model_type>.json``): each module's kind
  (linear, embedding, depthwise…) and the model's module order.
* ``transformers`` reads the maps generated from transformers 4.57.6 (``data/transformers/``):
  every tensor's TF and Flax name and op, both ways.
* ``mapgen`` is the generator of the latter (a development tool; it runs in a second environment).

>>> from tensorferry.converters.maps import kinds, transformers
>>> kinds.find_full({"model_type": "tensorferry-tiny-cnn"})["kinds"]["dw"]
'depthwise:2'
>>> "bert" in transformers.available()
True
"""
