#!/usr/bin/env python3
"""An outside verifier for clawback's proof bundles, written from the specs
alone (RFC 9162 section 2.1, C2SP signed-note and tlog-checkpoint, and the
record format in docs/OPERATIONS.md), sharing no code with clawback: what a
third party holding only the log's public key would run.

usage: verify.py --key VERIFIER_KEY BUNDLE.json
exit 0 and "OK ..." when the bundle proves what it says, 1 otherwise.
"""

import argparse
import base64
import hashlib
import json
import struct
import sys

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Refused(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def parse_verifier_key(vkey):
    """Go's note verifier key: name+hex key ID+base64(0x01 || public key)."""
    name, key_id, data = vkey.strip().split("+", 2)
    raw = base64.b64decode(data, validate=True)
    if raw[0] != 0x01 or len(raw) != 33:
        raise Refused("not an Ed25519 verifier key")
    public = raw[1:]
    computed = sha256(name.encode() + b"\n\x01" + public)[:4]
    if computed.hex() != key_id:
        raise Refused("the key ID does not match the key")
    return name, computed, Ed25519PublicKey.from_public_bytes(public)


def open_checkpoint(note, key):
    name, key_id, public = key
    split = note.rindex("\n\n")
    text, signatures = note[: split + 1], note[split + 2 :]
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Refused("malformed signature line")
        signer, blob = line[2:].split(" ", 1)
        blob = base64.b64decode(blob, validate=True)
        if signer == name and blob[:4] == key_id:
            try:
                public.verify(blob[4:], text.encode())
            except Exception:
                raise Refused("the checkpoint signature does not verify")
            verified = True
    if not verified:
        raise Refused("the checkpoint is not signed by this key")
    lines = text[:-1].split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    if origin != name or len(root) != 32:
        raise Refused("the checkpoint is for another log")
    return size, root


def root_from_inclusion(index, size, leaf, path):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise Refused("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Refused("proof too long")
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
        raise Refused("proof too short")
    return r


def check_consistency(size1, size2, path, root1, root2):
    """RFC 9162 section 2.1.4.2, with the equal and empty cases first."""
    if size2 < size1:
        raise Refused("the tree shrank")
    if size1 == size2:
        if path or root1 != root2:
            raise Refused("equal sizes need equal roots and no proof")
        return
    if size1 == 0:
        if path:
            raise Refused("the empty tree needs no proof")
        return
    if not path:
        raise Refused("empty proof")
    if size1 & (size1 - 1) == 0:
        path = [root1] + path
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Refused("proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise Refused("the consistency proof does not hold")


def hashes(texts):
    return [base64.b64decode(text, validate=True) for text in texts]


def verify(bundle, key):
    if bundle["format"] == "clawback.inclusion-proof/v1":
        size, root = open_checkpoint(bundle["checkpoint"], key)
        seq = bundle["seq"]
        record = base64.b64decode(bundle["record"], validate=True)
        # The record: format byte, prev_hash, hash, body; the chain rule is
        # hash = blake3(prev_hash || seq as u64 little-endian || body).
        prev, stored, body = record[1:33], record[33:65], record[65:]
        chain = blake3.blake3(prev + struct.pack("<Q", seq) + body).digest()
        if chain != stored:
            raise Refused("the record's bytes do not hash to its chain hash")
        leaf = leaf_hash(chain)
        if root_from_inclusion(seq, size, leaf, hashes(bundle["inclusion_path"])) != root:
            raise Refused("the inclusion proof does not lead to the signed root")
        if bundle["event"]["hash"] != chain.hex() or bundle["event"]["seq"] != seq:
            raise Refused("the readable event is not this record")
        return "record %d (%s) is in the log at tree size %d" % (seq, bundle["event"]["kind"], size)
    if bundle["format"] == "clawback.consistency-proof/v1":
        size1, root1 = open_checkpoint(bundle["old_checkpoint"], key)
        size2, root2 = open_checkpoint(bundle["new_checkpoint"], key)
        check_consistency(size1, size2, hashes(bundle["consistency_path"]), root1, root2)
        return "the tree of size %d is a prefix of the tree of size %d" % (size1, size2)
    raise Refused("unknown bundle format")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("bundle")
    args = parser.parse_args()
    try:
        with open(args.bundle) as file:
            bundle = json.load(file)
        print("OK: " + verify(bundle, parse_verifier_key(args.key)))
        return 0
    except (Refused, ValueError, KeyError, IndexError) as error:
        print("FAILED: %s" % error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
