"""What a model folder is, below everything that reads one (the raster layer's band scaling, the trainer, every
family): the data contract every family's config has (contract.py), the files and their names (files.py), the checks
made before anything is built (check.py), the format's reading and writing (folder.py), and the card that ties a
folder's config to its weights (card.py: their sha256, and what the probe, probe.py, measured of the model's output).
contract.py and files.py import no torch: the plugin's torch-free quick plan reads them."""
