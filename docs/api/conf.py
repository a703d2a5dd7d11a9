"""Sphinx configuration of the API reference, generated from the package's docstrings.

Built by ``make docs`` (and so by ``make test``) with warnings as errors and every cross-reference
checked (``-n``): a docstring that names a class or module that does not exist fails the build.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version as _version

sys.path.insert(0, os.path.abspath(os.path.join(__file__, "..", "..", "..")))

project = "airflow-provider-iterable"
author = "airflow-provider-iterable developers"
release = _version("airflow-provider-iterable")
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_class_signature = "separated"
# Type hints name Airflow's, requests' and the standard library's classes; without network
# access there is no intersphinx inventory for them, so only this package's names are checked.
# Private modules (a leading underscore) hold base classes and helpers that are not part of the
# interface: a reference to them (a base class shown by ``show-inheritance``) is not an error.
nitpick_ignore_regex = [
    ("py:.*", r"(?!airflow_provider_iterable\b).*"),
    ("py:.*", r"airflow_provider_iterable\.(.*\.)?_.*"),
]
html_theme = "alabaster"
html_title = f"{project} {release}"
