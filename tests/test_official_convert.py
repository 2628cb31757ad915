"""`convert_official`: an official-layout `.pt` becomes a checkpoint that loads and gives the same outputs."""
import numpy as np
import pytest
import torch

from scdm import convert_official, load_pipeline
from scdm.config import UNetConfig
from scdm.unet import UNet

CFG = UNetConfig(image_size=32, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,),
                 num_head_channels=64, label_channels=7, spade_hidden=128, groupnorm_groups=32)


@pytest.fixture()
def official_pt(tmp_path):
    torch.manual_seed(0)
    model = UNet(CFG)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_convert_inferred_and_hparams_give_identical_outputs(official_pt, tmp_path):
    model, path = official_pt
    # read off the tensors, all 7 label channels are classes; with no_instance=False the last one is the edge
    a = load_pipeline(convert_official(path, tmp_path / "a", kappa=np.linspace(1, 50, 7)))
    b = load_pipeline(convert_official(path, tmp_path / "b", image_size=32, num_classes=6, no_instance=False,
                                       num_channels=32, num_res_blocks=1, channel_mult="1,2",
                                       attention_resolutions="16", num_head_channels=64))
    x, t, y = torch.randn(1, 3, 32, 32), torch.tensor([10.0]), torch.rand(1, 7, 32, 32).round()
    with torch.no_grad():
        ref = model(x, t, y)
        assert torch.allclose(a.model(x, t, y), ref, atol=1e-6) and torch.allclose(b.model(x, t, y), ref, atol=1e-6)
    assert a.is_scdm and not b.is_scdm and b.card.labels.use_edges and b.card.labels.num_classes == 6
    assert a.card.unet.channel_mult == b.card.unet.channel_mult == CFG.channel_mult


def test_mismatch_names_keys_shapes_and_preset(official_pt, tmp_path):
    _, path = official_pt
    with pytest.raises(ValueError) as e:
        convert_official(path, tmp_path / "x", preset="ade20k")
    msg = str(e.value)
    assert "missing" in msg and "mis-shaped" in msg and "preset" in msg
    with pytest.raises(ValueError, match="unknown preset"):
        convert_official(path, tmp_path / "x", preset="cityscapes")
    with pytest.raises(ValueError, match="unknown official hyper-parameters"):
        convert_official(path, tmp_path / "x", learning_rate=1)
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        convert_official(tmp_path / "junk.pt", tmp_path / "y")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_converted_ade20k_card_carries_class_names_and_palette(tmp_path):
    """A preset's card (OFFICIAL_CARDS) brings the dataset's names and palette into config.json."""
    import json
    from dataclasses import replace

    from scdm.checkpoint import read_card
    from scdm.presets import OFFICIAL_CARDS

    official = OFFICIAL_CARDS["ade20k"]()
    cfg = replace(CFG, label_channels=official.unet.label_channels)  # 151: the ADE20K encoding, no edge channel
    path = tmp_path / "ade.pt"
    torch.save(UNet(cfg).state_dict(), path)
    out = convert_official(path, tmp_path / "ade", preset="ade20k", image_size=32, num_channels=32, num_res_blocks=1,
                           channel_mult="1,2", attention_resolutions="16", num_head_channels=64)
    labels = json.loads((out / "config.json").read_text())["labels"]
    assert labels["class_names"][0] == "wall" and labels["class_names"][150] == "unlabeled"
    assert len(labels["class_names"]) == len(labels["palette"]) == 151 and labels["palette"][0] == [120, 120, 120]
    assert read_card(out).labels == official.labels


def test_boolean_hyper_parameters_parse_as_the_official_cli_writes_them():
    from scdm.official import parse_bool

    assert parse_bool("no_instance", "False") is False and parse_bool("no_instance", "True") is True
    assert parse_bool("learn_sigma", False) is False and parse_bool("learn_sigma", "1") is True
    with pytest.raises(ValueError, match="no_instance must be True or False"):
        parse_bool("no_instance", "maybe")


def test_converted_checkpoint_files_follow_the_umask(tmp_path):
    import os
    import stat

    from scdm.checkpoint import save_checkpoint
    from scdm.config import ModelCard
    from scdm.presets import TINY_UNET
    from scdm.unet import UNet

    old = os.umask(0o022)
    try:
        out = save_checkpoint(tmp_path / "ck", UNet(TINY_UNET).state_dict(), ModelCard(unet=TINY_UNET))
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644  # readable by the lab, not 0600
