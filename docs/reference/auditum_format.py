"""The auditum formats of docs/FORMAT.md, in plain Python: a second, independent implementation.

It is written from FORMAT.md alone (not from the Rust code), so that its agreement with the test
vectors in testdata/vectors/ shows the document says enough to build a verifier. Standard library
only, except Ed25519, which comes from the `cryptography` package.
"""

import base64
import hashlib
import json
import struct

# --- Events (FORMAT.md "Event leaf") -------------------------------------------------------------

CANONICAL_PREFIX = b"auditum/event/v1\n"

# The 24 hashed columns, in stored (and hashing) order. leaf_hash is the 25th stored column.
HASHED_COLUMNS = [
    "seq", "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "actor_type",
    "actor_name", "target_type", "target_id", "target_name", "outcome", "error_code", "reason",
    "request_id", "correlation_id", "session_id", "source_ip", "user_agent", "service", "before",
    "after", "metadata",
]
INTEGER_COLUMNS = {"seq": ">Q", "occurred_at": ">q", "received_at": ">q"}
REQUIRED_COLUMNS = {"seq", "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "outcome"}


def column_bytes(name, value):
    """The bytes one column contributes to the canonical encoding."""
    if value is None:
        if name in REQUIRED_COLUMNS:
            raise ValueError(f"column {name} must not be null")
        return b"\xff"
    if name in INTEGER_COLUMNS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"column {name} must be an integer")
        data = struct.pack(INTEGER_COLUMNS[name], value)
    else:
        if not isinstance(value, str):
            raise ValueError(f"column {name} must be a string or null")
        data = value.encode("utf-8")
    return b"\x01" + len(data).to_bytes(4, "big") + data


def canonical_event(columns):
    """canonical = prefix || the 24 columns, each 0xFF (null) or 0x01 || u32_be(len) || bytes."""
    unknown = set(columns) - set(HASHED_COLUMNS)
    missing = set(HASHED_COLUMNS) - set(columns)
    if unknown or missing:
        raise ValueError(f"event columns: unknown {sorted(unknown)}, missing {sorted(missing)}")
    return CANONICAL_PREFIX + b"".join(column_bytes(name, columns[name]) for name in HASHED_COLUMNS)


