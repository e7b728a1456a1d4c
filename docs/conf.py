"""Sphinx configuration: MyST Markdown guides and an API reference from the docstrings.

  pip install -e '.[docs]' && python -m sphinx -W -b html docs docs/_build/html
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "rlmba_jax"
author = "rlmba_jax authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say the shapes; annotations would repeat them
html_theme = "alabaster"
suppress_warnings = ["myst.xref_missing"]  # guides name repository paths as code, not links
napoleon_use_ivar = True  # NamedTuple fields listed under "Attributes:" once, not twice
