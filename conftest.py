# Doctests are collected from the package too: skip the modules whose optional dependencies
# are not installed (the `dask` extra).
import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["skmcad/dask.py"]
