"""Keras ``.h5`` weights (legacy HDF5 layout of keras.applications, or Keras 3 ``.weights.h5``)."""

from __future__ import annotations

from models.convert.keras_inception_v3 import ARCHS, convert, metadata, read  # noqa: F401
