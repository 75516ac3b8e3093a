#!/usr/bin/env python3
"""An independent GTPv2-C client (an SGW stand-in) for the imslab P-GW, built on PyPI's pycrate.

It sends Echo Request, Create Session Request for an APN with a PCO asking for P-CSCF
(IPv4 and IPv6), DNS (IPv4 and IPv6), the IPv4 link MTU, IP address allocation via NAS,
P-CSCF re-selection support and an IPCP DNS request, checks the Create Session Response and
its PCO contents as decoded by pycrate, then sends Delete Session Request.

Messages are built and decoded by pycrate_mobile (TS29274_GTPC, TS24008_IE), not by imslab.

    python3 gtpv2_client.py --pgw 127.0.0.1:2123 --apn ims --pcscf4 10.46.0.1 \
        --pcscf6 2001:db8:46::1 --dns4 192.0.2.53 --dns6 2001:db8::53 --mtu 1400

Exits 0 when every check passed; prints a JSON summary on stdout; failures on stderr.
"""

import argparse
import ipaddress
import json
import socket
import sys

try:
    from pycrate_mobile import TS29274_GTPC as G
    from pycrate_mobile import TS24008_IE as N
except ImportError:
    sys.stderr.write("pycrate is not installed: pip install pycrate\n")
    sys.exit(2)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def ies_of(msg):
    """(type, instance) -> IE element, for the top-level IEs of a parsed message."""
    out = {}
    for ie in msg[1]._content:
        out.setdefault((ie['Hdr']['Type'].get_val(), ie['Hdr']['Inst'].get_val()), ie)
    return out


def exchange(sock, pgw, msg, want_type):
    sock.sendto(msg.to_bytes(), pgw)
    data, _ = sock.recvfrom(65535)
    resp, err = G.parse_GTPC(data)
    check(err == 0 and resp is not None, "pycrate could not parse the answer (error %s): %s" % (err, data.hex()))
    check(resp[0]['Type'].get_val() == want_type,
          "expected message type %d, got %d" % (want_type, resp[0]['Type'].get_val()))
    check(resp[0]['SeqNum'].get_val() == msg[0]['SeqNum'].get_val(), "sequence number not echoed")
    return resp, data


def cause_of(ies):
    c = ies.get((2, 0))
    check(c is not None, "no Cause IE")
    return c['Data']['Val'].get_val()


def pco_request():
    """MS-to-network PCO (TS 24.008 10.5.6.3), encoded by pycrate."""
    pco = N.ProtConfig(val={'Ext': 1, 'Prot': 0})
    ipcp_conf_req = bytes.fromhex("01000010810600000000830600000000")
    conts = [(0x8021, ipcp_conf_req), (0x000C, b''), (0x0001, b''), (0x000D, b''), (0x0003, b''),
             (0x0010, b''), (0x000A, b''), (0x0012, b'')]
    pco['Config'].set_val([{'ID': i, 'Cont': c} for i, c in conts])
    return pco.to_bytes()


def decode_pco(buf):
    """Network-to-MS PCO, decoded by pycrate: list of (id, contents)."""
    pco = N.ProtConfig()
    pco.from_bytes(buf)
    check(pco.to_bytes() == buf, "pycrate does not re-encode the PCO identically")
    out = []
    for c in pco['Config']._content:
        cont = c['Cont']
        raw = cont.to_bytes() if hasattr(cont, 'to_bytes') else bytes(cont.get_val())
        out.append((c['ID'].get_val(), raw))
    return out


