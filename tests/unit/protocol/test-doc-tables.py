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
  | flag | field | value | meaning |                               payload flag bits
Every json entry must appear exactly once with the same values, and the
document must not describe anything the json lacks. --print emits the
tables in that format (the meaning column empty) for editors.

It also checks what the json implies about the prose: the receive-buffer
size the document states (largest vshm D->C message) and MAX_D2C_PAYLOAD,
and it decodes every hex dump of the worked example (section 13) with the
json's layouts and checks framing and the section 7 MUST rules the
example exercises (HELLO reply grants, SHM_BUFFER geometry and Y_0_TOP,
SCANOUT, FULL after SCANOUT, num_rects, HEARTBEAT entries, releases).
"""
import json
import re
import struct
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
    print("\n| flag | field | value | meaning |")
    print("|---|---|---|---|")
    for fl in spec["flags"]:
        print("| %s | %s | 0x%x |  |" % (fl["name"], fl["field"], fl["value"]))
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


def max_payload(m):
    t = m["tail"]
    return m["size"] + (t["max"] * t["elem_size"] if t else 0)


def check_sizes_prose(spec, doc):
    """The receive-buffer advice of section 2 and MAX_D2C_PAYLOAD follow from the json."""
    errs = []
    limits = {lim["name"]: lim["value"] for lim in spec["limits"]}
    d2c = [m for m in spec["messages"] if m["direction"] == "D->C"
           and m.get("sent_on_display_socket", True)]
    biggest = max(d2c, key=max_payload)
    if max_payload(biggest) != limits["MAX_D2C_PAYLOAD"]:
        errs.append("MAX_D2C_PAYLOAD is %d, the largest D->C message (%s) is %d bytes"
                    % (limits["MAX_D2C_PAYLOAD"], biggest["name"], max_payload(biggest)))
    vshm = [m for m in d2c if int(m["id"], 16) >= int(spec["id_range"]["first"], 16)]
    big = max(vshm, key=max_payload)
    m = re.search(r"largest message a version-(\d+) vshm consumer parses is the `(\w+)`"
                  r"(?:\s+reply)?,\s+(\d+) bytes", doc)
    if not m:
        errs.append("section 2 does not state the largest message a vshm consumer parses")
    else:
        if int(m.group(1)) != spec["version"]:
            errs.append("section 2 states it for version %s, the json is version %d"
                        % (m.group(1), spec["version"]))
        if m.group(2) != big["name"] or int(m.group(3)) != max_payload(big):
            errs.append("section 2 says %s, %s bytes; the json's largest vshm D->C message is "
                        "%s, %d bytes" % (m.group(2), m.group(3), big["name"], max_payload(big)))
    return errs


def decode(spec, name, buf):
    """Decode struct @name from @buf into a dict (nested structs and arrays as lists of values)."""
    fmt = {"u8": "B", "u32": "I", "i32": "i", "u64": "Q", "char": "c"}
    out = {}
    for f in spec["structs"][name]["fields"]:
        raw = buf[f["offset"]:f["offset"] + f["size"]]
        base, _, n = f["type"].partition("[")
        n = int(n[:-1]) if n else None
        if base in spec["structs"]:
            esz = spec["structs"][base]["size"]
            vals = [decode(spec, base, raw[i * esz:(i + 1) * esz]) for i in range(n or 1)]
            out[f["name"]] = vals if n else vals[0]
        elif base == "char":
            out[f["name"]] = raw.split(b"\0")[0].decode("ascii", "replace")
        else:
            vals = list(struct.unpack("<%d%s" % (n or 1, fmt[base]), raw))
            out[f["name"]] = vals if n else vals[0]
    return out


def example_dumps(doc):
    """(label, bytes) for every numbered hex dump in section 13."""
    sec = re.search(r"^## 13\..*?^```\n(.*?)^```", doc, re.S | re.M)
    if not sec:
        return None
    dumps, label, data = [], None, b""
    for line in sec.group(1).splitlines():
        m = re.match(r"^(\d+)\. (.*)", line)
        if m:
            if label:
                dumps.append((label, data))
            label, data = line, b""
            continue
        m = re.match(r"^([0-9a-f]{4}): ((?:[0-9a-f]{2} ?)+)$", line)
        if m:
            if int(m.group(1), 16) != len(data):
                raise ValueError("%s: dump offset %s after %d bytes" % (label, m.group(1), len(data)))
            data += bytes.fromhex(m.group(2))
    if label:
        dumps.append((label, data))
    return dumps


def check_example(spec, doc):
    """Decode the worked example and check framing and the MUST rules it exercises."""
    errs = []
    try:
        dumps = example_dumps(doc)
    except ValueError as e:
        return [str(e)]
    if not dumps:
        return ["no hex dumps found in section 13"]
    by_key = {(int(m["id"], 16), m["reply"]): m for m in spec["messages"]}
    flags = {(fl["field"], fl["name"]): fl["value"] for fl in spec["flags"]}
    limits = {lim["name"]: lim["value"] for lim in spec["limits"]}
    reply_flag = spec["header"]["flags"]["REPLY"]
    hello = reply = None
    buffers, scanouts, need_full, sent_seq = {}, {}, set(), {}
    for label, data in dumps:
        tag = "(%s)" % label.split(".", 1)[0]
        if len(data) < 12:
            errs.append("%s shorter than a header" % tag)
            continue
        req, hflags, size = struct.unpack("<III", data[:12])
        payload = data[12:]
        if hflags not in (0, reply_flag):
            errs.append("%s: header flags 0x%x" % (tag, hflags))
            continue
        m = by_key.get((req, hflags == reply_flag))
        if not m:
            errs.append("%s: no json message id 0x%04x %s" % (tag, req, "reply" if hflags else "request"))
            continue
        if m["direction"] not in label:
            errs.append("%s: label says not %s" % (tag, m["direction"]))
        if m["name"] not in label:
            errs.append("%s: label does not name %s" % (tag, m["name"]))
        if size != len(payload):
            errs.append("%s: size %d, %d payload bytes shown" % (tag, size, len(payload)))
            continue
        p = decode(spec, m["struct"], payload) if m["struct"] in spec["structs"] else None
        count = 0
        if m["tail"]:
            cf = m["tail"]["count_field"]
            if cf not in (p or {}):
                errs.append("%s: tail count field %s not decodable" % (tag, cf))
                continue
            count = p[cf]
            if count > m["tail"]["max"]:
                errs.append("%s: tail count %d over %d" % (tag, count, m["tail"]["max"]))
        expect = m["size"] + count * (m["tail"]["elem_size"] if m["tail"] else 0)
        if size != expect:
            errs.append("%s: size %d, expected %d" % (tag, size, expect))
            continue
        tail = []
        if m["tail"]:
            esz = m["tail"]["elem_size"]
            tail = [decode(spec, m["tail"]["struct"], payload[m["size"] + i * esz:m["size"] + (i + 1) * esz])
                    for i in range(count)]
        name = m["name"]
        if name == "HELLO" and not m["reply"]:
            hello = p
        elif name == "HELLO":
            reply = p
            if not hello:
                errs.append("%s: HELLO reply before HELLO" % tag)
                continue
            if (p["granted"] | p["refused"]) != hello["scanouts"] or p["granted"] & p["refused"]:
                errs.append("%s: granted|refused must equal the requested scanouts, disjoint" % tag)
            if not 1 <= p["version"] <= min(hello["version"], spec["version"]):
                errs.append("%s: version %d, consumer asked %d" % (tag, p["version"], hello["version"]))
            for n, why in enumerate(p["refuse_reason"]):
                if bool(why) != bool(p["refused"] >> n & 1):
                    errs.append("%s: refuse_reason[%d] = %d" % (tag, n, why))
            if not 1 <= p["max_rects"] <= limits["MAX_RECTS"] or p["num_scanouts"] > limits["MAX_SCANOUTS"]:
                errs.append("%s: max_rects or num_scanouts out of range" % tag)
        elif name == "SHM_BUFFER":
            bpp = 4
            if not (1 <= p["width"] <= limits["MAX_DIM"] and 1 <= p["height"] <= limits["MAX_DIM"]):
                errs.append("%s: width/height out of 1..MAX_DIM" % tag)
            elif p["stride"] < p["width"] * bpp:
                errs.append("%s: stride below width * bpp" % tag)
            elif p["offset"] + p["stride"] * (p["height"] - 1) + p["width"] * bpp > p["size"]:
                errs.append("%s: buffer does not fit size" % tag)
            if not p["flags"] & flags[("vshm_display_shm_buffer.flags", "Y_0_TOP")]:
                errs.append("%s: vshm-gpu always sets Y_0_TOP" % tag)
            if p["buffer_id"] == 0 or p["buffer_id"] in buffers:
                errs.append("%s: buffer id 0 or reused" % tag)
            buffers[p["buffer_id"]] = p
        elif name == "SCANOUT" and m["id"] != "0x0007":
            b = buffers.get(p["buffer_id"])
            if p["buffer_id"] == 0:
                if any(p[k] for k in ("x", "y", "width", "height", "flags")):
                    errs.append("%s: disabled SCANOUT with non-zero fields" % tag)
                need_full.discard(p["scanout_id"])
            elif not b:
                errs.append("%s: SCANOUT of undefined buffer %d" % (tag, p["buffer_id"]))
            elif not (1 <= p["width"] and 1 <= p["height"] and p["x"] + p["width"] <= b["width"]
                      and p["y"] + p["height"] <= b["height"]):
                errs.append("%s: SCANOUT rectangle not inside the buffer" % tag)
            else:
                need_full.add(p["scanout_id"])
            scanouts[p["scanout_id"]] = p
        elif name == "FRAME":
            sc = scanouts.get(p["scanout_id"])
            full = p["flags"] & flags[("vshm_display_frame.flags", "FULL")]
            if not sc or sc["buffer_id"] != p["buffer_id"]:
                errs.append("%s: FRAME buffer is not the scanout's current one" % tag)
                continue
            if p["scanout_id"] in need_full and not full:
                errs.append("%s: first FRAME after SCANOUT without FULL" % tag)
            need_full.discard(p["scanout_id"])
            if not full and p["num_rects"] == 0:
                errs.append("%s: num_rects 0 without FULL" % tag)
            if reply and p["num_rects"] > reply["max_rects"]:
                errs.append("%s: num_rects over max_rects" % tag)
            for r in tail:
                if not (r["width"] and r["height"] and r["x"] + r["width"] <= sc["width"]
                        and r["y"] + r["height"] <= sc["height"]):
                    errs.append("%s: rect %s not a non-empty rect inside the scanout" % (tag, r))
            if p["seq"] <= sent_seq.get(p["scanout_id"], 0):
                errs.append("%s: seq does not increase" % tag)
            sent_seq[p["scanout_id"]] = p["seq"]
        elif name == "FRAME_RELEASE":
            if p["seq"] > sent_seq.get(p["scanout_id"], 0):
                errs.append("%s: release of a seq never sent" % tag)
        elif name == "HEARTBEAT":
            ids = [e["scanout_id"] for e in tail]
            want = [n for n in range(32) if reply and reply["granted"] >> n & 1]
            if ids != want:
                errs.append("%s: entries %s, granted scanouts %s" % (tag, ids, want))
            if reply and p["period_ms"] != reply["heartbeat_period_ms"]:
                errs.append("%s: period differs from the HELLO reply" % tag)
    return errs


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
    print("1..11")

    summary, layouts, features, errors, refusals, limits, flagbits = {}, {}, {}, {}, {}, {}, {}
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
        elif header[:3] == ["flag", "field", "value"]:
            for r in rows:
                if (r[1], r[0]) in flagbits:
                    dups.append("flag %s of %s twice" % (r[0], r[1]))
                flagbits[(r[1], r[0])] = r[:3]
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
    compare(tap, "payload flag table matches the json",
            {(fl["field"], fl["name"]): [fl["name"], fl["field"], "0x%x" % fl["value"]]
             for fl in spec["flags"]}, flagbits)
    errs = check_sizes_prose(spec, doc)
    tap.check(not errs, "payload bounds in the prose follow from the json", errs)
    errs = check_example(spec, doc)
    tap.check(not errs, "worked example decodes and keeps the section 7 rules", errs)

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
