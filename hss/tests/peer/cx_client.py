#!/usr/bin/env python3
"""An independent Cx client for testing the imslab HSS.

Raw Diameter (RFC 6733) over TCP, written from the specifications with the Python standard
library, plus the PyPI package `cryptography` for AES-128 (used by its own MILENAGE, TS 35.206).
It shares no code with imslab. It sends CER, UAR, MAR, SAR, LIR and DPR, checks every answer,
and verifies the MAR's authentication vector with its own MILENAGE.

Exit status 0 when every check passes; otherwise 1 with the failed check on stderr.
"""

import argparse
import os
import socket
import struct
import sys
import xml.etree.ElementTree as ET

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    sys.exit("cx_client.py needs the PyPI package 'cryptography' (pip install cryptography)")

TGPP = 10415
CX = 16777216

# AVP codes (RFC 6733 §4.5, TS 29.229 §6.3).
SESSION_ID, ORIGIN_HOST, ORIGIN_REALM, DEST_REALM, DEST_HOST = 263, 264, 296, 283, 293
RESULT_CODE, EXP_RESULT, EXP_RESULT_CODE, VENDOR_ID = 268, 297, 298, 266
AUTH_SESSION_STATE, VSAI, AUTH_APP_ID, USER_NAME = 277, 260, 258, 1
HOST_IP, PRODUCT_NAME, SUPPORTED_VENDOR, DISCONNECT_CAUSE = 257, 269, 265, 273
VISITED_NET, PUBLIC_ID, SERVER_NAME, SERVER_CAPS, USER_AUTH_TYPE = 600, 601, 602, 603, 623
AUTH_ITEMS, AUTH_SCHEME, SIP_AUTHENTICATE, SIP_AUTHORIZATION = 607, 608, 609, 610
AUTH_DATA_ITEM, ITEM_NUMBER, CK_AVP, IK_AVP = 612, 613, 625, 626
SAT, USER_DATA, UDAA, MANDATORY_CAP, OPTIONAL_CAP, CHARGING = 614, 606, 624, 604, 605, 618
GROUPED = {EXP_RESULT, VSAI, SERVER_CAPS, AUTH_DATA_ITEM, CHARGING, 635}


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)
    print("ok:", what)


# ---- MILENAGE (TS 35.206 §4.1) ----

def aes(k, block):
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def rot(x, bits):
    n = bits // 8
    return x[n:] + x[:n]


def milenage(k, opc, rand, sqn, amf):
    c = [bytes(15) + bytes([v]) for v in (0, 1, 2, 4, 8)]
    temp = aes(k, xor(rand, opc))
    in1 = sqn + amf + sqn + amf
    out1 = xor(aes(k, xor(temp, xor(rot(xor(in1, opc), 64), c[0]))), opc)
    outs = [xor(aes(k, xor(rot(xor(temp, opc), r), ci)), opc) for r, ci in ((0, c[1]), (32, c[2]), (64, c[3]))]
    out2, out3, out4 = outs
    return {"mac_a": out1[:8], "res": out2[8:], "ak": out2[:6], "ck": out3, "ik": out4}


def milenage_self_test():
    # TS 35.208 test set 1.
    h = bytes.fromhex
    m = milenage(h("465b5ce8b199b49faa5f0a2ee238a6bc"), h("cd63cb71954a9f4e48a5994e37a02baf"),
                 h("23553cbe9637a89d218ae64dae47bf35"), h("ff9bb4d0b607"), h("b9b9"))
    check(m["mac_a"] == h("4a9ffac354dfafb3") and m["res"] == h("a54211d5e3ba50bf")
          and m["ck"] == h("b40ba9a3c58b2a05bbf0d987b21bf8cb")
          and m["ik"] == h("f769bcd751044604127672711c6d3441") and m["ak"] == h("aa689c648370"),
          "own MILENAGE matches TS 35.208 test set 1")


# ---- Diameter codec (RFC 6733 §3, §4) ----

def avp(code, data, vendor=None, mandatory=True):
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, int):
        data = struct.pack("!I", data)
    elif isinstance(data, list):
        data = b"".join(data)
    flags = (0x80 if vendor else 0) | (0x40 if mandatory else 0)
    hdr_len = 12 if vendor else 8
    length = hdr_len + len(data)
    out = struct.pack("!IB", code, flags) + length.to_bytes(3, "big")
    if vendor:
        out += struct.pack("!I", vendor)
    out += data
    return out + bytes((4 - len(data) % 4) % 4)


def message(code, app, avps, request=True, proxiable=True, hbh=1, e2e=1):
    body = b"".join(avps)
    flags = (0x80 if request else 0) | (0x40 if proxiable else 0)
    length = 20 + len(body)
    return (bytes([1]) + length.to_bytes(3, "big") + bytes([flags]) + code.to_bytes(3, "big")
            + struct.pack("!III", app, hbh, e2e) + body)


