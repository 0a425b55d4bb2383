"""The one place that imports MinkowskiEngine (unmaintained upstream; keep its surface small).

MinkowskiEngine 0.5.4 still reads ``collections.Sequence`` etc., removed in Python 3.10; the shim aliases them
from ``collections.abc`` before the import and touches nothing that already exists.
"""

import collections
import collections.abc

_ABC_NAMES = ("Sequence", "Mapping", "MutableMapping", "Iterable", "Callable")


def apply_collections_shim() -> list[str]:
    """Alias the removed ``collections`` ABCs; returns the names it added (empty where nothing was needed)."""
    added = []
    for name in _ABC_NAMES:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
            added.append(name)
    return added


def import_minkowski():
    """Import MinkowskiEngine lazily, with a clear error where it is not installed."""
    apply_collections_shim()
    try:
        import MinkowskiEngine as ME
    except ImportError as err:
        raise ImportError(
            "MinkowskiEngine is needed for the 3D teacher only; install it with `make install` "
            "(WITH_MINKOWSKI=1, the default) or see README 'MinkowskiEngine'."
        ) from err
    return ME
