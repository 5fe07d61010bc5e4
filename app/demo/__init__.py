"""Known-answer demo: synthetic motion clips and the small model trained on them.

``app.demo.synthetic`` builds a scene from a seed and a script (label catalogue in
``classes``; outlines, stage, backdrop, looks, motion and drawing in their own
modules) and writes test videos through ``video``. All of it is numpy-only, with
PyAV imported where videos are encoded or decoded; the torch side (``clips``) is
imported explicitly by the training and check scripts. ``detection_scene`` does the same for the
detection pair (several objects acting at once, every box known) and ``detection_models`` holds
that pair's networks (torch; built by the catalog from ``models/manifest.json``).
"""
