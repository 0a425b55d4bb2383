"""Converters from the official downloads to the prepared layout (data/layout.py), one module per dataset.

``common`` holds what they share (jobs, report, atomic records, label and intrinsics helpers); ``__main__`` is the
command line (``indoor-parsing prepare <dataset>`` = ``python -m indoor_parsing.data.prepare <dataset>``), and no
module imports it.
"""
