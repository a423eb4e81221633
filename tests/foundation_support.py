"""Tiny foundation models for the tests, built from a config with random weights and saved with
``save_pretrained`` into a folder (never downloaded): what ``--encoder hf:<folder>`` loads."""

from __future__ import annotations

from pathlib import Path

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _quiet():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def save_vit(folder: Path, size: int = 32) -> Path:
    _quiet()
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=size, patch_size=8, **TINY)).save_pretrained(folder)
    ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def save_dinov2(folder: Path, size: int = 32) -> Path:
    _quiet()
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(image_size=size, patch_size=8, **TINY)).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": size + 4}, crop_size={"height": size, "width": size},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def save_clip(folder: Path, size: int = 32) -> Path:
    """A tiny CLIP (vision and text towers, projection 16) with a character-level tokenizer."""
    _quiet()
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])  # characters only: no merges
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=32, bos_token_id=0,
                                      eos_token_id=1, pad_token_id=1, **TINY),
                     vision_config=dict(image_size=size, patch_size=8, **TINY), projection_dim=16)
    CLIPModel(cfg).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_ast(folder: Path, sampling_rate: int = 8000) -> Path:
    _quiet()
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    torch.manual_seed(0)
    ASTModel(ASTConfig(num_mel_bins=16, max_length=64, frequency_stride=4, time_stride=4, patch_size=8,
                       **TINY)).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=16, max_length=64, sampling_rate=sampling_rate).save_pretrained(folder)
    return folder


def save_wav2vec2(folder: Path, sampling_rate: int = 8000) -> Path:
    _quiet()
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                 **TINY)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate).save_pretrained(folder)
    return folder
