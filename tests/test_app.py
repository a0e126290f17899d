"""What ``app.py`` decides itself (the wiring runs in every end-to-end test)."""

from discomfy.app import runnable_actions
from discomfy.bot.custom_ids import ComponentAction
from discomfy.workflows import Kind, Registry


def test_result_buttons_follow_the_loaded_workflows(registry: Registry) -> None:
    """Upscale and Animate get a button only when a workflow of that kind is loaded."""
    assert runnable_actions(registry) == {ComponentAction.UPSCALE, ComponentAction.ANIMATE}
    images_only = Registry(
        {n: w for n, w in registry.workflows.items() if w.kind is Kind.IMAGE},
        defaults={Kind.IMAGE: registry.default(Kind.IMAGE).name},  # type: ignore[union-attr]
    )
    assert runnable_actions(images_only) == set()
