"""The demo's `/generate` endpoint via `gradio_client`: results, clear errors, limits, a server that survives."""
from __future__ import annotations

import io
import threading

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import gradio_client  # noqa: F401  (a required test dependency: missing is a failure)
from gradio_client import Client, handle_file  # noqa: E402

from demo.app import build_app, launch  # noqa: E402
from demo.editing import example_scene  # noqa: E402
from demo.labelmap import MAX_FILE_BYTES  # noqa: E402
from demo.tiny import make_tiny_checkpoints  # noqa: E402
from scdm.label_io import index_png  # noqa: E402
from scdm.pipeline import load_pipeline  # noqa: E402

from conftest import free_port  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The demo on tiny random-weight models, served in this process with one torch thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))
    app = build_app(load_pipeline(a, device="cpu"), load_pipeline(b, device="cpu"))
    port = free_port()
    launch(app, port=port, prevent_thread_lock=True, quiet=True)
    yield app, f"http://127.0.0.1:{port}"
    app.close()
    app.handlers.store.cleanup()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[1], verbose=False)


@pytest.fixture(scope="module")
def label_png(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("labels") / "label.png"
    p.write_bytes(index_png(example_scene(4, SIZE).label))
    return str(p)


def write(tmp_path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_only_generate_is_public(client: Client) -> None:
    assert list(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == ["/generate"]


def test_generate_endpoint(client: Client, label_png: str) -> None:
    scdm, sdm, info = client.predict(handle_file(label_png), "none", 0.0, "ancestral", 10, 1.5, 0, 2,
                                     api_name="/generate")
    assert len(scdm) == len(sdm) == 2 and [x["caption"] for x in scdm] == ["SCDM #0", "SCDM #1"]
    assert np.asarray(Image.open(scdm[0]["image"])).shape == (SIZE, SIZE, 3)
    assert "**SCDM** (`tiny-scdm`): 2 images in" in info and "**SDM** (`tiny-sdm`)" in info


def test_empty_sampling_values_are_the_cards_defaults(client: Client, label_png: str) -> None:
    """Sampler "" and steps/guidance None leave them to each card; the trailing settings are optional."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"]
    assert [p["parameter_name"] for p in api][-5:] == ["spacing", "eta", "extrapolation", "dynamic_threshold",
                                                       "precision"]
    scdm, sdm, info = client.predict(handle_file(label_png), "none", 0.0, "", None, None, 0, 1, api_name="/generate")
    assert len(scdm) == len(sdm) == 1 and "ddim, 20 steps (quad spacing), guidance 1.75, eta 1" in info
    assert "all from each model's card" in info
    scdm, sdm, info = client.predict(handle_file(label_png), "none", 0.0, "ddim", 2, 1.5, 0, 1, "ddim", 0.0, None,
                                     None, "fp32", api_name="/generate")
    assert "ddim, 2 steps (ddim spacing), guidance 1.5, eta 0" in info and "fp32" in info
    assert "set: sampler ddim, steps 2, spacing ddim, guidance 1.5, eta 0.0, precision fp32" in info


@pytest.mark.parametrize("args, match", [
    (("nonsense", 0.0, "ancestral", 2, 1.5, 0, 1), "unknown corruption 'nonsense'"),
    (("edge", 7.0, "ancestral", 2, 1.5, 0, 1), r"severity must be in \[0, 1\]"),
    (("edge", "abc", "ancestral", 2, 1.5, 0, 1), "severity must be a number"),
    (("none", 0.0, "euler", 2, 1.5, 0, 1), "unknown sampler 'euler'"),
    (("none", 0.0, "ddim", 0, 1.5, 0, 1), r"steps must be in \[1, 250\]"),
    (("none", 0.0, "ddim", 2, -3, 0, 1), "guidance must be in"),
    (("none", 0.0, "ddim", 2, 1.5, 0, 99), "number of samples must be in"),
    (("none", 0.0, "ddim", 2, 1.5, 0, 1, "uniform"), "unknown spacing 'uniform'"),
    (("none", 0.0, "ddim", 2, 1.5, 0, 1, "", 3.0), r"eta must be in \[0, 1\]"),
    (("none", 0.0, "ddim", 2, 1.5, 0, 1, "", None, None, None, "fp16"), "precision 'fp16' needs a GPU"),
    (("none", 0.0, "ddim", 2000, 1.5, 0, 1), r"steps must be in \[1, 250\]"),
])
def test_nonsense_settings_are_gr_errors(client: Client, label_png: str, args: tuple, match: str) -> None:
    with pytest.raises(Exception, match=match):
        client.predict(handle_file(label_png), *args, api_name="/generate")


@pytest.mark.parametrize("name, data, match", [
    ("empty.png", b"", "the file is empty"),
    ("notes.txt", b"not an image at all", "not a readable image"),
    ("tiny.png", index_png(np.full((2, 2), 3)), "at least 8x8"),
    ("ids.png", index_png(np.full((16, 16), 200)), r"label ids \[200\] are not classes"),
])
def test_bad_files_are_gr_errors(client: Client, tmp_path, name: str, data: bytes, match: str) -> None:
    with pytest.raises(Exception, match=match):
        client.predict(handle_file(write(tmp_path, name, data)), "none", 0.0, "ddim", 2, 1.5, 0, 1,
                       api_name="/generate")


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "JPEG"])
def test_other_image_kinds_work(client: Client, tmp_path, mode: str) -> None:
    from demo.classes import ClassTable
    from scdm.presets import world_labels

    label = example_scene(5, SIZE).label
    table = ClassTable.from_spec(world_labels())
    buf = io.BytesIO()
    if mode == "RGBA":
        Image.fromarray(table.colorize(label)).convert("RGBA").save(buf, format="PNG")
    elif mode == "P":
        Image.fromarray(table.colorize(label)).quantize(16, dither=Image.Dither.NONE).save(buf, format="PNG")
    elif mode == "I;16":
        Image.fromarray(label.astype(np.uint16)).save(buf, format="PNG")
    else:
        Image.fromarray(table.colorize(label).repeat(4, 0).repeat(4, 1)).save(buf, format="JPEG", quality=92)
    path = write(tmp_path, f"label.{'jpg' if mode == 'JPEG' else 'png'}", buf.getvalue())
    scdm, sdm, info = client.predict(handle_file(path), "none", 0.0, "ddim", 2, 1.5, 0, 1, api_name="/generate")
    assert len(scdm) == len(sdm) == 1


def test_server_paths_are_never_read(server) -> None:
    base = f"{server[1]}/gradio_api"
    payload = {"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "none", 0, "ddim", 2, 1.5, 0, 1]}
    r = httpx.post(f"{base}/call/generate", json=payload, timeout=30)
    assert r.status_code == 200
    with httpx.stream("GET", f"{base}/call/generate/{r.json()['event_id']}", timeout=60) as s:
        text = "".join(s.iter_text())
    assert "event: error" in text and "root:" not in text


def test_upload_size_limit(server, tmp_path) -> None:
    big = write(tmp_path, "big.png", b"\x89PNG" + bytes(MAX_FILE_BYTES + 1024))
    with open(big, "rb") as f:
        r = httpx.post(f"{server[1]}/gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60)
    assert r.status_code == 413


def test_concurrent_requests_queue_and_all_finish(client: Client, label_png: str) -> None:
    jobs = [client.submit(handle_file(label_png), "none", 0.0, "ddim", 2, 1.5, seed, 1, api_name="/generate")
            for seed in range(3)]
    results = [j.result(timeout=300) for j in jobs]
    assert all(len(r[0]) == 1 for r in results)
    assert not np.array_equal(np.asarray(Image.open(results[0][0][0]["image"])),
                              np.asarray(Image.open(results[1][0][0]["image"])))  # seeds differ


def test_server_still_serves_after_errors(client: Client, label_png: str) -> None:
    errors = []

    def bad() -> None:
        try:
            client.predict(handle_file(label_png), "nonsense", 0.0, "ddim", 2, 1.5, 0, 1, api_name="/generate")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=bad) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(errors) == 3
    scdm, sdm, _ = client.predict(handle_file(label_png), "edge", 0.3, "ddim", 2, 1.5, 0, 1, api_name="/generate")
    assert len(scdm) == 1 and len(sdm) == 1


def test_a_full_queue_refuses_clearly_and_the_server_recovers(tmp_path, label_png: str) -> None:
    """With room for one waiting job, a burst gets 'queue is full' for the overflow; later requests still work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = make_tiny_checkpoints(tmp_path / "tiny")
    app = build_app(load_pipeline(a, device="cpu"), load_pipeline(b, device="cpu"), concurrency=1)
    port = free_port()
    launch(app, port=port, prevent_thread_lock=True, quiet=True, max_queue=1)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        jobs = [client.submit(handle_file(label_png), "none", 0.0, "ddim", 8, 1.5, seed, 2, api_name="/generate")
                for seed in range(6)]
        done, refused = 0, []
        for job in jobs:
            try:
                job.result(timeout=300)
                done += 1
            except Exception as e:  # noqa: BLE001  (gradio_client raises its own error types)
                refused.append(str(e))
        assert done >= 1 and refused, (done, refused)
        assert all("queue is full" in r.lower() for r in refused), refused
        out = client.predict(handle_file(label_png), "none", 0.0, "ddim", 2, 1.5, 0, 1, api_name="/generate")
        assert len(out[0]) == 1
    finally:
        app.close()
        app.handlers.store.cleanup()
        torch.set_num_threads(before)
