"""Reading a sentencepiece `tokenizer.model` (a serialized ModelProto) for the fast tokenizers of the
remote-code families (ChatGLM3, Baichuan2, Yuan2, TeleChat2).

Parsed with transformers' own copy of sentencepiece's protobuf schema (`import_protobuf`, the one its slow
-> fast converters use) rather than the sentencepiece package, which is not a dependency; only `protobuf`
is needed. Each family's builder reads the pieces and the settings that decide how text is split, and
refuses settings its fast tokenizer does not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: ModelProto.SentencePiece.Type values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


@dataclass(frozen=True)
class SentencePieceModel:
    """The parts of a ModelProto the builders read: pieces in id order as (piece, score, type), the trainer's
    model type (2 = BPE) and byte fallback, and the normalizer's name, character map and flags."""

    pieces: tuple[tuple[str, float, int], ...]
    model_type: int
    byte_fallback: bool
    normalizer: str
    charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool


def read_sentencepiece(path: Path) -> SentencePieceModel:
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(Path(path).read_bytes())
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    return SentencePieceModel(
        pieces=tuple((p.piece, p.score, p.type) for p in proto.pieces),
        model_type=trainer.model_type, byte_fallback=trainer.byte_fallback, normalizer=norm.name,
        charsmap=norm.precompiled_charsmap, add_dummy_prefix=norm.add_dummy_prefix,
        remove_extra_whitespaces=norm.remove_extra_whitespaces, escape_whitespaces=norm.escape_whitespaces,
    )
