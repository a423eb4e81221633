"""Foundation encoders (``hf:`` folders) of each family load from a tiny model saved by the test and embed."""

from __future__ import annotations

import numpy as np
import pytest

from alsql.errors import AlsqlError
from tests.conftest import need_module
from tests.foundation_support import save_ast, save_clip, save_dinov2, save_vit, save_wav2vec2
from tests.media_support import make_tone

need_module("transformers")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"vit": save_vit(root / "vit"), "dinov2": save_dinov2(root / "dinov2"), "clip": save_clip(root / "clip"),
            "ast": save_ast(root / "ast"), "wav2vec2": save_wav2vec2(root / "w2v")}


def _images(n: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("name", ["vit", "dinov2"])
def test_image_backbones_embed_images_from_a_saved_folder(models, name):
    from alsql.models.foundation import load_foundation

    enc = load_foundation(f"hf:{models[name]}")
    assert (enc.family, enc.kinds, enc.dim, enc.image_size) == ("image", ("image", "video"), 32, 32)
    imgs = _images(3)
    v = enc.embed("image", imgs)
    assert v.shape == (3, 32) and v.dtype == np.float32 and np.isfinite(v).all()
    assert not np.allclose(v[0], v[1])  # different images, different vectors
    again = load_foundation(f"hf:{models[name]}")
    np.testing.assert_allclose(again.embed("image", imgs), v, rtol=1e-5, atol=1e-5)
    assert again.fingerprint == enc.fingerprint and len(enc.fingerprint) == 64


def test_preprocessing_comes_from_the_processor_config(models):
    from alsql.models.foundation import load_foundation

    dino = load_foundation(f"hf:{models['dinov2']}")
    assert dino.preprocess["size"] == 32  # the crop size, not the resize edge (36)
    assert dino.preprocess["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert dino.preprocess["std"] == pytest.approx([0.229, 0.224, 0.225])
    vit = load_foundation(f"hf:{models['vit']}")
    assert vit.preprocess["mean"] == pytest.approx([0.5, 0.5, 0.5])
    # Normalisation is applied: the same pixels through both normalisations give different vectors.
    img = _images(1)
    import torch

    x = torch.from_numpy(np.stack(img)).permute(0, 3, 1, 2).float() / 255
    raw = dino.model(pixel_values=x).last_hidden_state[:, 0].detach().numpy()
    assert not np.allclose(raw, dino.embed("image", img), atol=1e-4)


def test_video_segments_are_frames_of_the_image_model_mean_pooled(models):
    import torch

    from alsql.models.foundation import load_foundation

    enc = load_foundation(f"hf:{models['vit']}")
    frames = [torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in _images(4, seed=3)]
    seg = torch.stack(frames)  # (T, 3, S, S) in [0, 1], as decode_video gives
    v = enc.embed("video", [seg, seg.flip(0)])
    per_frame = enc.embed("image", [(f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for f in frames])
    assert v.shape == (2, 32)
    np.testing.assert_allclose(v[0], per_frame.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(v[0], v[1], rtol=1e-4, atol=1e-4)  # frame order does not matter to a mean


def test_clip_embeds_images_and_text_in_one_space(models):
    from alsql.models.foundation import embed_text, load_foundation

    enc = load_foundation(f"hf:{models['clip']}")
    assert enc.family == "clip" and enc.dim == 16
    iv = enc.embed("image", _images(2))
    tv = embed_text(f"hf:{models['clip']}", ["a red cat", "dog", "a red cat"])
    assert iv.shape == (2, 16) and tv.shape == (3, 16) and tv.dtype == np.float32
    np.testing.assert_allclose(tv[0], tv[2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(tv[0], tv[1])


def test_text_of_a_model_without_a_text_tower_is_one_clear_error(models):
    from alsql.models.foundation import embed_text

    with pytest.raises(AlsqlError, match="has no text tower; expected a CLIP-like model"):
        embed_text(f"hf:{models['vit']}", ["cat"])


@pytest.mark.parametrize("name", ["ast", "wav2vec2"])
def test_audio_backbones_embed_waveforms_at_the_extractors_rate(models, name, tmp_path):
    from alsql.media.audio import decode_waveform
    from alsql.models.foundation import load_foundation

    enc = load_foundation(f"hf:{models[name]}")
    assert (enc.family, enc.kinds, enc.sample_rate, enc.dim) == ("audio", ("audio",), 8000, 32)
    low = decode_waveform(str(make_tone(tmp_path / "low.wav", seconds=2, sr=16000, freq=220)), 0.0, 1.0, 8000)
    high = decode_waveform(str(make_tone(tmp_path / "high.wav", seconds=2, sr=16000, freq=1500)), 0.5, 1.5, 8000)
    assert low.shape == (8000,) and high.shape == (8000,)  # resampled from 16 kHz to the extractor's 8 kHz
    v = enc.embed("audio", [low, high, low])
    assert v.shape == (3, 32) and np.isfinite(v).all()
    np.testing.assert_allclose(v[0], v[2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(v[0], v[1])
    with pytest.raises(AlsqlError, match="reads audio items, not image"):
        enc.embed("image", _images(1))


def test_the_fingerprint_follows_the_weights(models, tmp_path):
    import torch

    from alsql.models.foundation import folder_fingerprint

    a = folder_fingerprint(models["vit"])
    other = save_vit(tmp_path / "vit2")
    assert folder_fingerprint(other) == a  # same config, same seeded weights
    from transformers import ViTModel

    m = ViTModel.from_pretrained(other)
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    m.save_pretrained(other)
    assert folder_fingerprint(other) != a


@pytest.mark.parametrize("spec, match", [
    ("hf:/no/such/folder", "hf:/no/such/folder: no such local folder or cached model"),
    ("hf:no-such-owner/no-such-model", "no such local folder or cached model.*HF_HUB_OFFLINE=1"),
    ("hf:", "expected pretrained, hf:NAME_OR_FOLDER"),
    ("timm:resnet", "expected pretrained, hf:NAME_OR_FOLDER"),
])
def test_a_missing_or_wrong_model_is_one_clear_error(spec, match, monkeypatch):
    from alsql.models.foundation import load_foundation

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the network, also on a machine that has it
    with pytest.raises(AlsqlError, match=match) as info:
        load_foundation(spec)
    assert "\n" not in str(info.value)


def test_a_folder_that_is_not_a_model_is_one_clear_error(tmp_path, models):
    import shutil

    from alsql.models.foundation import load_foundation

    (tmp_path / "empty").mkdir()
    with pytest.raises(AlsqlError, match="has no config.json; expected a model saved with save_pretrained"):
        load_foundation(f"hf:{tmp_path / 'empty'}")
    shutil.copytree(models["vit"], tmp_path / "noproc")
    (tmp_path / "noproc" / "preprocessor_config.json").unlink()
    with pytest.raises(AlsqlError, match="no image processor config"):
        load_foundation(f"hf:{tmp_path / 'noproc'}")


def test_torchvision_where_it_does_not_import_is_one_clear_error():
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - the case under test
        pass
    else:
        pytest.skip("torchvision imports here; its models need downloaded weights")
    from alsql.models.foundation import load_foundation

    with pytest.raises(AlsqlError, match="torchvision:resnet18: torchvision does not import here"):
        load_foundation("torchvision:resnet18")