# --- Merkle trees (RFC 9162 §2.1) -----------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split_point(n):
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_root(leaves):
    """MTH over already-hashed leaves."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def inclusion_path(leaves, index):
    """RFC 9162 PATH(m, D[n]), sibling nearest the leaf first."""
    if not 0 <= index < len(leaves):
        raise ValueError("index out of range")
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if index < k:
        return inclusion_path(leaves[:k], index) + [tree_root(leaves[k:])]
    return inclusion_path(leaves[k:], index - k) + [tree_root(leaves[:k])]


def consistency_path(leaves, old_size):
    """RFC 9162 PROOF(m, D[n])."""
    if not 0 < old_size <= len(leaves):
        raise ValueError("need 0 < old_size <= new_size")

    def subproof(m, d, complete):
        if m == len(d):
            return [] if complete else [tree_root(d)]
        k = split_point(len(d))
        if m <= k:
            return subproof(m, d[:k], complete) + [tree_root(d[k:])]
        return subproof(m - k, d[k:], False) + [tree_root(d[:k])]

    return subproof(old_size, leaves, True)


class ProofRejected(Exception):
    """A proof, entry or checkpoint that a verifier must reject."""


def rejecting(check):
    """Malformed input (bad JSON, hex, base64, a missing key) is a rejection too, never a crash."""
    import functools

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise ProofRejected(f"{check.__name__}: malformed input: {error!r}") from error
    return wrapper


def root_from_inclusion(leaf, index, size, path):
    """RFC 9162 §2.1.3.2 steps 1-5: the root the path leads to; rejects index >= size and wrong lengths."""
    if index >= size:
        raise ProofRejected(f"leaf index {index} >= tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofRejected("inclusion path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofRejected("inclusion path too short")
    return r


def verify_inclusion(leaf, index, size, path, root):
    if root_from_inclusion(leaf, index, size, path) != root:
        raise ProofRejected("inclusion path does not lead to the root")


def verify_consistency(old_size, new_size, old_root, new_root, path):
    """RFC 9162 §2.1.4.2."""
    if not 0 < old_size <= new_size:
        raise ProofRejected(f"bad sizes {old_size} -> {new_size}")
    if old_size == new_size:
        if path or old_root != new_root:
            raise ProofRejected("equal sizes need an empty path and equal roots")
        return
    if old_size & (old_size - 1) == 0:
        path = [old_root] + list(path)
    if not path:
        raise ProofRejected("consistency path too short")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofRejected("consistency path too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofRejected("consistency path too short")
    if fr != old_root or sr != new_root:
        raise ProofRejected("consistency path does not lead to both roots")


def check_multiproof_indices(indices, size):
    """What must be checked before handing a multi-proof to a library such as rs_merkle."""
    if len(set(indices)) != len(indices):
        raise ProofRejected("duplicate index in multi-proof")
    if any(not 0 <= i < size for i in indices):
        raise ProofRejected("multi-proof index out of range")


# --- Ledger entries (FORMAT.md "Ledger entries") ----------------------------------------------------

V1_KEYS = ["v", "log", "index", "prev", "object", "version", "sha256", "size", "first_seq", "count",
           "root", "min_occurred_at", "max_occurred_at", "min_received_at", "max_received_at",
           "sealed_at", "tenants"]
V2_KEYS = V1_KEYS[:-1] + ["retain_until", "tenants"]
HEX_KEYS = {"prev", "sha256", "root"}
# key -> (JSON type, may be null). u64: 0 <= n < 2^64; i64: microseconds since the epoch.
ENTRY_TYPES = {
    "v": ("u64", False), "log": ("string", False), "index": ("u64", False), "prev": ("string", False),
    "object": ("string", False), "version": ("string", True), "sha256": ("string", False),
    "size": ("u64", False), "first_seq": ("u64", False), "count": ("u64", False), "root": ("string", False),
    "min_occurred_at": ("i64", False), "max_occurred_at": ("i64", False), "min_received_at": ("i64", False),
    "max_received_at": ("i64", False), "sealed_at": ("i64", False), "retain_until": ("i64", True),
    "tenants": ("string list", True),
}


def _is(kind, value):
    if kind == "string":
        return isinstance(value, str)
    if kind == "string list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return 0 <= value < 2**64 if kind == "u64" else -(2**63) <= value < 2**63


def entry_text(fields):
    """The exact body bytes for a dict of entry fields (v decides the key list)."""
    keys = {1: V1_KEYS, 2: V2_KEYS}[fields["v"]]
    # json.dumps with these options writes strings, numbers and null exactly as the format says.
    return "{" + ",".join(json.dumps(k) + ":" + json.dumps(fields[k], ensure_ascii=False, separators=(",", ":"))
                          for k in keys) + "}"


@rejecting
def parse_entry(text):
    """Parses an entry body; rejects anything that is not byte-for-byte canonical."""
    fields = json.loads(text)
    if not isinstance(fields, dict) or fields.get("v") not in (1, 2) or isinstance(fields.get("v"), bool):
        raise ProofRejected("ledger entry: v must be 1 or 2")
    keys = V1_KEYS if fields["v"] == 1 else V2_KEYS
    if list(fields) != keys:
        raise ProofRejected(f"ledger entry v{fields['v']}: keys must be exactly {keys}")
    for key, (kind, nullable) in ENTRY_TYPES.items():
        if key in fields and not (fields[key] is None and nullable or _is(kind, fields[key])):
            raise ProofRejected(f"ledger entry: {key} must be {kind}{' or null' if nullable else ''}")
    for key in HEX_KEYS:
        value = fields[key]
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            raise ProofRejected(f"ledger entry: {key} must be 64 lowercase hex digits")
    if fields["count"] == 0:
        raise ProofRejected("ledger entry: count 0 (a batch is never empty)")
    tenants = fields["tenants"]
    if tenants is not None and tenants != sorted(set(tenants), key=lambda t: t.encode()):
        raise ProofRejected("ledger entry: tenants must be sorted and distinct")
    if entry_text(fields) != text:
        raise ProofRejected("ledger entry is not in canonical form")
    return fields


def entry_hash(text):
    return leaf_hash(text.encode("utf-8"))


@rejecting
def check_chain(texts):
    """Chains entries 0..n-1: index, prev, seq contiguity, no v2 -> v1 downgrade. Returns their hashes."""
    hashes, expected_first, seen_v2 = [], 0, False
    for i, text in enumerate(texts):
        entry = parse_entry(text)
        if entry["index"] != i:
            raise ProofRejected(f"entry {i}: index is {entry['index']}")
        prev = hashes[-1].hex() if hashes else "0" * 64
        if entry["prev"] != prev:
            raise ProofRejected(f"entry {i}: prev does not match the previous entry_hash (chain break)")
        if entry["first_seq"] != expected_first:
            raise ProofRejected(f"entry {i}: first_seq {entry['first_seq']}, expected {expected_first} (gap or overlap)")
        if seen_v2 and entry["v"] == 1:
            raise ProofRejected(f"entry {i}: version 1 after version 2 (downgrade)")
        seen_v2 = seen_v2 or entry["v"] == 2
        expected_first = entry["first_seq"] + entry["count"]
        hashes.append(entry_hash(text))
    return hashes


# --- Checkpoints and keys (C2SP signed-note + tlog-checkpoint, Ed25519) ---------------------------

ED25519 = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash, space


def b64(data):
    return base64.b64encode(data).decode()


def b64decode_strict(text):
    data = base64.b64decode(text, validate=True)
    if b64(data) != text:
        raise ProofRejected("not canonical base64")
    return data


def key_id(name, public_key):
    return sha256(name.encode() + b"\x0a" + ED25519 + public_key)[:4]


def public_key_of_seed(seed):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verifier_key(name, public_key):
    return f"{name}+{key_id(name, public_key).hex()}+{b64(ED25519 + public_key)}"


def checkpoint_body(origin, size, root):
    return f"{origin}\n{size}\n{b64(root)}\n"


def sign_checkpoint(origin, seed, size, root):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    body = checkpoint_body(origin, size, root)
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(body.encode())
    kid = key_id(origin, public_key_of_seed(seed))
    return f"{body}\n{SIG_PREFIX}{origin} {b64(kid + signature)}\n"


@rejecting
def parse_verifier_key(text):
    name, kid_hex, key_b64 = text.split("+", 2)
    if not name or any(c.isspace() for c in name):
        raise ProofRejected("verifier key: bad name")
    raw = b64decode_strict(key_b64)
    if len(raw) != 33 or raw[:1] != ED25519:
        raise ProofRejected("verifier key: not an Ed25519 key")
    if key_id(name, raw[1:]).hex() != kid_hex:
        raise ProofRejected("verifier key: key id does not match the key")
    return name, bytes.fromhex(kid_hex), raw[1:]


@rejecting
def verify_checkpoint(note, vkey):
    """Returns (size, root) of a note carrying a valid signature by the pinned verifier key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    name, kid, public_key = parse_verifier_key(vkey)
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise ProofRejected("checkpoint: malformed note")
    lines = body.split("\n")
    if len(lines) != 3:
        raise ProofRejected("checkpoint: body must be exactly origin, size and root")
    origin, size_text, root_text = lines
    if origin != name:
        raise ProofRejected(f"checkpoint: origin {origin!r} is not the key's name {name!r}")
    if not size_text.isascii() or not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
        raise ProofRejected("checkpoint: size is not a decimal number")
    root = b64decode_strict(root_text)
    if len(root) != 32:
        raise ProofRejected("checkpoint: root is not 32 bytes")
    signed = (body + "\n").encode()
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX) or " " not in line[len(SIG_PREFIX):]:
            raise ProofRejected("checkpoint: malformed signature line")
        sig_name, sig_b64 = line[len(SIG_PREFIX):].split(" ", 1)
        sig = base64.b64decode(sig_b64, validate=True)
        if sig_name != name or len(sig) != 68 or sig[:4] != kid:
            continue  # another key's signature: ignored, neither trusted nor an error
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(sig[4:], signed)
            return int(size_text), root
        except InvalidSignature:
            continue
    raise ProofRejected("checkpoint: no valid signature by the pinned key")


