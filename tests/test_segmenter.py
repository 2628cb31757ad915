"""bench.segmenter: confusion matrix / mIoU against hand counts, loading paths, batch-size independence."""

import json

import numpy as np
import pytest
import torch

import segmentation_models_pytorch
smp = segmentation_models_pytorch

from bench import segmenter as S  # noqa: E402
from scdm.world import CLASS_IDS, WorldConfig, make_split  # noqa: E402


# ---------------------------------------------------------------------------------------------- mIoU maths

def test_confusion_matrix_matches_hand_count():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    cm = S.confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    expected = np.array([[1, 1, 0],   # target 0: one right, one called 1
                         [0, 1, 1],   # target 1: one right, one called 2
                         [0, 0, 1]])  # target 2: right; the ignored pixel is not counted
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(S.confusion_matrix(torch.as_tensor(pred), torch.as_tensor(target), 3), expected)


def test_miou_from_confusion_hand_computed_and_absent_classes_skipped():
    cm = np.array([[1, 1, 0, 0],
                   [0, 1, 1, 0],
                   [0, 0, 1, 0],
                   [0, 0, 0, 0]])  # class 3 absent from target and prediction
    miou, iou = S.miou_from_confusion(cm)
    # IoU_c = TP / (row + col - TP): 1/(2+1-1), 1/(2+2-1), 1/(1+2-1)
    np.testing.assert_allclose(iou[:3], [1 / 2, 1 / 3, 1 / 2])
    assert np.isnan(iou[3])
    assert miou == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    # a class that is only predicted (never in the target) counts, with IoU 0
    cm2 = np.array([[2, 1], [0, 0]])
    miou2, iou2 = S.miou_from_confusion(cm2)
    np.testing.assert_allclose(iou2, [2 / 3, 0.0])
    assert miou2 == pytest.approx(1 / 3)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="predictions must be in"):
        S.confusion_matrix(np.array([3]), np.array([0]), num_classes=3)
    with pytest.raises(ValueError, match="target values"):
        S.confusion_matrix(np.array([0]), np.array([7]), num_classes=3, ignore_index=255)
    with pytest.raises(ValueError, match="same number of pixels"):
        S.confusion_matrix(np.zeros(3, int), np.zeros(4, int), num_classes=3)
    with pytest.raises(ValueError, match="square"):
        S.miou_from_confusion(np.zeros((2, 3)))


def test_ids_to_indices():
    ids = np.array([[0, 2, 3], [67, 5, 99]])
    out = S.ids_to_indices(ids, CLASS_IDS)
    np.testing.assert_array_equal(out, [[255, 0, 1], [11, 2, 255]])


# ---------------------------------------------------------------------------------------------- loading

def _tiny_config(**kw) -> S.SegmenterConfig:
    arch = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}
    return S.SegmenterConfig(architecture="Unet", encoder="resnet18", arch_kwargs=arch, classes=(2, 3, 5),
                             class_names=("building", "sky", "tree"), model_size=None, **kw)


