"""Generator of the transformers layout maps (``converters/maps/data/transformers/*.json``).

It runs in a second environment holding transformers 4.57.6 (which needs
``huggingface_hub<1.0`` and so cannot live in the project's environment)::

    python -m tensorferry.converters.maps.mapgen setup      # create the environment (idempotent)
    python -m tensorferry.converters.maps.mapgen generate   # rebuild every map inside it

Converting at run time reads only the JSON maps (see ``tensorferry.converters.maps``).
"""
