#!/usr/bin/env python3
"""Independent checker for DEX/EVA-DTS audit files (shares no code with src/dex).

Usage: dex_check.py FILE

Checks that G85 holds the CRC-16/ARC (reflected polynomial 0xA001, initial value 0) of
the bytes from "ST*" through the CRLF of the segment before G85, and that SE01 equals the
number of segments from ST through SE. Prints one JSON object with the checks and the
totals it read; exits 1 if a check fails, 2 if the file cannot be read.
"""
import json
import sys


def crc16_arc(data):
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def num(fields, i):
    """Element i (1-based) as an int; empty or missing is 0."""
    if i >= len(fields) or fields[i].strip() == "":
        return 0
    return int(fields[i].strip())


def main(path):
    with open(path, "rb") as f:
        raw = f.read()
    lines = [l.rstrip(b"\r") for l in raw.split(b"\n")]
    lines = [l.decode("ascii") for l in lines if l.strip()]
    tags = [l.split("*", 1)[0] for l in lines]

    st = tags.index("ST")
    g85 = tags.index("G85", st)
    se = tags.index("SE", st)
    covered = "".join(l + "\r\n" for l in lines[st:g85]).encode("ascii")
    computed = crc16_arc(covered)
    stated_crc = lines[g85].split("*")[1].strip()
    counted = se - st + 1
    stated_count = lines[se].split("*")[1].strip()

    out = {
        "crc_ok": int(stated_crc, 16) == computed,
        "crc_stated": stated_crc,
        "crc_computed": "%04X" % computed,
        "se_ok": stated_count == str(counted),
        "se_stated": stated_count,
        "se_counted": counted,
        "va1": None,
        "da2": None,
        "pa2_sum": [0, 0, 0, 0],
        "selections": {},
        "events": {},
    }
    current = None
    for line in lines:
        f = line.split("*")
        if f[0] == "VA1" and out["va1"] is None:
            # value, count since init; value, count since reset
            out["va1"] = [num(f, 1), num(f, 2), num(f, 3), num(f, 4)]
        elif f[0] == "DA2" and out["da2"] is None:
            out["da2"] = [num(f, 1), num(f, 2), num(f, 3), num(f, 4)]
        elif f[0] == "PA1":
            current = f[1].strip()
            out["selections"][current] = [0, 0, 0, 0]
        elif f[0] == "PA2" and current is not None:
            # count, value since init; count, value since reset
            pa2 = [num(f, 1), num(f, 2), num(f, 3), num(f, 4)]
            out["selections"][current] = pa2
            out["pa2_sum"] = [a + b for a, b in zip(out["pa2_sum"], pa2)]
        elif f[0] == "EA2":
            out["events"][f[1]] = [num(f, 2), num(f, 3)]
    print(json.dumps(out, sort_keys=True))
    return 0 if out["crc_ok"] and out["se_ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1]))
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
        print("dex_check: cannot read %s: %s" % (sys.argv[1], e), file=sys.stderr)
        sys.exit(2)
