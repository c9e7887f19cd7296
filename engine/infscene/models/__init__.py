"""The model families and the model-folder format.

contract.py is what every family promises about its data; folder.py and model_check.py read and check a
model folder; family.py is what a family provides to the engine; sr3/ and e2diffsr/ are the two families;
registry.py lists them, once, and is the only place that names them.
"""
