"""Training, by role: ``config`` (the run's settings and events; no torch), ``data`` (image cache,
crops, augmentation, batch loader), ``losses``, ``validate`` and ``loop`` (``train()``).

Import from the modules themselves; this package imports nothing, so ``core.training.config``
stays free of torch.
"""
