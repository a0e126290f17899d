from discomfy.comfy.pool import ServerState, pick_server
from discomfy.workflows import models_on_server


def server(url: str, *, healthy: bool = True, in_flight: int = 0, queue: int = 0, models: tuple[str, ...] = ()):
    return ServerState(url, healthy=healthy, in_flight=in_flight, queue_size=queue, models=frozenset(models))


def test_pick_prefers_the_least_loaded_server() -> None:
    servers = [server("a", queue=3), server("b", queue=1)]
    assert pick_server(servers, (), capacity=2) is servers[1]


def test_pick_skips_unhealthy_and_full_servers() -> None:
    servers = [server("a", healthy=False), server("b", in_flight=2), server("c", queue=9)]
    assert pick_server(servers, (), capacity=2) is servers[2]


def test_pick_requires_every_needed_model() -> None:
    servers = [server("a", models=("sd15.safetensors",)), server("b", queue=5, models=("sd15.safetensors", "x.pth"))]
    assert pick_server(servers, {"sd15.safetensors", "x.pth"}, capacity=2) is servers[1]


def test_pick_returns_none_when_nothing_fits() -> None:
    assert pick_server([server("a", in_flight=1)], (), capacity=1) is None


def test_ties_go_to_the_first_listed_server() -> None:
    servers = [server("a"), server("b")]
    assert pick_server(servers, (), capacity=1) is servers[0]


def test_models_are_read_from_loader_choices_in_both_combo_forms() -> None:
    info = {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.ckpt"], {}]}}},
        "UpscaleModelLoader": {"input": {"required": {"model_name": [["4x.pth"], {}]}}},
        "ImageScale": {"input": {"required": {"upscale_method": [["bilinear"], {}], "width": ["INT", {}]}}},
        "NewLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["x.safetensors"]}]}}},
        "Broken": {"input": None},
    }
    assert models_on_server(info) == {"a.safetensors", "b.ckpt", "4x.pth", "x.safetensors"}
