"""Order of the gallery's examples: from a first fit to the larger data sets."""

ORDER = [
    "plot_quick_start.py",
    "plot_pyod_comparison.py",
    "plot_model_search.py",
    "plot_unbalanced.py",
    "plot_save_load.py",
    "plot_cifar10_one_class.py",
    "plot_magnetic_tile_maps.py",
]


class ExampleOrder:
    """sphinx-gallery's ``within_subsection_order``: listed files first, in that order,
    then any other file by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename), "") if filename in ORDER else (len(ORDER), filename)

    def __repr__(self):
        return f"{type(self).__name__}()"
