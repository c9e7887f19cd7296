"""The model families (above the model-folder format, modelformat/, which they all read).

family.py is what a family provides to the engine; sr3/ and e2diffsr/ are the two families; embedding.py and
precision.py are what their networks share; registry.py lists them, once, and is the only place that names them.
"""