def fteid(iface, teid, ip):
    return {'V4': 1, 'V6': 0, 'IF': iface, 'TEID_GREKey': teid, 'IPv4Addr': socket.inet_aton(ip)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pgw', required=True)
    ap.add_argument('--apn', default='ims')
    ap.add_argument('--imsi', default='001010000000001')
    ap.add_argument('--pcscf4', action='append', default=[])
    ap.add_argument('--pcscf6', action='append', default=[])
    ap.add_argument('--dns4', action='append', default=[])
    ap.add_argument('--dns6', action='append', default=[])
    ap.add_argument('--mtu', type=int, default=0)
    ap.add_argument('--keep-session', action='store_true',
                    help='stop after Create Session, leaving the session active')
    a = ap.parse_args()
    host, port = a.pgw.rsplit(':', 1)
    pgw = (host, int(port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(5)
    me = sock.getsockname()[0]
    summary = {}

    # 1. Echo.
    echo = G.EchoReq()
    echo[0]['SeqNum'].set_val(1)
    resp, _ = exchange(sock, pgw, echo, 2)
    rec = ies_of(resp).get((3, 0))
    check(rec is not None, "Echo Response without Recovery")
    summary['recovery'] = rec['Data'].get_val()

    # 2. Create Session.
    csr = G.CreateSessionReq()
    csr[0]['T'].set_val(1)
    csr[0]['TEID'].set_val(0)
    csr[0]['SeqNum'].set_val(2)
    ies = csr[1]
    ies.clear()
    ies.add_ie(1, 0, a.imsi)
    ies.add_ie(76, 0, '15551234')
    ies.add_ie(82, 0, {'Val': 6})
    ies.add_ie(87, 0, fteid(6, 0x1111, me))
    ies.add_ie(71, 0, a.apn)
    ies.add_ie(128, 0, {'Val': 0})
    ies.add_ie(99, 0, {'Val': 3})
    ies.add_ie(79, 0, {'PDNType': 3, 'PDNAddress': bytes(22 - 1)})
    ies.add_ie(72, 0, {'APN-AMBR-UL': 100000, 'APN-AMBR-DL': 200000})
    ies.add_ie(78, 0, pco_request())
    ies.add_ie(93, 0)
    bc = ies._content[-1]['Data']
    for child in bc._content:
        t = child['Hdr']['Type'].get_val()
        if t == 73:
            child['Data']['Val'].set_val(5)
        elif t == 80:
            child['Data']['PL'].set_val(9)
            child['Data']['QCI'].set_val(5)
    bc.add_ie(87, 2, fteid(4, 0x2222, me))
    resp, raw = exchange(sock, pgw, csr, 33)
    r = ies_of(resp)
    check(resp[0]['TEID'].get_val() == 0x1111, "answer not sent to our S5/S8-C TEID")
    check(cause_of(r) == 16, "Create Session rejected, cause %d" % cause_of(r))
    ctrl = r.get((87, 1))
    check(ctrl is not None, "no PGW S5/S8-C F-TEID (instance 1)")
    pgw_teid = ctrl['Data']['TEID_GREKey'].get_val()
    check(ctrl['Data']['IF'].get_val() == 7, "PGW F-TEID interface type is not S5/S8 PGW GTP-C (7)")
    paa = r.get((79, 0))
    check(paa is not None, "no PAA")
    check(paa['Data']['PDNType'].get_val() == 3, "PAA is not IPv4v6")
    bcc = r.get((93, 0))
    check(bcc is not None, "no Bearer Context created")
    inner = {}
    for ie in bcc['Data']._content:
        inner.setdefault((ie['Hdr']['Type'].get_val(), ie['Hdr']['Inst'].get_val()), ie)
    check((73, 0) in inner and inner[(73, 0)]['Data']['Val'].get_val() == 5, "bearer EBI is not 5")
    check((2, 0) in inner and inner[(2, 0)]['Data']['Val'].get_val() == 16, "bearer cause is not accepted")
    check((87, 2) in inner and inner[(87, 2)]['Data']['IF'].get_val() == 5, "no S5/S8-U PGW F-TEID (instance 2)")
    check((94, 0) in inner, "no Charging ID")
    pco_ie = r.get((78, 0))
    check(pco_ie is not None, "no PCO in the Create Session Response")
    conts = decode_pco(pco_ie['Data'].to_bytes())
    got = lambda cid: [c for i, c in conts if i == cid]
    want4 = [ipaddress.IPv4Address(x).packed for x in a.pcscf4]
    want6 = [ipaddress.IPv6Address(x).packed for x in a.pcscf6]
    check(got(0x000C) == want4, "P-CSCF IPv4 containers %r, expected %r" % (got(0x000C), want4))
    check(got(0x0001) == want6, "P-CSCF IPv6 containers %r, expected %r" % (got(0x0001), want6))
    check(got(0x000D) == [ipaddress.IPv4Address(x).packed for x in a.dns4], "DNS IPv4 containers")
    check(got(0x0003) == [ipaddress.IPv6Address(x).packed for x in a.dns6], "DNS IPv6 containers")
    if a.mtu:
        check(got(0x0010) == [a.mtu.to_bytes(2, 'big')], "IPv4 link MTU container")
    ipcp = got(0x8021)
    if a.dns4:
        check(len(ipcp) == 1 and ipcp[0][0] in (2, 3), "IPCP Configure-Ack/Nak missing")
    else:
        # No DNS configured: the DNS options come back in a Configure-Reject (RFC 1661 5.4).
        check(len(ipcp) == 1 and ipcp[0][0] == 4, "IPCP Configure-Reject missing")
    summary['pcscf4'] = [str(ipaddress.IPv4Address(c)) for c in got(0x000C)]
    summary['pcscf6'] = [str(ipaddress.IPv6Address(c)) for c in got(0x0001)]
    summary['containers'] = ['0x%04X' % i for i, _ in conts]
    summary['pgw_teid'] = pgw_teid
    if a.keep_session:
        summary['ok'] = True
        print(json.dumps(summary))
        return

    # 3. Delete Session.
    dsr = G.DeleteSessionReq()
    dsr[0]['T'].set_val(1)
    dsr[0]['TEID'].set_val(pgw_teid)
    dsr[0]['SeqNum'].set_val(3)
    dsr[1].clear()
    dsr[1].add_ie(73, 0, {'Val': 5})
    resp, _ = exchange(sock, pgw, dsr, 37)
    check(cause_of(ies_of(resp)) == 16, "Delete Session rejected")

    # 4. Delete again: the session is gone (Context not found, 64).
    dsr[0]['SeqNum'].set_val(4)
    resp, _ = exchange(sock, pgw, dsr, 37)
    check(cause_of(ies_of(resp)) == 64, "second Delete Session not answered with Context not found")
    summary['ok'] = True
    print(json.dumps(summary))


if __name__ == '__main__':
    try:
        main()
    except Failed as e:
        sys.stderr.write("CHECK FAILED: %s\n" % e)
        sys.exit(1)
    except socket.timeout:
        sys.stderr.write("CHECK FAILED: no answer from the P-GW within 5 s\n")
        sys.exit(1)
