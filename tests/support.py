"""What several test files share: the shipped workflows and fast settings for the job websocket."""

from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
#: ``JobStream`` options that keep fault tests short (reconcile after 0.5 s of silence, give up after 3 s).
FAST_STREAM = {"silence_timeout": 0.5, "connect_timeout": 2.0, "unreachable_timeout": 3.0, "fetch_deadline": 5.0}
