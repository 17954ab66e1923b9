"""A tiny SigLIP twin of MedSigLIP: ``SiglipModel`` + ``SiglipProcessor`` (``SiglipImageProcessor``
at 448 px, mean/std 0.5; a ``SiglipTokenizer`` over a sentencepiece model trained here on the demo
task's words), saved with ``save_pretrained`` as google/medsiglip-448 is published."""
from __future__ import annotations

from pathlib import Path


def save_tiny_siglip(folder: Path, words: str, seed: int = 0):
    import sentencepiece as spm
    import torch
    from transformers import (SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor,
                              SiglipTextConfig, SiglipTokenizer, SiglipVisionConfig)

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join([words] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=120,
                                   model_type="unigram", hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", minloglevel=2)
    corpus.unlink()
    tok = SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=64)
    proc = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 448, "width": 448},
                                                                image_mean=[0.5] * 3, image_std=[0.5] * 3),
                           tokenizer=tok)
    cfg = SiglipConfig(text_config=SiglipTextConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                                    num_hidden_layers=2, num_attention_heads=2,
                                                    max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                                                    bos_token_id=None,
                                                    eos_token_id=tok.eos_token_id),
                       vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                        num_attention_heads=2, image_size=448, patch_size=28))
    torch.manual_seed(seed)
    model = SiglipModel(cfg).eval()
    with torch.no_grad():  # a trained-looking head: scale 10, bias -5 (the real one is learned)
        model.logit_scale.fill_(float(torch.log(torch.tensor(10.0))))
        model.logit_bias.fill_(-5.0)
    (folder / "spiece.model").unlink()
    (folder / "spiece.vocab").unlink()
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc
