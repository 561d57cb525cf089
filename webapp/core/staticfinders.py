"""Serve plotly.js from the installed `plotly` package (there is no CDN on our machines)."""

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STATIC_PATH = "vendor/plotly.min.js"


class PlotlyFinder(BaseFinder):
    """Exposes exactly one file, `vendor/plotly.min.js`, taken from the plotly package."""

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path == STATIC_PATH and PLOTLY_JS.exists():
            return [str(PLOTLY_JS)] if find_all else str(PLOTLY_JS)
        return []

    def list(self, ignore_patterns):
        storage = FileSystemStorage(location=str(PLOTLY_JS.parent))
        storage.prefix = "vendor"
        yield PLOTLY_JS.name, storage
