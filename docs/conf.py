"""Sphinx configuration of the skmcad documentation.

Build it from the repository root with::

    python -m sphinx -W -b html docs docs/_build/html

The gallery (``examples/``) is executed during the build; examples that need a data set
read it from ``$SKMCAD_DATA`` and are skipped, with a note, when it is absent.
"""

import os
import re
import sys
import warnings
from pathlib import Path

# The examples and the API pages import skmcad from the checkout.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))
# One torch / BLAS thread per process unless the caller chose otherwise (see the user guide,
# "Threads"): the gallery runs fastest that way on a shared machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import skmcad  # noqa: E402

project = "skmcad"
author = "skmcad developers"
copyright = "2026, skmcad developers"
version = release = skmcad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5"]

# -- API reference ----------------------------------------------------------------------------
autosummary_generate = True
# members of the private bases of the baselines are theirs; PyOD's, scikit-learn's and torch's are not
autodoc_default_options = {"members": True, "inherited-members": "BaseDetector,_MetadataRequester,Module"}
autodoc_typehints = "none"
autoclass_content = "class"
toc_object_entries_show_parents = "hide"  # "fit()", not "MCADDetector.fit()", in the page toc
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Markdown pages (benchmarks.md) ------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# -- Figures drawn by code in the user guide -------------------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# -- Gallery ------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("skmcad",),
    "backreferences_dir": "generated/backreferences",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "min_reported_time": 0,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}
# Matplotlib's non-GUI backend, and no noise from it in the build log.
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skmcad {release}"
html_static_path = []
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": [], "benchmarks": []}
html_show_sourcelink = False


# -- Tables generated from the code ---------------------------------------------------------------
def _write_auto_values_table():
    """docs/generated/auto_values.inc: what MCADDetector's "auto" parameters take, per
    encoder, read from skmcad.presets so that the user guide cannot drift from the code."""
    from skmcad.presets import AUTO_RULES, AUTO_VALUES

    backbones = list(AUTO_VALUES)
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - parameter"]
    lines += [f"     - {backbone}" for backbone in backbones]  # plain text: it wraps
    for name in next(iter(AUTO_VALUES.values())):
        lines.append(f"   * - ``{name}``")
        # stages and neighbourhood exist for the pretrained backbone only
        lines += [f"     - {AUTO_RULES[backbone, name]}" if (backbone, name) in AUTO_RULES
                  else f"     - {AUTO_VALUES[backbone][name]!r}" if name in AUTO_VALUES[backbone]
                  else "     - (not used)" for backbone in backbones]
    lines += ["", "(columns: the value of ``backbone``; ``\"auto\"`` is ``\"efficientnet-lite0\"``"
              " for images and ``\"mlp\"`` for tables)"]
    out = Path(__file__).parent / "generated" / "auto_values.inc"
    out.parent.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


_write_auto_values_table()


# -- Benchmark run folders ------------------------------------------------------------------------
# benchmarks.md links each run's folder (``results/<run>/``), which GitHub shows as a listing;
# on this site the link goes to the run's own results.md, shown as a page with its files.
_RUN_LINK = re.compile(r"\]\((results/[^)/\s]+)/\)")
_RUN_PAGE = re.compile(r"results/[^/]+/results")


def _benchmark_sources(app, docname, source):
    if docname == "benchmarks":
        def target(match):
            # runs of the benchmark's smaller commands write results.csv only
            has_page = Path(app.srcdir, match[1], "results.md").exists()
            name = "results.md" if has_page else "results.csv"
            return f"]({match[1]}/{name})"

        source[0] = _RUN_LINK.sub(target, source[0])
    elif _RUN_PAGE.fullmatch(docname):
        folder = Path(app.srcdir, docname).parent
        files = ["", "## Files of this run", ""]
        files += [f"- {{download}}`{p.name} <{p.name}>`" for p in sorted(folder.glob("*.csv"))]
        files += ["", *[f"![{p.name}]({p.name})" for p in sorted(folder.glob("*.png"))], ""]
        source[0] = "---\norphan: true\n---\n" + source[0] + "\n".join(files)


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's generated metadata-routing setters (set_fit_request...) are not part of
    # this package's API, and their docstrings cite scikit-learn's own glossary
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("source-read", _benchmark_sources)
    app.connect("autodoc-skip-member", _skip_member)
