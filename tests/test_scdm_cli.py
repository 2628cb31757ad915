"""`python -m scdm sample | convert` on small inputs, and a slow regression test of the bundled models' quality."""
import numpy as np
import pytest
import torch
from PIL import Image

from scdm.__main__ import main
from scdm.label_io import index_png
from scdm.unet import UNet


def test_sample_writes_every_image_and_resumes(tiny_checkpoint, tmp_path, capsys):
    labels = tmp_path / "labels"
    labels.mkdir()
    world = np.zeros((32, 32), np.uint8) + 3  # sky
    world[20:] = 10  # grass
    (labels / "a.png").write_bytes(index_png(world))
    (labels / "b.png").write_bytes(index_png(world[::-1].copy()))
    out = tmp_path / "out"
    args = ["sample", "--checkpoint", str(tiny_checkpoint), "--labels", str(labels), "--out", str(out),
            "--num-samples", "2", "--steps", "2", "--seed", "5"]
    assert main(args) == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    first = np.asarray(Image.open(out / "a_0.png"))
    assert first.shape == (32, 32, 3) and not np.array_equal(first, np.asarray(Image.open(out / "a_1.png")))
    (out / "a_0.png").unlink()  # a killed run: the missing image is made again, the same one
    assert main(args) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a_0.png")), first)
    with pytest.raises(SystemExit) as stop:  # argparse refuses an unknown rule: one line, exit code 2
        main([*args, "--spacing", "even"])
    assert stop.value.code == 2 and "invalid choice: 'even'" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tiny_checkpoint), "--labels", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
    assert "none" in capsys.readouterr().err


def test_convert_cli_makes_a_loadable_checkpoint_and_refuses_bad_input(tmp_path, capsys):
    from scdm.config import UNetConfig
    from scdm.pipeline import load_pipeline

    cfg = UNetConfig(image_size=32, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,),
                     num_head_channels=64, label_channels=20, spade_hidden=128, groupnorm_groups=32)
    torch.manual_seed(0)
    pt = tmp_path / "model.pt"
    torch.save(UNet(cfg).state_dict(), pt)
    out = tmp_path / "converted"
    assert main(["convert", str(pt), str(out), "--preset", "celebamask_hq", "--hparam", "num_channels=32",
                 "--hparam", "channel_mult=1,2", "--hparam", "num_res_blocks=1", "--hparam", "image_size=32",
                 "--hparam", "attention_resolutions=16"]) == 0
    pipe = load_pipeline(out, device="cpu")
    assert pipe.card.labels.class_names[13] == "hair" and pipe.card.labels.use_edges and not pipe.is_scdm
    assert pipe.resolve().spacing.value == "ddim"  # official cards: the reference 25-step mode
    capsys.readouterr()
    assert main(["convert", str(pt), str(tmp_path / "x"), "--preset", "ade20k"]) == 2  # wrong structure
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "looks like preset 'celebamask_hq'" in err[0]
    assert main(["convert", str(tmp_path / "missing.pt"), str(tmp_path / "y")]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name, readme_miou", [("embedded-scdm", 0.780), ("embedded-sdm", 0.768)])
def test_bundled_models_keep_their_quality(name, readme_miou):
    """64 held-out scenes, the card's default sampler: mIoU within 0.03 of README's "Few-step table" (64 labels)."""
    from bench import segmenter as S
    from scdm.pipeline import load_pipeline
    from scdm.world import WorldConfig, load_or_make_split

    test = load_or_make_split("test", 64, WorldConfig(size=64))
    pipe = load_pipeline(name, device="cpu")
    images = pipe.generate(test["labels"], seed=0, batch_size=16)
    seg = S.load_segmenter("embedded")
    pred = seg.predict(images)
    cm = S.confusion_matrix(S.ids_to_indices(pred, seg.classes), S.ids_to_indices(test["labels"], seg.classes),
                            len(seg.classes))
    miou = S.miou_from_confusion(cm)[0]
    assert miou >= readme_miou - 0.03, f"{name}: mIoU {miou:.3f} on 64 held-out scenes, README {readme_miou}"
