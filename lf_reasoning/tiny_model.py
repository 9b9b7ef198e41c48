"""Build a tiny random-weights Qwen3 model and tokenizer locally, with no download.

Tests, `make demo` and benchmarks need a real model directory that LLaMA-Factory can load and train in
seconds on a CPU. The tokenizer is a byte-level BPE trained on a small built-in corpus (English, Chinese,
digits, LaTeX), so any text tokenizes without unknowns. Its special tokens cover the ``qwen3`` template
(``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<think>``, ``</think>``) and the ``deepseekr1``
template, whose BOS/EOS are taken from the tokenizer: BOS is ``<｜begin▁of▁sentence｜>`` and EOS is
``<｜end▁of▁sentence｜>`` as in the DeepSeek-R1-Distill tokenizers, so ``deepseekr1`` renders as for a real
R1-Distill model, and ``qwen3`` (``replace_eos``) swaps EOS for ``<|im_end|>`` as usual.

Usage: ``python -m lf_reasoning.tiny_model OUT_DIR [CORPUS_FILE ...]`` builds the model (if missing) and prints its
path. Corpus files (text, e.g. your training data) are added to the tokenizer's corpus, with a larger vocabulary,
so their characters and words become tokens instead of bytes: shorter sequences that a model this small can learn
from.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BOS_TOKEN = "<｜begin▁of▁sentence｜>"
EOS_TOKEN = "<｜end▁of▁sentence｜>"
PAD_TOKEN = "<|endoftext|>"
# Special tokens (skipped by ``decode(skip_special_tokens=True)``), as in Qwen3 / DeepSeek-R1 tokenizers.
USER_TOKEN, ASSISTANT_TOKEN = "<｜User｜>", "<｜Assistant｜>"
SPECIAL_TOKENS = [PAD_TOKEN, "<|im_start|>", "<|im_end|>", BOS_TOKEN, EOS_TOKEN, USER_TOKEN, ASSISTANT_TOKEN]
# Added but not special, like Qwen3's: they survive ``skip_special_tokens=True``.
ADDED_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
# Files whose presence means a complete build (config.json is written last).
_REQUIRED_FILES = ("tokenizer.json", "tokenizer_config.json", "model.safetensors", "config.json")

_CORPUS = """\
The quick brown fox jumps over the lazy dog. A user asks a question and the assistant answers it.
Let me think step by step. First, we compute the sum; then we check the result. So the answer is 42.
If x + y = 10 and x - y = 2, then x = 6 and y = 4. Therefore the final answer is \\boxed{6}.
We have $\\frac{a}{b} + \\frac{c}{d} = \\frac{ad + bc}{bd}$ and $\\sqrt{x^2 + y^2} \\le |x| + |y|$.
\\begin{align} f(x) &= x^{2} - 3x + 2 \\\\ f'(x) &= 2x - 3 \\end{align} \\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}
\\int_0^1 x\\,dx = \\tfrac12, \\alpha, \\beta, \\gamma, \\pi \\approx 3.14159, \\times \\cdot \\ne \\geq
\\infty, \\lim_{n \\to \\infty} (1 + 1/n)^n = e, \\mathbb{R}, \\in, \\subseteq, \\left( \\right), \\text{km}
0 1 2 3 4 5 6 7 8 9 10 11 12 100 256 1024 2048 3.5 -7 1e-5 (a, b) [c] {d} <e> "f" 'g' #h @i %j &k *l =m ~n
Okay, so the problem says: how many apples are left? Wait, let me re-check. Hmm, that seems right.
def add(a, b):\n    return a + b\nprint(add(2, 3))  # 5\nimport json; json.dumps({"key": "value"})
我们来一步一步地思考这个问题。首先，计算总和；然后检查结果。所以答案是四十二。
你好，世界！请问今天天气怎么样？这是一个关于数学和推理的问题，答案是：六。
设函数的定义域为实数，求方程的解。因为三角形的两边之和大于第三边，所以结论成立。
用户提出了问题，助手给出了回答。思考过程如下：先分析条件，再列出方程，最后求解并验证。
"""


def _corpus() -> list[str]:
    """The built-in corpus plus generated numbers, arithmetic and the first 800 CJK ideographs."""
    lines = _CORPUS.splitlines() * 4
    pairs = [(a, b) for a in range(0, 200, 7) for b in range(3, 90, 11)]
    lines += [f"{a} + {b} = {a + b}, {a} \\times {b} = {a * b}" for a, b in pairs]
    cjk = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 800))
    lines += [cjk[i : i + 40] for i in range(0, len(cjk), 40)] * 2
    return lines


def _is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in _REQUIRED_FILES)


def build_tiny_model(
    out_dir: str | Path, *, seed: int = 0, corpus: Sequence[str] = (), vocab_size: int | None = None
) -> Path:
    """Create a tiny random Qwen3 causal LM plus fast tokenizer in ``out_dir`` and return its path.

    ``corpus`` adds texts to the tokenizer's training corpus; ``vocab_size`` defaults to 3000, or 8000 with a
    corpus. Nothing is downloaded. Idempotent: if ``out_dir`` already holds a complete model it is returned as is.
    The files are written to a temporary sibling folder first, so an interrupted build never looks complete.
    """
    out = Path(out_dir).expanduser().resolve()
    if _is_complete(out):
        return out

    import torch
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if corpus:
        # One token per Chinese character at most (as BERT splits them): merges across characters would turn most
        # words of a small corpus into tokens seen once, which a model this small memorises instead of learning.
        cjk = pre_tokenizers.Split(Regex("[\u3400-\u9fff\uf900-\ufaff]"), behavior="isolated")
        bpe.pre_tokenizer = pre_tokenizers.Sequence([cjk, bpe.pre_tokenizer])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size or (8000 if corpus else 3000),
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus() + list(corpus), trainer=trainer)
    bpe.add_tokens([AddedToken(tok, special=False, normalized=False) for tok in ADDED_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=SPECIAL_TOKENS[1:3] + SPECIAL_TOKENS[5:],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        out.mkdir(exist_ok=True)
        files = sorted(Path(tmp).iterdir(), key=lambda p: p.name == "config.json")  # config.json last
        for src in files:
            shutil.move(str(src), out / src.name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lf_reasoning.tiny_model OUT_DIR [CORPUS_FILE ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lf_reasoning.tiny_model",
        description="Build a tiny random Qwen3 model and tokenizer in OUT_DIR (no download; kept if already built) "
        "and print its path.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the model (created)")
    parser.add_argument(
        "corpus_files",
        metavar="CORPUS_FILE",
        nargs="*",
        default=[],  # not listed as required when OUT_DIR is missing
        help="text files (e.g. your training data) the tokenizer learns from, so their words become tokens",
    )
    args = parser.parse_args(argv)
    try:
        corpus = [Path(path).read_text(encoding="utf-8") for path in args.corpus_files]
    except (OSError, UnicodeDecodeError) as err:
        print(f"cannot read a corpus file: {err}", file=sys.stderr)
        return 1
    if corpus and _is_complete(Path(args.out_dir)):
        print(
            f"note: {args.out_dir} already holds a model, kept as it is (its tokenizer did not learn these corpus "
            "files); delete the folder to rebuild it",
            file=sys.stderr,
        )
    print(build_tiny_model(args.out_dir, corpus=corpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
