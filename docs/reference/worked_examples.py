#!/usr/bin/env python3
"""Checks testdata/vectors/ with the independent implementation in auditum_format.py, and renders
the worked examples of docs/FORMAT.md from those vectors.

  worked_examples.py --check   fail if a vector disagrees, a must-reject case is accepted, or a
                               worked-example block in FORMAT.md differs from what the vectors give
  worked_examples.py --write   rewrite the worked-example blocks of FORMAT.md in place

A block in FORMAT.md is the text between `<!-- worked:NAME -->` and `<!-- /worked:NAME -->`.
"""

import datetime
import json
import pathlib
import re
import sys

import auditum_format as af

REPO = pathlib.Path(__file__).resolve().parents[2]
VECTORS = REPO / "testdata" / "vectors"
FORMAT_MD = REPO / "docs" / "FORMAT.md"
BLOCK = re.compile(r"(<!-- worked:([a-z0-9-]+) -->\n)(.*?)(<!-- /worked:\2 -->)", re.S)


def load(name):
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def h(data):
    return data.hex()


def utc(micros):
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def wrap(hex_text, width=64):
    return "\n".join(hex_text[i:i + width] for i in range(0, len(hex_text), width))


def proof_document(vec):
    """The event proof auditum would give for events[1] (seq 0, row 1) of the example batch, anchored at
    checkpoint 1: every part of it comes from the vectors."""
    leaves = [af.leaf_hash(af.canonical_event(e["columns"])) for e in vec["events"]]
    document = {
        "event": vec["events"][1]["columns"],
        "leaf_hash": h(leaves[1]),
        "batch": {"index": 0, "leaf_index": 1, "size": 2, "path": [h(leaves[0])]},
        "ledger_entry": vec["ledger_entry_text"],
        "ledger": {"size": 1, "path": []},
        "checkpoint": vec["checkpoint"]["note"],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- Agreement with the vectors ---------------------------------------------------------------

def check_vectors():
    """Every fact in the vector files, recomputed. Returns a list of failures."""
    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{what}: computed {got}, vector says {want}")

    rfc = load("rfc6962.json")
    leaves = [af.leaf_hash(bytes.fromhex(x)) for x in rfc["leaf_inputs_hex"]]
    expect("rfc6962 empty root", h(af.tree_root([])), rfc["empty_root_hex"])
    for size, root in rfc["roots_by_size_hex"].items():
        expect(f"rfc6962 root of size {size}", h(af.tree_root(leaves[:int(size)])), root)
    for proof in rfc["inclusion_proofs"]:
        index, size = proof["leaf_index"], proof["tree_size"]
        expect(f"rfc6962 inclusion path {index} of {size}", [h(x) for x in af.inclusion_path(leaves[:size], index)], proof["path_hex"])
        af.verify_inclusion(leaves[index], index, size, [bytes.fromhex(x) for x in proof["path_hex"]], af.tree_root(leaves[:size]))
    for proof in rfc["consistency_proofs"]:
        old, new = proof["size1"], proof["size2"]
        expect(f"rfc6962 consistency path {old} -> {new}", [h(x) for x in af.consistency_path(leaves[:new], old)], proof["path_hex"])
        af.verify_consistency(old, new, af.tree_root(leaves[:old]), af.tree_root(leaves[:new]), [bytes.fromhex(x) for x in proof["path_hex"]])

    vec = load("auditum.json")
    event_leaves = []
    for i, event in enumerate(vec["events"]):
        canonical = af.canonical_event(event["columns"])
        expect(f"event {i} canonical bytes", h(canonical), event["canonical_hex"])
        expect(f"event {i} leaf hash", h(af.leaf_hash(canonical)), event["leaf_hash_hex"])
        event_leaves.append(af.leaf_hash(canonical))
    batch_root = af.tree_root(event_leaves)
    expect("batch root", h(batch_root), vec["batch_root_hex_of_both_events_in_order"])
    for key in ("ledger_entry", "ledger_entry_v2"):
        text = vec[key + "_text"]
        entry = af.parse_entry(text)
        expect(f"{key} root", entry["root"], h(batch_root))
        expect(f"{key} entry_hash", h(af.entry_hash(text)), vec[key + "_hash_hex"])
        af.check_chain([text])
    cp = vec["checkpoint"]
    seed = bytes.fromhex(cp["ed25519_private_seed_hex"])
    name = cp["verifier_key"].split("+")[0]
    expect("verifier key", af.verifier_key(name, af.public_key_of_seed(seed)), cp["verifier_key"])
    ledger_root = af.tree_root([af.entry_hash(vec["ledger_entry_text"])])
    expect("checkpoint note", af.sign_checkpoint(name, seed, 1, ledger_root), cp["note"])
    expect("checkpoint verifies", af.verify_checkpoint(cp["note"], cp["verifier_key"]), (1, ledger_root))
    try:
        af.verify_event_proof(proof_document(vec), cp["verifier_key"])
    except af.ProofRejected as error:
        failures.append(f"the example event proof is rejected: {error}")
    return failures


# --- What a verifier must reject, shown on the vectors -----------------------------------------

def rejections():
    """(case, callable) pairs; each callable must raise ProofRejected."""
    rfc, vec = load("rfc6962.json"), load("auditum.json")
    leaves = [af.leaf_hash(bytes.fromhex(x)) for x in rfc["leaf_inputs_hex"]]
    root8, path = af.tree_root(leaves), af.inclusion_path(leaves, 5)
    v1, v2 = vec["ledger_entry_text"], vec["ledger_entry_v2_text"]
    cp = vec["checkpoint"]
    seed, note, vkey = bytes.fromhex(cp["ed25519_private_seed_hex"]), cp["note"], cp["verifier_key"]
    other_seed = bytes(range(32, 64))
    ledger_root = af.tree_root([af.entry_hash(v1)])

    def second_entry(first_text, **changes):
        fields = af.parse_entry(first_text)
        fields.update(index=1, prev=h(af.entry_hash(first_text)), first_seq=fields["first_seq"] + fields["count"])
        fields.update(changes)
        if fields["v"] == 1:
            fields.pop("retain_until", None)
        return af.entry_text(fields)

    proof = json.loads(proof_document(vec))

    def altered_proof(change):
        copy = json.loads(json.dumps(proof))
        change(copy)
        return lambda: af.verify_event_proof(json.dumps(copy), vkey)

    flipped = bytearray(note.encode())
    flipped[note.index("matU")] ^= 1
    return [
        ("inclusion: index >= size", lambda: af.verify_inclusion(leaves[5], 8, 8, path, root8)),
        ("inclusion: path too long", lambda: af.verify_inclusion(leaves[5], 5, 8, path + [root8], root8)),
        ("inclusion: path too short", lambda: af.verify_inclusion(leaves[5], 5, 8, path[:-1], root8)),
        ("inclusion: altered path hash", lambda: af.verify_inclusion(leaves[5], 5, 8, [path[0][::-1]] + path[1:], root8)),
        ("consistency: old size 0", lambda: af.verify_consistency(0, 8, af.sha256(b""), root8, [])),
        ("consistency: old size > new size", lambda: af.verify_consistency(8, 6, root8, af.tree_root(leaves[:6]), [])),
        ("consistency: wrong old root", lambda: af.verify_consistency(6, 8, root8, root8, af.consistency_path(leaves, 6))),
        ("multi-proof: duplicate index", lambda: af.check_multiproof_indices([2, 2], 8)),
        ("entry: not canonical (a space)", lambda: af.parse_entry(v1.replace(":", ": ", 1))),
        ("entry: uppercase hex", lambda: af.parse_entry(v1.replace('"root":"77a9', '"root":"77A9'))),
        ("entry: unknown key", lambda: af.parse_entry(v1.replace('{"v":1,', '{"v":1,"x":1,'))),
        ("entry: v1 with retain_until", lambda: af.parse_entry(v2.replace('"v":2', '"v":1'))),
        ("entry: v2 without retain_until", lambda: af.parse_entry(v1.replace('"v":1', '"v":2'))),
        ("entry: count 0", lambda: af.parse_entry(v1.replace('"count":2', '"count":0'))),
        ("chain: prev of entry 0 not zero", lambda: af.check_chain([v1.replace('"prev":"0000', '"prev":"1000')])),
        ("chain: prev break", lambda: af.check_chain([v1, second_entry(v1, prev="ab" * 32)])),
        ("chain: seq gap", lambda: af.check_chain([v1, second_entry(v1, first_seq=3)])),
        ("chain: index skipped", lambda: af.check_chain([v1, second_entry(v1, index=2)])),
        ("chain: downgrade v2 -> v1", lambda: af.check_chain([v2, second_entry(v2, v=1)])),
        ("checkpoint: altered root", lambda: af.verify_checkpoint(flipped.decode(), vkey)),
        ("checkpoint: altered size", lambda: af.verify_checkpoint(note.replace("\n1\n", "\n2\n", 1), vkey)),
        ("checkpoint: signed by another key", lambda: af.verify_checkpoint(af.sign_checkpoint("auditum/default", other_seed, 1, ledger_root), vkey)),
        ("checkpoint: other origin", lambda: af.verify_checkpoint(note.replace("auditum/default\n", "auditum/other\n", 1), vkey)),
        ("checkpoint: extra body line", lambda: af.verify_checkpoint(note.replace("=\n\n", "=\nx\n\n", 1), vkey)),
        ("checkpoint: size with leading zero", lambda: af.verify_checkpoint(note.replace("\n1\n", "\n01\n", 1), vkey)),
        ("proof: altered column", altered_proof(lambda d: d["event"].update(action="b"))),
        ("proof: batch size not the entry's count", altered_proof(lambda d: d["batch"].update(size=3))),
        ("proof: leaf index >= size", altered_proof(lambda d: d["batch"].update(leaf_index=2))),
        ("proof: ledger size not the checkpoint's", altered_proof(lambda d: d["ledger"].update(size=2))),
        ("proof: unknown key", altered_proof(lambda d: d.update(extra=1))),
        ("proof: seq outside the entry's range", altered_proof(lambda d: d.update(
            event=vec["events"][0]["columns"], leaf_hash=vec["events"][0]["leaf_hash_hex"],
            batch={"index": 0, "leaf_index": 0, "size": 2, "path": [vec["events"][1]["leaf_hash_hex"]]}))),
    ]


def check_rejections():
    failures = []
    for case, attempt in rejections():
        try:
            attempt()
            failures.append(f"must reject, but accepted: {case}")
        except af.ProofRejected:
            pass
    return failures


# --- The worked examples of FORMAT.md -----------------------------------------------------------

def block_event_bytes(vec):
    event = vec["events"][1]
    rows = ["| # | column | stored value | bytes (hex) |", "|---|---|---|---|",
            f"| | prefix | `auditum/event/v1\\n` | `{h(af.CANONICAL_PREFIX)}` |"]
    for i, name in enumerate(af.HASHED_COLUMNS, 1):
        value = event["columns"][name]
        shown = "null" if value is None else (f"{value}" if isinstance(value, int) else json.dumps(value))
        rows.append(f"| {i} | `{name}` | {shown} | `{h(af.column_bytes(name, value))}` |")
    canonical = af.canonical_event(event["columns"])
    return "\n".join(rows) + (
        f"\n\n{len(canonical)} bytes in all; `leaf_hash` = SHA-256(`00` ‖ canonical) =\n"
        f"`{h(af.leaf_hash(canonical))}`.\n")


def block_event_full(vec):
    event = vec["events"][0]
    canonical = af.canonical_event(event["columns"])
    cols = event["columns"]
    return (f"`occurred_at` {cols['occurred_at']} is {utc(cols['occurred_at'])}, `received_at` {cols['received_at']} is "
            f"{utc(cols['received_at'])}.\n\ncanonical ({len(canonical)} bytes):\n\n```text\n{wrap(h(canonical))}\n```\n\n"
            f"leaf_hash: `{h(af.leaf_hash(canonical))}`\n")


def block_batch_root(vec):
    leaves = [af.leaf_hash(af.canonical_event(e["columns"])) for e in vec["events"]]
    return ("```text\n"
            f"leaf 0 = leaf_hash of events[0]     {h(leaves[0])}\n"
            f"leaf 1 = leaf_hash of events[1]     {h(leaves[1])}\n"
            f"root = SHA-256(01 ‖ leaf 0 ‖ leaf 1) {h(af.tree_root(leaves))}\n```\n")


def trace_inclusion(leaf, index, size, path):
    lines = [f"{'r = leaf ' + str(index):<35}  {h(leaf)[:16]}…   fn={index} sn={size - 1}"]
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(path):
        if fn & 1 or fn == sn:
            r = af.node_hash(p, r)
            step = f"p[{i}] on the left:  r = H(01‖p[{i}]‖r)"
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = af.node_hash(r, p)
            step = f"p[{i}] on the right: r = H(01‖r‖p[{i}])"
        fn, sn = fn >> 1, sn >> 1
        lines.append(f"{step}  {h(r)[:16]}…   fn={fn} sn={sn}")
    return lines, r


def block_inclusion(rfc):
    leaves = [af.leaf_hash(bytes.fromhex(x)) for x in rfc["leaf_inputs_hex"]]
    out = []
    for proof in rfc["inclusion_proofs"]:
        index, size = proof["leaf_index"], proof["tree_size"]
        if (index, size) not in ((1, 5), (2, 3)):
            continue
        lines, r = trace_inclusion(leaves[index], index, size, [bytes.fromhex(x) for x in proof["path_hex"]])
        out.append(f"Leaf {index} of a tree of size {size} (path of {len(proof['path_hex'])}):\n\n```text\n" + "\n".join(lines)
                   + f"\nsn = 0 and r = root of size {size} ({h(af.tree_root(leaves[:size]))[:16]}…): accepted\n```\n")
    return "\n".join(out)


def block_ledger(vec, key):
    text = vec[key + "_text"]
    entry = af.parse_entry(text)
    extra = f"`retain_until` {entry['retain_until']} is {utc(entry['retain_until'])}. " if entry["v"] == 2 else ""
    return (f"```json\n{text}\n```\n\n{extra}The body is {len(text.encode())} bytes; "
            f"entry_hash = SHA-256(`00` ‖ body) = `{h(af.entry_hash(text))}`.\n")


def block_checkpoint(vec):
    cp = vec["checkpoint"]
    seed = bytes.fromhex(cp["ed25519_private_seed_hex"])
    public = af.public_key_of_seed(seed)
    name = cp["verifier_key"].split("+")[0]
    kid_input = name.encode() + b"\x0a\x01" + public
    ledger_root = af.tree_root([af.entry_hash(vec["ledger_entry_text"])])
    body = af.checkpoint_body(name, 1, ledger_root)
    note = af.sign_checkpoint(name, seed, 1, ledger_root)
    signed = af.b64decode_strict(note.rsplit(" ", 1)[1].rstrip("\n"))
    return ("```text\n"
            f"Ed25519 seed (test key only)     {h(seed)}\n"
            f"public key                       {h(public)}\n"
            f"key id input (name‖0a‖01‖key)    {h(kid_input)}\n"
            f"key id = SHA-256(input)[:4]      {h(af.key_id(name, public))}\n"
            f"verifier key                     {af.verifier_key(name, public)}\n"
            f"ledger root at size 1            {h(ledger_root)}  (= the v1 entry_hash: one leaf)\n"
            f"signed body (hex)                {h(body.encode())}\n"
            f"signature (64 bytes)             {h(signed[4:])}\n"
            "```\n\nThe note, byte for byte (`\\n` is 0x0A; the dash is U+2014, UTF-8 `e2 80 94`):\n\n"
            f"```text\n{note}```\n")


def block_proof(vec):
    return ("```json\n" + proof_document(vec) + "```\n\n"
            "Step 2 gives the leaf of the [first worked example](#worked-example-an-event-with-most-columns-null); step 5 "
            "hashes it as the right child, `H(01 ‖ path[0] ‖ leaf)`, which is the entry's `root`; step 8 finds the "
            f"ledger root of size 1 to be the entry_hash itself, `{h(af.entry_hash(vec['ledger_entry_text']))[:16]}…`, "
            "which the checkpoint signs.\n")


def render():
    vec, rfc = load("auditum.json"), load("rfc6962.json")
    return {
        "event-bytes": block_event_bytes(vec),
        "event-full": block_event_full(vec),
        "batch-root": block_batch_root(vec),
        "inclusion": block_inclusion(rfc),
        "ledger-v1": block_ledger(vec, "ledger_entry"),
        "ledger-v2": block_ledger(vec, "ledger_entry_v2"),
        "checkpoint": block_checkpoint(vec),
        "proof": block_proof(vec),
    }


def sync_blocks(write):
    """Compares (or rewrites) FORMAT.md's blocks; returns failures."""
    text, blocks = FORMAT_MD.read_text(encoding="utf-8"), render()
    found, failures = set(), []

    def replace(match):
        name = match.group(2)
        found.add(name)
        if name not in blocks:
            failures.append(f"FORMAT.md has a worked:{name} block that no example renders")
            return match.group(0)
        if match.group(3) != blocks[name]:
            if not write:
                failures.append(f"FORMAT.md worked:{name} differs from the vectors (run {pathlib.Path(__file__).name} --write)")
        return match.group(1) + blocks[name] + match.group(4)

    updated = BLOCK.sub(replace, text)
    failures += [f"FORMAT.md lacks the worked:{name} block" for name in sorted(set(blocks) - found)]
    if write and updated != text:
        FORMAT_MD.write_text(updated, encoding="utf-8")
    return failures


def main(argv):
    if argv not in (["--check"], ["--write"]):
        print(__doc__, file=sys.stderr)
        return 2
    failures = check_vectors() + check_rejections() + sync_blocks(write=argv == ["--write"])
    for failure in failures:
        print(f"worked examples: {failure}", file=sys.stderr)
    cases = len(rejections())
    print(f"worked examples: vectors recomputed, {cases} must-reject cases, FORMAT.md blocks: "
          f"{'OK' if not failures else f'{len(failures)} problem(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
