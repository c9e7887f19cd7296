"""Where a run's model work is carried out: this process's devices (local.py, workers.py) or a Dask cluster
(scaleout.py, store.py), the device and worker choices (devices.py, allocator.py), and the run checkpoint that
lets a killed run continue (checkpoint.py). Every backend gives bitwise the same output.
"""
