"""Known-answer demo: synthetic motion clips and the small model trained on them.

``app.demo.synthetic`` is numpy-only (it also writes test videos); the torch side
(``app.demo.clips``) is imported explicitly by the training and check scripts.
"""
