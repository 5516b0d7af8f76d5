"""pytest plugin shipped with pyramidd for plugin authors (loaded through ``pytest11``).

Fixtures that build pyramids from generated images in ``tmp_path`` are added here as
the engine's public API settles.
"""
