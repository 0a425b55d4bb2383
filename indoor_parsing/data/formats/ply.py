"""A small PLY reader for the vertex element of binary little-endian meshes (ScanNet ``_vh_clean_2*.ply``)."""

from pathlib import Path

import numpy as np

from indoor_parsing.io import DataFileError

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2", "ushort": "<u2",
    "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4", "float": "<f4", "float32": "<f4",
    "double": "<f8", "float64": "<f8",
}  # fmt: skip


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """The vertex element as a numpy structured array (fields named like the PLY properties, e.g. x, red, label).

    Only what ScanNet needs: ``format binary_little_endian 1.0`` with ``vertex`` as the first element (faces after
    it are not read).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise DataFileError(f"{path}: not a PLY file")
        fmt, elements = None, []  # elements: [name, count, [(prop, dtype)]]
        while True:
            line = f.readline()
            if not line:
                raise DataFileError(f"{path}: truncated PLY header (no end_header)")
            words = line.decode("ascii", errors="replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append([words[1], int(words[2]), []])
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    elements[-1][2].append((words[-1], None))
                elif words[1] in _TYPES:
                    elements[-1][2].append((words[2], _TYPES[words[1]]))
                else:
                    raise DataFileError(f"{path}: unknown PLY property type {words[1]!r}")
        if fmt != "binary_little_endian":
            raise DataFileError(f"{path}: PLY format {fmt!r}; only binary_little_endian is supported")
        if not elements or elements[0][0] != "vertex" or any(t is None for _, t in elements[0][2]):
            raise DataFileError(f"{path}: expected 'vertex' as the first element with scalar properties")
        _, count, props = elements[0]
        dtype = np.dtype([(name, t) for name, t in props])
        data = f.read(count * dtype.itemsize)
    if len(data) < count * dtype.itemsize:
        raise DataFileError(f"{path}: truncated: {count} vertices announced, {len(data) // dtype.itemsize} present")
    return np.frombuffer(data, dtype)
