"""`ctxsynth view`: one run as a page a person reads in the browser, offline.

`build_view(run_dir)` writes RUN_DIR/view/index.html and its files (script, style, the data as
chunked script files); `PageServer` serves the folder on 127.0.0.1 for `--serve`.
"""

from ctxsynth.view.build import build_view
from ctxsynth.view.serve import PageServer

__all__ = ["PageServer", "build_view"]
