"""Tiny random-weight causal language models (Llama, Qwen2, GPT-2), built offline.

The real model classes at toy width (2 layers, hidden size 32), each with a byte-level BPE
tokenizer trained here, in memory, with the ``tokenizers`` library on a few hundred prompt
words, and saved with the model: ``config.json``, ``generation_config.json``,
``model.safetensors`` and the tokenizer files, as a hub snapshot holds them. Llama and Qwen2
carry a ChatML chat template (as Qwen2.5 and SmolLM2 do); GPT-2 has none, as MagicPrompt's
tokenizer has none, so the family's plain-prompt path is exercised too. They load through the
same ``from_pretrained`` path as a real checkpoint and write random tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limner.tiny.sd import lib, seed_everything
from limner.tiny.tokenizers import WORDS

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VOCAB_SIZE = 512
# ChatML, the template Qwen2.5 and SmolLM2 ship (without their default system turn).
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_text_tokenizer(*, chat: bool) -> Any:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on WORDS; ChatML specials when ``chat``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = [END_OF_TEXT, IM_START, IM_END] if chat else [END_OF_TEXT]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    sentences = [" ".join(WORDS[i : i + 8]) for i in range(0, len(WORDS), 8)]
    tokenizer.train_from_iterator(sentences * 4, trainer=trainer)
    wrapped = lib("transformers").PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END if chat else END_OF_TEXT,
        bos_token=None if chat else END_OF_TEXT,
        pad_token=END_OF_TEXT,
        unk_token=None,
        model_max_length=2048,
    )
    if chat:
        wrapped.chat_template = CHATML
    return wrapped


def _save(dest: Path, config: Any, model_class: str, tokenizer: Any) -> None:
    transformers = lib("transformers")
    seed_everything()
    model = getattr(transformers, model_class)(config).eval()
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)


def _ids(tokenizer: Any) -> dict[str, int]:
    return {
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.convert_tokens_to_ids(END_OF_TEXT),
    }


def _decoder_kwargs() -> dict[str, Any]:
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        # Untied, and 10x the usual init std: logits spread like a trained model's, so greedy
        # decoding wanders over the vocabulary instead of repeating the prompt's last token.
        "tie_word_embeddings": False,
        "initializer_range": 0.2,
    }


def build_llama(dest: Path) -> None:
    """Llama (Llama 3.x, SmolLM2) with a ChatML template."""
    tokenizer = build_text_tokenizer(chat=True)
    config = lib("transformers").LlamaConfig(**_decoder_kwargs(), **_ids(tokenizer))
    _save(dest, config, "LlamaForCausalLM", tokenizer)


def build_qwen2(dest: Path) -> None:
    """Qwen2 (Qwen2.5 Instruct) with a ChatML template."""
    tokenizer = build_text_tokenizer(chat=True)
    config = lib("transformers").Qwen2Config(**_decoder_kwargs(), **_ids(tokenizer))
    _save(dest, config, "Qwen2ForCausalLM", tokenizer)


def build_gpt2(dest: Path) -> None:
    """GPT-2 (MagicPrompt's architecture); no chat template."""
    tokenizer = build_text_tokenizer(chat=False)
    config = lib("transformers").GPT2Config(
        n_embd=32, n_layer=2, n_head=4, n_positions=1024, initializer_range=0.2, **_ids(tokenizer)
    )
    _save(dest, config, "GPT2LMHeadModel", tokenizer)
