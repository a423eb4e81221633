"""Networks, training, inference and active-learning strategies.

- ``networks``: a small CNN (default) and a ResNet-18-style net; ``embed()`` is the
  penultimate layer.
- ``train`` / ``infer``: the ``alsql train`` / ``alsql infer`` steps.
- ``strategies``: scoring and selection functions, looked up by name.
- ``select``: ``create_round`` turns a strategy into a round of items to label.
"""
