"""Size-aware delivery: every output made to fit a Discord message (images recompressed, videos as H.264 MP4).

Public API: ``fit_for_discord(files, per_file_limit=..., total_limit=...) -> FitResult`` (``fit.py``), with
``Upload``, ``FitResult``, ``DEFAULT_LIMIT`` and ``MediaError``. Pure decisions live in ``plan.py``; Pillow work in
``images.py``, PyAV work in ``video.py``, both blocking and run on the media threads, never on the event loop.
"""

from discomfy.media.errors import MediaError
from discomfy.media.fit import FitResult, Upload, fit_for_discord
from discomfy.media.plan import DEFAULT_LIMIT

__all__ = ["DEFAULT_LIMIT", "FitResult", "MediaError", "Upload", "fit_for_discord"]
