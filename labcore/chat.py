"""Prompts as an instruct model expects them: its chat template, and every token that ends its turn.

An instruct tokenizer carries a chat template (a Jinja string) that wraps messages in the model's own markers, e.g.
ChatML's `<|im_start|>user\n18 + 16 =<|im_end|>\n<|im_start|>assistant\n`. Sampling from the raw text instead
gives the model a prompt it never saw in training. `rollout.chat_template` picks:

- auto: the template when the tokenizer has one (a text prompt becomes one user message), else the text as is;
- on: the template, and a clear error when the tokenizer has none;
- off: the text as is (a prompt that is a list of messages is then an error: it has no text form).

Instruct models also end a turn with more than one token (Qwen2: `<|im_end|>` and `<|endoftext|>`; Llama 3:
`<|eot_id|>` and `<|end_of_text|>`), listed in `generation_config.eos_token_id`; `eos_token_ids` gathers them all.
Left out: multi-turn rollouts (the model answers one assistant turn) and tool calls.
"""

from __future__ import annotations

from labcore.config import ConfigError

CHAT_TEMPLATE_MODES = {
    "auto": "use the tokenizer's chat template when it has one",
    "on": "always use the chat template (an error if the tokenizer has none)",
    "off": "never: prompts are tokenised as plain text",
}


def uses_chat_template(tokenizer, mode: str, model_name: str = "the policy") -> bool:
    """Whether prompts go through the tokenizer's chat template under `rollout.chat_template = mode`."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        raise ConfigError([f"rollout.chat_template = 'on' but the tokenizer of {model_name} has no chat template "
                           "(no 'chat_template' in tokenizer_config.json or chat_template.jinja); use 'auto' or "
                           "'off', or add a template to the tokenizer."])
    return has and mode != "off"


def render_prompt(tokenizer, prompt: str | list[dict], chat: bool) -> str:
    """The text to tokenise for one prompt: a text, or a list of {"role", "content"} messages.

    With `chat`, the template renders the messages (a text becomes one user message) and opens the assistant's
    turn; its special tokens are in the text, so encode it without adding any.
    """
    if chat:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if isinstance(prompt, str):
        return prompt
    raise ConfigError(["a prompt is a list of chat messages, but chat templates are off (rollout.chat_template = "
                       "'off', or the tokenizer has none); set rollout.chat_template = 'auto' with a tokenizer that "
                       "has a template, or give the prompts as text."])


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the generation config's EOS ids (an int or a list) and the tokenizer's."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    gen = getattr(base, "generation_config", None)
    ids: list[int] = []
    for source in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        for i in [source] if isinstance(source, int) else list(source or []):
            if int(i) not in ids:
                ids.append(int(i))
    return ids