def _images(n=5, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_segmenter_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    config = _tiny_config()
    model = S.build_model(config)
    S.save_segmenter(tmp_path / "seg", model, config)
    seg = S.load_segmenter(tmp_path / "seg")
    assert seg.classes == (2, 3, 5) and seg.name == "seg"
    imgs = _images()
    pred = seg.predict(imgs, batch_size=2)
    assert isinstance(pred, np.ndarray) and pred.shape == (5, 32, 32) and pred.dtype == np.int64
    assert set(np.unique(pred)) <= {2, 3, 5}
    # float16 storage: the loaded net equals the original with float16-rounded weights
    ref = S.build_model(config)
    ref.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    ref_seg = S.Segmenter(ref, config.classes, name="ref", mean=config.mean, std=config.std)
    np.testing.assert_array_equal(ref_seg.predict(imgs), pred)
    # torch in -> torch out; odd sizes are padded to a multiple of 32 and cropped back
    out = seg.predict(torch.as_tensor(_images(2, 40)))
    assert torch.is_tensor(out) and out.shape == (2, 40, 40)


def test_predict_is_batch_size_independent(tmp_path):
    torch.manual_seed(1)
    config = _tiny_config()
    S.save_segmenter(tmp_path, S.build_model(config), config)
    seg = S.load_segmenter(tmp_path)
    imgs = _images(7, seed=3)
    full = seg.predict(imgs, batch_size=7)
    np.testing.assert_array_equal(seg.predict(imgs, batch_size=1), full)
    np.testing.assert_array_equal(seg.predict(imgs, batch_size=3), full)
    np.testing.assert_array_equal(seg.predict(imgs[4:5])[0], full[4])


def test_smp_save_pretrained_directory_uses_the_hub_code_path(tmp_path):
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 8), classes=4)
    model.save_pretrained(str(tmp_path))
    assert "_model_class" in json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(ValueError, match="pass classes="):
        S.load_segmenter(tmp_path)
    with pytest.raises(ValueError, match="predicts 4 classes"):
        S.load_segmenter(tmp_path, classes=(1, 2))
    seg = S.load_segmenter(tmp_path, classes=(10, 20, 30, 40), model_size=64)
    pred = seg.predict(_images(3))
    assert pred.shape == (3, 32, 32) and set(np.unique(pred)) <= {10, 20, 30, 40}
    with torch.no_grad():  # equals running the smp model by hand (ImageNet normalisation, 64 px)
        x = torch.as_tensor(_images(3)).permute(0, 3, 1, 2).float() / 255
        x = (x - torch.tensor(S.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(S.IMAGENET_STD).view(1, 3, 1, 1)
        x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        logits = torch.nn.functional.interpolate(model.eval()(x), size=(32, 32), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(pred, np.array([10, 20, 30, 40])[logits.argmax(1).numpy()])


def test_hub_id_offline_gives_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(smp, "from_pretrained", offline)
    monkeypatch.setattr(S, "_hf_offline", lambda: False)
    with pytest.raises(RuntimeError, match="Hugging Face Hub"):
        S.load_segmenter("smp-hub/segformer-b0-512x512-ade-160k")
    monkeypatch.setattr(S, "_hf_offline", lambda: True)
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        S.load_segmenter("smp-hub/segformer-b0-512x512-ade-160k")
    assert S._hub_defaults("smp-hub/segformer-b0-512x512-ade-160k") == (tuple(range(1, 151)), 512)
    assert len(S._hub_defaults("smp-hub/segformer-b2-1024x1024-city-160k")[0]) == 19
    with pytest.raises(ValueError, match="pass classes="):
        S.load_segmenter("someone/some-model")
    with pytest.raises(ValueError, match="neither"):
        S.load_segmenter("no/such/dir")


def test_bad_config_is_a_value_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format": S.FORMAT, "architecture": "Unet", "colour": 1}))
    with pytest.raises(ValueError, match="unknown"):
        S.load_segmenter(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        S.load_segmenter(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------- embedded

@pytest.fixture(scope="module")
def embedded():
    assert (S.EMBEDDED_DIR / S.CONFIG_NAME).is_file(), "the bundled embedded segmenter is missing"
    return S.load_segmenter("embedded")


def test_embedded_segmenter_scores_world_test_scenes(embedded):
    assert embedded.classes == CLASS_IDS and embedded.name == "embedded"
    assert sum(f.stat().st_size for f in S.EMBEDDED_DIR.iterdir()) < 20 * 2**20
    test = make_split("test", 12, WorldConfig(size=64), start=5000)  # scenes beyond the scored ones
    pred = embedded.predict(test["images"], batch_size=5)
    np.testing.assert_array_equal(embedded.predict(test["images"], batch_size=12), pred)
    cm = S.confusion_matrix(S.ids_to_indices(pred, CLASS_IDS), S.ids_to_indices(test["labels"], CLASS_IDS), 12)
    assert np.trace(cm) / cm.sum() > 0.85  # pixel accuracy
    assert S.miou_from_confusion(cm)[0] > 0.6  # measured here (README: 0.761 on 1000 held-out scenes)


# ---------------------------------------------------------------------------------------------- training

def test_confusion_matrix_per_image_sums_to_the_whole_set():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, (3, 5, 5))
    target[0, 0, :] = 255  # ignored
    pred = rng.integers(0, 3, (3, 5, 5))
    per = S.confusion_matrix(pred, target, 3 + 1, per_image=True)
    assert per.shape == (3, 4, 4) and per.dtype == np.int64
    np.testing.assert_array_equal(per.sum(0), S.confusion_matrix(pred, target, 4))
    for i in range(3):
        np.testing.assert_array_equal(per[i], S.confusion_matrix(pred[i], target[i], 4))


def test_train_segmenter_resumes_like_an_unbroken_run(tmp_path, monkeypatch):
    """Every draw of step s follows from (seed, s) and the state (read with weights_only=True) is written
    atomically: a run killed after step 2 and resumed writes the weights of an unbroken run."""
    from bench import train_segmenter as T

    monkeypatch.setenv("SCDM_CACHE", str(tmp_path / "cache"))
    flags = ["--steps", "3", "--batch-size", "2", "--n-train", "6", "--n-test", "2", "--decoder-channels", "8", "8",
             "8", "8", "8", "--threads", "1"]
    assert T.main(["--out", str(tmp_path / "a"), *flags]) == 0

    class Killed(Exception):
        pass

    calls = []
    logits = T.network_logits

    def dies_in_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed()
        return logits(*args, **kwargs)

    monkeypatch.setattr(T, "network_logits", dies_in_step_3)
    with pytest.raises(Killed):
        T.main(["--out", str(tmp_path / "b"), *flags, "--save-every", "1"])
    state = torch.load(tmp_path / "b" / T.STATE_NAME, weights_only=True)
    assert state["step"] == 2 and "generator" not in state
    monkeypatch.setattr(T, "network_logits", logits)
    assert T.main(["--out", str(tmp_path / "b"), *flags, "--save-every", "1"]) == 0
    assert not (tmp_path / "b" / T.STATE_NAME).exists()
    assert (tmp_path / "a" / S.WEIGHTS_NAME).read_bytes() == (tmp_path / "b" / S.WEIGHTS_NAME).read_bytes()
    assert S.SegmenterConfig.from_json((tmp_path / "b" / S.CONFIG_NAME).read_text()).training["steps"] == 3
