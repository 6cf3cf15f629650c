"""Walking the batch headers of a segment in Python, never trusting a length field.

Every step is checked before it is taken: a batch is at least a header (61 bytes) long and no
longer than the bytes left in the segment. A length of -12 would otherwise be a step of zero
bytes (a loop forever) and a large negative one a step backwards, before the file (negative
positions); both have been seen with damaged sealed segments, which a clean open does not
revalidate. Damage is a CorruptLogError naming the file, the byte and the offsets around it.
"""
from klog._native.batch import read_header
from klog.errors import CorruptLogError

HEADER_SIZE = 61
LOG_OVERHEAD = 12


def framing_error(path, pos, left, header=None, after=None, why=None):
    """The CorruptLogError for a batch at ``pos`` whose framing cannot be walked over."""
    if header is None:
        what = f"{left} bytes, too few for a batch header ({HEADER_SIZE})"
    else:
        what = (f"a batch declaring length {header.length}, magic {header.magic} (header "
                f"offsets {header.base_offset}..{header.last_offset}), with {left} bytes left in "
                "the file")
    return CorruptLogError(
        f"{path}: damaged framing at byte {pos}: {what}"
        + (f"; last good offset {after}" if after is not None else "")
        + (f"; {why}" if why else ""))


def walk_headers(buf, path, start, stop, why=None):
    """Yield ``(position, BatchHeader)`` for the batches in ``buf[start:stop]``; raises
    CorruptLogError (see framing_error) at the first length that does not fit."""
    pos, after = start, None
    while pos < stop:
        left = stop - pos
        if left < HEADER_SIZE:
            raise framing_error(path, pos, left, None, after, why)
        h = read_header(buf, pos)
        if h.size < HEADER_SIZE or h.size > left or h.magic != 2:
            raise framing_error(path, pos, left, h, after, why)
        yield pos, h
        after = h.last_offset
        pos += h.size