def parse_avps(buf):
    out, i = [], 0
    while i + 8 <= len(buf):
        code, flags = struct.unpack("!IB", buf[i:i + 5])
        length = int.from_bytes(buf[i + 5:i + 8], "big")
        if length < 8 or i + length > len(buf):
            raise CheckFailed(f"bad AVP length {length} at offset {i}")
        hdr = 12 if flags & 0x80 else 8
        vendor = struct.unpack("!I", buf[i + 8:i + 12])[0] if flags & 0x80 else None
        data = buf[i + hdr:i + length]
        value = parse_avps(data) if code in GROUPED else data
        out.append((code, vendor, value))
        i += length + (4 - length % 4) % 4
    return out


def find(avps, code, vendor=None):
    for c, v, d in avps:
        if c == code and (vendor is None or v == vendor):
            return d
    return None


def u32(b):
    return struct.unpack("!I", b)[0]


class Peer:
    def __init__(self, host, port, origin_host, realm):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.origin_host, self.realm = origin_host, realm
        self.n = 0

    def exchange(self, code, app, avps, proxiable=True):
        self.n += 1
        self.sock.sendall(message(code, app, avps, proxiable=proxiable, hbh=self.n, e2e=0x5000 + self.n))
        head = self.recv(20)
        length = int.from_bytes(head[1:4], "big")
        body = self.recv(length - 20)
        flags, rcode = head[4], int.from_bytes(head[5:8], "big")
        app_id, hbh, e2e = struct.unpack("!III", head[8:20])
        check(flags & 0x80 == 0 and rcode == code and hbh == self.n and e2e == 0x5000 + self.n,
              f"answer to command {code} has the command code and identifiers of the request")
        return parse_avps(body)

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise CheckFailed("connection closed by the HSS")
            buf += chunk
        return buf

    def cx(self, code, session, avps):
        head = [avp(SESSION_ID, session),
                avp(VSAI, [avp(VENDOR_ID, TGPP), avp(AUTH_APP_ID, CX)]),
                avp(AUTH_SESSION_STATE, 1),
                avp(ORIGIN_HOST, self.origin_host), avp(ORIGIN_REALM, self.realm),
                avp(DEST_REALM, self.realm)]
        ans = self.exchange(code, CX, head + avps)
        check(find(ans, SESSION_ID) == session.encode(), f"command {code}: Session-Id echoed")
        return ans


