"""Explaining whole datasets into a chunked zarr store: in-process, or on Ray; resumable chunk by chunk.

``explain_dataset`` (:mod:`.run`) reads a source (:mod:`.sources`, :mod:`.images`), explains it chunk by chunk
(:mod:`.work`; on Ray: :mod:`.distributed`) into a store (:mod:`.store`; HDF5 export: :mod:`.export`).
"""

from ..lazy import exports

_EXPORTS = {
    "explain_dataset": "run",
    "open_store": "store",
    "Store": "store",
    "export_h5": "export",
    "open_source": "sources",
    "Source": "sources",
    "ImageFolder": "images",
    "Preprocess": "images",
    "ModelRecipe": "work",
}
__all__ = sorted(_EXPORTS)

__getattr__ = exports(__name__, _EXPORTS)
