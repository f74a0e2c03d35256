"""Byte-level BPE tokenizers for the microworld models, trained with the `tokenizers` library.

The student splits digits one by one (like Qwen), the teacher groups up to three digits (like
GPT-OSS's o200k), so the two vocabularies differ in more than their size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tessy.microworld.formats import ChatFormat

_SPLIT = {
    "qwen3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "gpt-oss": r"[^\r\n\p{L}\p{N}]?\p{L}+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def _plain_pieces(texts: Iterable[str], fmt: ChatFormat) -> Iterator[str]:
    """The texts with the format's own tokens cut out: BPE merges never span them."""
    own = re.compile("|".join(re.escape(t) for t in (*fmt.special_tokens, *fmt.plain_tokens)))
    for text in texts:
        yield from (piece for piece in own.split(text) if piece)


def train_tokenizer(texts: Iterable[str], fmt: ChatFormat, vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, with the format's tokens and chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT[fmt.family]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(fmt.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_plain_pieces(texts, fmt), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in fmt.plain_tokens])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=fmt.eos,
        pad_token=fmt.pad,
        extra_special_tokens=[t for t in fmt.special_tokens if t not in (fmt.eos, fmt.pad)],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    hf.chat_template = fmt.chat_template
    return hf