def result_of(ans):
    rc = find(ans, RESULT_CODE)
    if rc is not None:
        return ("base", u32(rc))
    er = find(ans, EXP_RESULT)
    if er is not None:
        return ("exp", u32(find(er, EXP_RESULT_CODE)))
    raise CheckFailed("answer has neither Result-Code nor Experimental-Result")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--origin-host", default="pyclient.ims.example")
    p.add_argument("--realm", required=True)
    p.add_argument("--impi", required=True)
    p.add_argument("--impu", required=True)
    p.add_argument("--k", required=True)
    p.add_argument("--opc", required=True)
    p.add_argument("--scscf", default="sip:pyclient.ims.example:6060")
    a = p.parse_args()
    k, opc = bytes.fromhex(a.k), bytes.fromhex(a.opc)

    milenage_self_test()
    peer = Peer(a.host, a.port, a.origin_host, a.realm)

    cea = peer.exchange(257, 0, [
        avp(ORIGIN_HOST, a.origin_host), avp(ORIGIN_REALM, a.realm),
        avp(HOST_IP, struct.pack("!H", 1) + socket.inet_aton("127.0.0.1")),
        avp(VENDOR_ID, 0), avp(PRODUCT_NAME, "cx_client.py", mandatory=False),
        avp(SUPPORTED_VENDOR, TGPP),
        avp(VSAI, [avp(VENDOR_ID, TGPP), avp(AUTH_APP_ID, CX)]),
    ], proxiable=False)
    check(result_of(cea) == ("base", 2001), "CEA: DIAMETER_SUCCESS")
    vsai = find(cea, VSAI)
    check(vsai is not None and u32(find(vsai, AUTH_APP_ID)) == CX, "CEA: advertises Cx")

    def uar(sid, impi, impu):
        return peer.cx(300, sid, [avp(USER_NAME, impi), avp(PUBLIC_ID, impu, TGPP),
                                  avp(VISITED_NET, a.realm, TGPP)])

    ans = uar("py;uar;1", a.impi, a.impu)
    check(result_of(ans) == ("exp", 2001), "UAA: DIAMETER_FIRST_REGISTRATION")
    check(find(ans, SERVER_CAPS, TGPP) is not None, "UAA: Server-Capabilities for S-CSCF selection")

    ans = uar("py;uar;2", "nobody@" + a.realm, "sip:nobody@" + a.realm)
    check(result_of(ans) == ("exp", 5001), "UAA: DIAMETER_ERROR_USER_UNKNOWN for an unknown user")

    ans = peer.cx(303, "py;mar;1", [
        avp(USER_NAME, a.impi), avp(PUBLIC_ID, a.impu, TGPP),
        avp(AUTH_DATA_ITEM, [avp(AUTH_SCHEME, "Digest-AKAv1-MD5", TGPP)], TGPP),
        avp(AUTH_ITEMS, 1, TGPP), avp(SERVER_NAME, a.scscf, TGPP)])
    check(result_of(ans) == ("base", 2001), "MAA: DIAMETER_SUCCESS")
    check(u32(find(ans, AUTH_ITEMS, TGPP)) == 1, "MAA: SIP-Number-Auth-Items 1")
    item = find(ans, AUTH_DATA_ITEM, TGPP)
    check(find(item, AUTH_SCHEME, TGPP) == b"Digest-AKAv1-MD5", "MAA: scheme Digest-AKAv1-MD5")
    authn = find(item, SIP_AUTHENTICATE, TGPP)
    check(authn is not None and len(authn) == 32, "MAA: SIP-Authenticate is RAND || AUTN")
    rand, autn = authn[:16], authn[16:]
    first = milenage(k, opc, rand, bytes(6), bytes(2))
    sqn = xor(autn[:6], first["ak"])
    amf = autn[6:8]
    m = milenage(k, opc, rand, sqn, amf)
    check(m["mac_a"] == autn[8:], "MAA: MAC-A in AUTN verifies with our MILENAGE (the HSS used our K/OPc)")
    check(find(item, SIP_AUTHORIZATION, TGPP) == m["res"], "MAA: SIP-Authorization is XRES = f2(RAND)")
    check(find(item, CK_AVP, TGPP) == m["ck"], "MAA: Confidentiality-Key is CK = f3(RAND)")
    check(find(item, IK_AVP, TGPP) == m["ik"], "MAA: Integrity-Key is IK = f4(RAND)")
    check(int.from_bytes(sqn, "big") > 0, f"MAA: SQN {int.from_bytes(sqn, 'big')} is fresh")

    ans = peer.cx(301, "py;sar;1", [
        avp(USER_NAME, a.impi), avp(PUBLIC_ID, a.impu, TGPP), avp(SERVER_NAME, a.scscf, TGPP),
        avp(SAT, 1, TGPP), avp(UDAA, 0, TGPP)])
    check(result_of(ans) == ("base", 2001), "SAA: DIAMETER_SUCCESS for REGISTRATION")
    user_data = find(ans, USER_DATA, TGPP)
    check(user_data is not None, "SAA: User-Data present")
    root = ET.fromstring(user_data)
    check(root.tag == "IMSSubscription", "SAA: User-Data is an IMSSubscription document")
    check(root.findtext("PrivateID") == a.impi, "SAA: PrivateID is the IMPI")
    ids = [e.text for e in root.iter("Identity")]
    check(a.impu in ids, f"SAA: the registered identity is in the profile ({ids})")

    ans = peer.cx(302, "py;lir;1", [avp(PUBLIC_ID, a.impu, TGPP)])
    check(result_of(ans) == ("base", 2001), "LIA: DIAMETER_SUCCESS for a registered identity")
    check(find(ans, SERVER_NAME, TGPP) == a.scscf.encode(), "LIA: Server-Name is the S-CSCF that registered")

    ans = uar("py;uar;3", a.impi, a.impu)
    check(result_of(ans) == ("exp", 2002), "UAA: DIAMETER_SUBSEQUENT_REGISTRATION once registered")
    check(find(ans, SERVER_NAME, TGPP) == a.scscf.encode(), "UAA: Server-Name of the assigned S-CSCF")

    ans = peer.cx(301, "py;sar;2", [
        avp(USER_NAME, a.impi), avp(PUBLIC_ID, a.impu, TGPP), avp(SERVER_NAME, a.scscf, TGPP),
        avp(SAT, 5, TGPP), avp(UDAA, 0, TGPP)])
    check(result_of(ans) == ("base", 2001), "SAA: DIAMETER_SUCCESS for USER_DEREGISTRATION")

    ans = peer.cx(302, "py;lir;2", [avp(PUBLIC_ID, a.impu, TGPP)])
    check(result_of(ans) == ("exp", 5003), "LIA: DIAMETER_ERROR_IDENTITY_NOT_REGISTERED after de-registration")

    dpa = peer.exchange(282, 0, [avp(ORIGIN_HOST, a.origin_host), avp(ORIGIN_REALM, a.realm),
                                 avp(DISCONNECT_CAUSE, 0)], proxiable=False)
    check(result_of(dpa) == ("base", 2001), "DPA: DIAMETER_SUCCESS")
    peer.sock.close()
    print("all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print("FAILED: network error:", e, file=sys.stderr)
        sys.exit(1)