# --- Event proofs (FORMAT.md "Verifying one event proof") -------------------------------------

PROOF_KEYS = {"event", "leaf_hash", "batch", "ledger_entry", "ledger", "checkpoint"}


@rejecting
def verify_event_proof(document_text, vkey):
    """Steps 1-8 of FORMAT.md; returns (event columns, entry fields, checkpoint size)."""
    doc = json.loads(document_text)
    if set(doc) != PROOF_KEYS or set(doc["batch"]) != {"index", "leaf_index", "size", "path"} \
            or set(doc["ledger"]) != {"size", "path"}:
        raise ProofRejected("proof document: missing or unknown keys")
    leaf = leaf_hash(canonical_event(doc["event"]))
    if leaf.hex() != doc["leaf_hash"]:
        raise ProofRejected("leaf_hash does not match the event's columns")
    entry = parse_entry(doc["ledger_entry"])
    batch, ledger = doc["batch"], doc["ledger"]
    if batch["index"] != entry["index"] or batch["size"] != entry["count"]:
        raise ProofRejected("batch index or size differs from the ledger entry")
    if not entry["first_seq"] <= doc["event"]["seq"] < entry["first_seq"] + entry["count"]:
        raise ProofRejected("event seq outside the entry's range")
    path = [bytes.fromhex(x) for x in batch["path"]]
    if root_from_inclusion(leaf, batch["leaf_index"], batch["size"], path).hex() != entry["root"]:
        raise ProofRejected("batch path does not lead to the entry's root")
    size, root = verify_checkpoint(doc["checkpoint"], vkey)
    if ledger["size"] != size:
        raise ProofRejected("ledger size differs from the checkpoint's size")
    verify_inclusion(entry_hash(doc["ledger_entry"]), entry["index"], size, [bytes.fromhex(x) for x in ledger["path"]], root)
    return doc["event"], entry, size
