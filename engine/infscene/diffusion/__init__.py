"""The method, independent of any network: the noise schedule and its respacing, keyed noise, the patch grid,
the variance-corrected fusion, the scene canvases and the step loop that joins them.

Nothing here knows a model family: a family plugs in through the `Denoiser` protocol (schedule.py), and the
place the work runs through the `Executor` protocol (executor.py).
"""
