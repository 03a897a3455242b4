"""Vectorised decoding of protobuf messages made only of varints, many messages at once.

Every field of a pprof Sample, Label, Location and Line is a varint, a packed list of varints or
a sub-message of varints, so once such messages are concatenated every byte belongs to a
varint: the bytes below 0x80 end one. `tokenize` splits the whole buffer into varints and
decodes them with numpy; `walk` then follows the fields of all messages in lock step, one field
per message per step, checking each tag against the fields the message type allows.

This decodes only what it can prove upb would decode the same way: one-byte tags of the
expected wire type, lengths that land on varint boundaries inside their message, varints of at
most 10 bytes. Anything else (unknown fields, other wire types, truncated or overlong data) is
reported as `Unsupported`, and the caller decodes the profile the ordinary way instead, which
also produces upb's own error for data that is not valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Index = NDArray[np.intp]

_MAX_VARINT = 10  # bytes; upb rejects longer varints and drops bits past the 64th
VARINT, LENGTH_DELIMITED = 0, 2


class Unsupported(Exception):
    """The messages use an encoding this decoder does not handle (or are not valid)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The varints of a buffer of concatenated messages.

    Token i occupies bytes starts[i] .. starts[i + 1] - 1 (the last entry of `starts` is the
    buffer's size). `short[i]` is its value when it is at most 4 bytes long; longer tokens
    (`long_index`, ascending; `is_long`) have their full values in `long_values`.
    """

    starts: Index
    short: NDArray[np.uint32]
    is_long: NDArray[np.bool_]
    long_index: Index
    long_values: NDArray[np.uint64]
    start_bits: NDArray[np.uint64]  # bit p of the buffer: a token starts at byte p
    starts_before: NDArray[np.intp]  # per 64-bit word of start_bits: starts in earlier words

    def __len__(self) -> int:
        return len(self.short)

    def index_at(self, position: Index) -> Index:
        """For byte positions: how many tokens start before each (the index of the token that
        starts there, if one does)."""
        word = position >> 6
        below = np.left_shift(np.uint64(1), (position & 63).astype(np.uint64)) - np.uint64(1)
        inside = np.bitwise_count(self.start_bits[word] & below).astype(np.intp)
        result: Index = self.starts_before[word] + inside
        return result

    def values(self, mask: NDArray[np.bool_]) -> NDArray[np.uint64] | NDArray[np.uint32]:
        """The values of the tokens in `mask`, in order: uint32 when all are short."""
        short = np.compress(mask, self.short)
        if not self.long_index.size:
            return short
        long_index = self.long_index[mask[self.long_index]]
        if not long_index.size:
            return short
        out = short.astype(np.uint64)
        before = np.cumsum(mask, dtype=np.intp)  # tokens of the mask up to each token
        out[before[long_index] - 1] = self.long_values[np.searchsorted(self.long_index, long_index)]
        return out

    def u64(self, index: Index) -> NDArray[np.uint64]:
        """Full 64-bit values of the tokens at `index`."""
        out = np.take(self.short, index).astype(np.uint64)
        if self.long_index.size:
            hits = np.flatnonzero(self.is_long[index])
            if hits.size:
                out[hits] = self.long_values[np.searchsorted(self.long_index, index[hits])]
        return out


def tokenize(data: bytes, message_ends: Index) -> Tokens:
    """Split `data` (messages ending at the byte offsets `message_ends`) into varints.

    `data` must carry 4 bytes of zero padding past the last message (`padded`). Raises
    Unsupported unless every message ends where a varint does and no varint is longer than 10
    bytes.
    """
    size = len(data) - _PAD
    raw = np.frombuffer(data, dtype=np.uint8)
    nonempty = message_ends[message_ends > 0]
    if nonempty.size and raw[nonempty - 1].max(initial=0) >= 0x80:
        raise Unsupported("a message does not end with a complete varint")
    is_start = np.empty(size + 1, dtype=bool)
    is_start[0] = True
    np.less(raw[:size], 0x80, out=is_start[1:])
    starts = np.flatnonzero(is_start)
    bits = np.packbits(is_start, bitorder="little")
    del is_start
    words = np.zeros(-(-bits.size // 8), dtype=np.uint64)
    words.view(np.uint8)[: bits.size] = bits
    counts = np.bitwise_count(words).astype(np.intp)
    starts_before = np.cumsum(counts) - counts

    # Read 4 bytes at each token start (unaligned) and keep the bytes up to the first one
    # without a continuation bit; then pack the 7-bit groups. Tokens of 5 bytes or more are
    # decoded one byte at a time below, they are rare.
    window = np.ndarray(shape=(size,), dtype="<u4", buffer=data, strides=(1,))
    x = np.take(window, starts[:-1])
    stop_bits = np.invert(x)
    stop_bits &= np.uint32(0x80808080)
    is_long = stop_bits == 0
    lowest = np.negative(stop_bits)
    lowest &= stop_bits  # the continuation bit of the last byte
    del stop_bits
    lowest <<= np.uint32(1)
    lowest -= np.uint32(1)  # the token's bytes (all four for a long token)
    x &= lowest
    x &= np.uint32(0x7F7F7F7F)
    high = np.bitwise_and(x, np.uint32(0x7F007F00), out=lowest)
    x &= np.uint32(0x007F007F)
    high >>= np.uint32(1)
    x |= high
    np.bitwise_and(x, np.uint32(0x3FFF0000), out=high)
    x &= np.uint32(0x00003FFF)
    high >>= np.uint32(2)
    x |= high
    del high, lowest

    long_index = np.flatnonzero(is_long)
    long_values = np.zeros(long_index.size, dtype=np.uint64)
    if long_index.size:
        first = starts[long_index]
        lengths = starts[long_index + 1] - first
        if lengths.max() > _MAX_VARINT:
            raise Unsupported("a varint is longer than 10 bytes")
        for k in range(int(lengths.max())):
            part = np.flatnonzero(lengths > k)
            group = (raw[first[part] + k] & 0x7F).astype(np.uint64)
            long_values[part] |= group << np.uint64(7 * k)
    return Tokens(starts, x, is_long, long_index, long_values, words, starts_before)


_PAD = 4


def padded(chunks: list[bytes], sizes: Index | None = None) -> tuple[bytes, Index]:
    """The messages joined (with the padding `tokenize` needs) and where each ends (`sizes`:
    their lengths, when the caller has them already)."""
    if sizes is None:
        sizes = np.fromiter(map(len, chunks), dtype=np.intp, count=len(chunks))
    ends = np.cumsum(sizes)
    chunks.append(bytes(_PAD))
    try:
        return b"".join(chunks), ends
    finally:
        chunks.pop()


@dataclass(frozen=True, slots=True)
class Fields:
    """Every field occurrence found by `walk`, in step order (the k-th fields of all messages,
    then the (k+1)-th ...). `start`/`stop` are token ranges: the value of a varint field, the
    content of a length-delimited one."""

    message: Index
    tag: NDArray[np.uint32]
    start: Index
    stop: Index

    def select(self, tags: tuple[int, ...]) -> Fields:
        keep = np.isin(self.tag, tags)
        return Fields(self.message[keep], self.tag[keep], self.start[keep], self.stop[keep])

    def last_per_message(self, count: int) -> tuple[Index, Index]:
        """(messages, value token) of the last occurrence in each message that has one."""
        last = np.full(count, -1, dtype=np.intp)
        np.maximum.at(last, self.message, self.start)
        present = np.flatnonzero(last >= 0)
        return present, last[present]

    def ordered(self) -> Fields:
        """The occurrences in wire order (by message, then position)."""
        order = np.argsort(self.start, kind="stable")
        return Fields(self.message[order], self.tag[order], self.start[order], self.stop[order])


def wire_types(allowed: Iterable[tuple[int, int]]) -> NDArray[np.int8]:
    """A lookup from a one-byte tag to its wire type, for the allowed (field number, wire type)
    pairs (field numbers up to 15); -1 for every other tag."""
    table = np.full(128, -1, dtype=np.int8)
    for number, wire in allowed:
        table[(number << 3) | wire] = wire
    return table


def walk(tokens: Tokens, first: Index, stop: Index, allowed: NDArray[np.int8]) -> Fields:
    """The fields of the messages whose tokens are first[m] .. stop[m] - 1, all at once."""
    starts, short = tokens.starts, tokens.short
    parts: list[tuple[Index, NDArray[np.uint32], Index, Index]] = []
    cursor = first.copy()
    active = np.flatnonzero(cursor < stop)
    while active.size:
        at = cursor[active]
        end = stop[active]
        tag = short[at]
        one_byte = starts[at + 1] - starts[at] == 1
        wire = allowed[tag & np.uint32(0x7F)]
        if not (one_byte.all() and (wire >= 0).all() and (at + 1 < end).all()):
            raise Unsupported("unexpected field, wire type or tag encoding")
        value = at + 1
        after = at + 2
        delimited = np.flatnonzero(wire == LENGTH_DELIMITED)
        if delimited.size:
            length_token = value[delimited]
            if tokens.is_long[length_token].any():
                raise Unsupported("a length of 2**28 bytes or more")
            content_end = starts[length_token + 1] + short[length_token].astype(np.intp)
            if (content_end > starts[end[delimited]]).any():
                raise Unsupported("a field runs past the end of its message")
            next_token = tokens.index_at(content_end)
            if (starts[next_token] != content_end).any():
                raise Unsupported("a field ends inside a varint")
            value[delimited] = length_token + 1
            after[delimited] = next_token
        parts.append((active, tag, value, np.where(wire == VARINT, value + 1, after)))
        cursor[active] = after
        active = active[after < end]
    if not parts:
        empty = np.zeros(0, dtype=np.intp)
        return Fields(empty, np.zeros(0, dtype=np.uint32), empty, empty)
    message, tag, start, stop_ = (np.concatenate(column) for column in zip(*parts, strict=True))
    return Fields(message, tag, start, stop_)


def token_mask(first: Index, stop: Index, count: int) -> NDArray[np.bool_]:
    """Which of `count` tokens are in the (disjoint, non-adjacent) ranges first[i] .. stop[i]-1."""
    marks = np.zeros(count + 1, dtype=np.int8)
    nonempty = first < stop
    marks[first[nonempty]] = 1
    marks[stop[nonempty]] = -1
    return np.cumsum(marks[:-1], dtype=np.int8).view(np.bool_)


def message_tokens(tokens: Tokens, message_ends: Index) -> tuple[Index, Index]:
    """(first token, stop token) of each message of a tokenized buffer."""
    stop = tokens.index_at(message_ends)
    first = np.empty_like(stop)
    first[:1] = 0
    first[1:] = stop[:-1]
    return first, stop
