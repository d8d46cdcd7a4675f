"""Builders for the own-task tests: a small random Llama whose BPE tokenizer (trained here with `tokenizers`) has a
ChatML chat template and two end-of-turn tokens, saved to a folder; no download."""

from __future__ import annotations

from pathlib import Path

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = ["what is 2 + 3 ? the answer is 5", "say hello to the user", "a short reply please",
          "count the words in this sentence", "the quick brown fox jumps over the lazy dog"] * 20


def build_chat_llama(folder: Path, *, embedding_rows: int | None = None, chat_template: bool = True) -> Path:
    """Save a 2-layer random Llama and its tokenizer to `folder`. generation_config ends a turn at <|im_end|> or
    <|endoftext|>; the tokenizer's own EOS is <|im_end|>. `embedding_rows` smaller than the vocabulary makes a
    model its tokenizer does not fit."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  chat_template=CHATML if chat_template else None)
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    cfg = LlamaConfig(vocab_size=embedding_rows or len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                               pad_token_id=ids["<|endoftext|>"])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


REWARDS_PY = '''
def brevity(prompts, completions, target_words, **kwargs):
    """1 for a reply of exactly `target_words` words, less the further off it is."""
    return [max(0.0, 1.0 - abs(len(c.split()) - t) / 4) for c, t in zip(completions, target_words)]


def boom(prompts, completions, **kwargs):
    raise KeyError("answer")


def short(prompts, completions, **kwargs):
    return [1.0]


def words(prompts, completions, **kwargs):
    return ["good" for _ in completions]
'''


def write_task_files(folder: Path, rows: int = 6) -> tuple[Path, Path]:
    """A JSONL dataset (prompt + target_words) and a reward module; returns their paths."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"say {n} words", "target_words": n}) + "\n"
                            for n in range(1, rows + 1)))
    module = folder / "my_rewards.py"
    module.write_text(REWARDS_PY)
    return data, module
