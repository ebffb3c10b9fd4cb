#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check docs/protocol.md and the header's enums against protocol/vshm-display.json.

usage: test-doc-tables.py vshm-display.json protocol.md vshm-display.h   (TAP output)
       test-doc-tables.py --print vshm-display.json                      (print the tables)

The document's tables are recognised by their header row:
  | id | message | kind | direction | fixed size | fds | tail |   message summary
  | offset | size | type | field | meaning |                      one per struct, under a
                                                                   "#### struct NAME (N bytes)" heading
  | bit | feature | mask | owner |                                 feature bits
  | code | error | ... |, | reason | refusal | ... |,
  | limit | value | ... |                                           error codes, refusals, limits
Every json entry must appear exactly once with the same values, and the
document must not describe anything the json lacks. --print emits the
tables in that format (the meaning column empty) for editors.
"""
import json
import re
import sys


def fds_text(m):
    lo, hi = m["min_fds"], m["max_fds"]
    return str(lo) if lo == hi else "%d-%d" % (lo, hi)


def tail_text(m):
    t = m["tail"]
    if not t:
        return "-"
    return "%s[<=%d] (%d B each)" % (t["struct"], t["max"], t["elem_size"])


def summary_row(m):
    return [m["id"], m["name"], "reply" if m["reply"] else "request", m["direction"],
            str(m["size"]), fds_text(m), tail_text(m)]


def layout_rows(st):
    return [[str(f["offset"]), str(f["size"]), f["type"], f["name"]] for f in st["fields"]]


def print_tables(spec):
    print("| id | message | kind | direction | fixed size | fds | tail |")
    print("|---|---|---|---|---|---|---|")
    for m in spec["messages"]:
        print("| " + " | ".join(summary_row(m)) + " |")
    for name, st in spec["structs"].items():
        print("\n#### struct %s (%d bytes)\n" % (name, st["size"]))
        print("| offset | size | type | field | meaning |")
        print("|---:|---:|---|---|---|")
        for r in layout_rows(st):
            print("| " + " | ".join(r) + " |  |")
    print("\n| bit | feature | mask | owner |")
    print("|---:|---|---|---|")
    for fb in spec["feature_bits"]:
        print("| %d | %s | 0x%016x | %s |" % (fb["bit"], fb["name"], 1 << fb["bit"], fb["owner"]))


def cells(line):
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip().strip("`").replace("\\|", "|") for c in line[1:-1].split("|")]


def parse_tables(text):
    """Yield (heading, header_cells, rows) for every markdown table."""
    heading = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        c = cells(lines[i])
        if c and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            header = [h.lower() for h in c]
            rows = []
            i += 2
            while i < len(lines) and cells(lines[i]) is not None:
                rows.append(cells(lines[i]))
                i += 1
            yield heading, header, rows
            continue
        i += 1


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what, errors=()):
        self.n += 1
        if not ok:
            self.failed += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, what))
        for e in errors:
            print("#   " + e)


def compare(tap, what, expected, found):
    """expected, found: dict key -> list of cells."""
    errs = []
    for k, v in expected.items():
        if k not in found:
            errs.append("missing in the document: %s" % (k,))
        elif found[k] != v:
            errs.append("%s: document has %s, json has %s" % (k, found[k], v))
    for k in found:
        if k not in expected:
            errs.append("in the document but not in the json: %s" % (k,))
    tap.check(not errs, what, errs)


def main():
    if sys.argv[1] == "--print":
        with open(sys.argv[2], encoding="utf-8") as f:
            print_tables(json.load(f))
        return 0
    spec_path, doc_path, hdr_path = sys.argv[1:4]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    with open(hdr_path, encoding="utf-8") as f:
        hdr = f.read()
    tap = Tap()
    print("1..8")

    summary, layouts, features, errors, refusals, limits = {}, {}, {}, {}, {}, {}
    dups = []
    for heading, header, rows in parse_tables(doc):
        key = header[0]
        if header[:7] == ["id", "message", "kind", "direction", "fixed size", "fds", "tail"]:
            for r in rows:
                k = (r[0].lower(), r[2])
                if k in summary:
                    dups.append("summary row %s twice" % (k,))
                summary[k] = r[:7]
        elif header[:4] == ["offset", "size", "type", "field"]:
            m = re.match(r"struct (\w+) \((\d+) bytes\)", heading or "")
            if not m:
                dups.append("layout table under heading %r, expected 'struct NAME (N bytes)'" % heading)
                continue
            if m.group(1) in layouts:
                dups.append("struct %s described twice" % m.group(1))
            layouts[m.group(1)] = (m.group(2), [r[:4] for r in rows])
        elif header[:2] == ["bit", "feature"]:
            features.update({r[1]: r[:4] for r in rows})
        elif key == "code" and header[1] == "error":
            errors.update({r[1]: r[:2] for r in rows})
        elif key == "reason" and header[1] == "refusal":
            refusals.update({r[1]: r[:2] for r in rows})
        elif key == "limit" and header[1] == "value":
            limits.update({r[0]: r[:2] for r in rows})
    tap.check(not dups, "no table row or struct is described twice", dups)

    compare(tap, "message summary table matches the json",
            {(m["id"], "reply" if m["reply"] else "request"): summary_row(m) for m in spec["messages"]},
            summary)
    compare(tap, "struct layout tables match the json",
            {n: (str(st["size"]), layout_rows(st)) for n, st in spec["structs"].items()}, layouts)
    compare(tap, "feature bit table matches the json",
            {fb["name"]: [str(fb["bit"]), fb["name"], "0x%016x" % (1 << fb["bit"]), fb["owner"]]
             for fb in spec["feature_bits"]}, features)
    compare(tap, "error code table matches the json",
            {e["name"]: [str(e["value"]), e["name"]] for e in spec["errors"]}, errors)
    compare(tap, "refusal reason table matches the json",
            {e["name"]: [str(e["value"]), e["name"]] for e in spec["refuse_reasons"]}, refusals)
    compare(tap, "limits table matches the json",
            {lim["name"]: [lim["name"], str(lim["value"])] for lim in spec["limits"]}, limits)

    # The header's enums must not hold entries the json lacks (the generated
    # C asserts catch the other direction and wrong values).
    errs = []
    enums = {
        "vshm_display_request": ({m["c_id"] for m in spec["messages"]}, r"(VSHM_DISPLAY_\w+)\s*="),
        "vshm_display_error_code": ({e["c"] for e in spec["errors"]}, r"(VSHM_DISPLAY_ERR_\w+)\s*="),
        "vshm_display_refuse_reason": ({e["c"] for e in spec["refuse_reasons"]},
                                       r"(VSHM_DISPLAY_REFUSE_\w+)\s*="),
    }
    for enum, (known, pat) in enums.items():
        m = re.search(r"enum %s \{(.*?)\};" % enum, hdr, re.S)
        if not m:
            errs.append("enum %s not found in the header" % enum)
            continue
        for name in re.findall(pat, m.group(1)):
            if name not in known:
                errs.append("%s (enum %s) is not in the json" % (name, enum))
    for name in re.findall(r"#define (VSHM_DISPLAY_PROTOCOL_F_\w+_BIT)\b", hdr):
        if name not in {fb["c_bit"] for fb in spec["feature_bits"]}:
            errs.append("%s is not in the json" % name)
    tap.check(not errs, "header enums and feature bits hold nothing the json lacks", errs)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
