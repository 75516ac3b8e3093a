"""Independent digest oracle for imslab-aka's tests: Python's hashlib/hmac/base64 only.

Reads a JSON list of cases on stdin, prints a JSON list of {ha1, response, rspauth} hex strings.
RFC 2617 §3.2.2 for the digest, RFC 3310 §3.1 (password = RES bytes) for AKAv1-MD5,
RFC 4169 §3 (password = base64(HMAC-MD5(RES || IK || CK, "http-digest-akav2-password")))
for AKAv2-MD5.
"""
import base64
import hashlib
import hmac
import json
import sys


def md5hex(b):
    return hashlib.md5(b).hexdigest()


def password(c):
    res = bytes.fromhex(c["res"]) if "res" in c else b""
    if c["algorithm"] == "AKAv1-MD5":
        return res
    if c["algorithm"] == "AKAv2-MD5":
        key = res + bytes.fromhex(c["ik"]) + bytes.fromhex(c["ck"])
        tag = hmac.new(key, b"http-digest-akav2-password", hashlib.md5).digest()
        return base64.b64encode(tag)
    return c["password"].encode()


def digest(c, ha1, method):
    a2 = method.encode() + b":" + c["uri"].encode()
    if c.get("qop") == "auth-int":
        a2 += b":" + md5hex(bytes.fromhex(c["body"])).encode()
    ha2 = md5hex(a2)
    if c.get("qop"):
        parts = [ha1, c["nonce"], c["nc"], c["cnonce"], c["qop"], ha2]
    else:
        parts = [ha1, c["nonce"], ha2]
    return md5hex(":".join(parts).encode())


out = []
for c in json.load(sys.stdin):
    ha1 = md5hex(c["username"].encode() + b":" + c["realm"].encode() + b":" + password(c))
    out.append({"ha1": ha1, "response": digest(c, ha1, c["method"]), "rspauth": digest(c, ha1, "")})
json.dump(out, sys.stdout)
