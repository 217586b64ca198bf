"""Exporters: SavedModel for TF-Serving and TFLite / LiteRT for phones."""
