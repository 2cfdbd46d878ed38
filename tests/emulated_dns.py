"""An authoritative DNS server answering from the emulated Route 53 zones (issue 14, scenario 5).

Started inside tests/faithful_moto.py's process (`--dns-port`), on 127.0.0.1 over UDP and TCP
(dnslib), so it reads moto's own Route 53, CloudWatch backends under the emulator's lock — the
answers are the emulated account's, not a copy. It answers as a Route 53 name server does:

- authoritatively (AA) for the names of the zone whose name is the longest suffix of the query;
  REFUSED for a name no zone holds;
- a CNAME query, or any query of a name holding a CNAME, is answered with the CNAME alone when
  its target is outside the zone (an authoritative server does not chase it);
- a failover pair answers with the PRIMARY while its health check is healthy, else with the
  SECONDARY when that is healthy, else with the PRIMARY: "If the primary record is unhealthy and
  the secondary is healthy, Route 53 responds with the secondary"; "if all records are unhealthy,
  Route 53 responds with the primary" (Route 53 Developer Guide, "Active-passive failover" and
  "How Amazon Route 53 chooses records when health checking is configured");
- a record without a health check is healthy; a disabled health check is healthy ("Route 53
  considers the status of a disabled health check to be healthy", Route 53 API reference,
  UpdateHealthCheck `Disabled`); `Inverted` flips the status;
- a CLOUDWATCH_METRIC health check is the state of its alarm in its region: OK healthy, ALARM
  unhealthy, INSUFFICIENT_DATA as its InsufficientDataHealthStatus says (Healthy, Unhealthy, or
  LastKnownStatus: the last status this server saw, healthy if none) — Route 53 API reference,
  HealthCheckConfig;
- a TCP/HTTP/HTTPS health check is healthy when a TCP connection to IPAddress:Port opens within
  a second (the emulator checks the connection only, not the HTTP status).

Emulator-only deviation (documented in faithful_moto.py): the zones' delegation sets list this
server as `127.0.0.1:PORT`, so the pinner's GetHostedZone finds it.
"""

from __future__ import annotations

import socket
import threading

from dnslib import CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

ACCOUNT = "123456789012"

_LAST_KNOWN: dict[str, bool] = {}


def _name(n: str) -> str:
    return n.rstrip(".").lower()


def _backends():
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.route53.models import route53_backends

    return route53_backends[ACCOUNT]["aws"], cloudwatch_backends[ACCOUNT]


def _alarm_healthy(hc, cloudwatch) -> bool:
    alarm = getattr(hc, "fm_alarm", None) or {}
    region, name = alarm.get("Region"), alarm.get("Name")
    try:
        state = cloudwatch[region].alarms[name].state_value
    except KeyError:
        state = "INSUFFICIENT_DATA"
    if state == "OK":
        return True
    if state == "ALARM":
        return False
    missing = getattr(hc, "fm_insufficient", None) or "LastKnownStatus"
    if missing == "Healthy":
        return True
    if missing == "Unhealthy":
        return False
    return _LAST_KNOWN.get(hc.id, True)


def _tcp_healthy(hc) -> bool:
    try:
        with socket.create_connection((hc.ip_address, int(hc.port)), timeout=1):
            return True
    except OSError:
        return False


def healthy(hc_id: str | None, route53, cloudwatch) -> bool:
    if not hc_id:
        return True
    hc = route53.health_checks.get(hc_id)
    if hc is None or hc.disabled:
        return True
    if hc.type_ == "CLOUDWATCH_METRIC":
        status = _alarm_healthy(hc, cloudwatch)
        _LAST_KNOWN[hc.id] = status
    elif hc.ip_address:
        status = _tcp_healthy(hc)
    else:
        status = True
    return (not status) if hc.inverted else status


def choose(sets: list, route53, cloudwatch):
    """The record set of `sets` (one name and type) Route 53 answers with."""
    by_role = {getattr(s, "failover", None): s for s in sets}
    primary, secondary = by_role.get("PRIMARY"), by_role.get("SECONDARY")
    if primary is None and secondary is None:
        return sets[0] if sets else None
    if primary is not None and healthy(primary.health_check_id, route53, cloudwatch):
        return primary
    if secondary is not None and (primary is None or healthy(secondary.health_check_id, route53, cloudwatch)):
        return secondary
    return primary


class ZoneResolver(BaseResolver):
    def __init__(self, lock: threading.RLock):
        self.lock = lock

    def resolve(self, request: DNSRecord, handler):
        reply = request.reply()
        reply.header.aa = 1
        qname = _name(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            route53, cloudwatch = _backends()
            zones = [z for z in route53.zones.values()
                     if not z.private_zone and (qname == _name(z.name) or qname.endswith("." + _name(z.name)))]
            if not zones:
                reply.header.aa = 0
                reply.header.rcode = RCODE.REFUSED
                return reply
            longest = max(len(_name(z.name)) for z in zones)
            zone = next(z for z in zones if len(_name(z.name)) == longest)
            at_name = [r for r in zone.rrsets if _name(r.name) == qname]
            cnames = [r for r in at_name if r.type == "CNAME"]
            wanted = cnames or [r for r in at_name if r.type == qtype]
            chosen = choose(wanted, route53, cloudwatch)
            if chosen is None:
                if not at_name:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            ttl = int(chosen.ttl or 0)
            for value in chosen.records:
                v = value.get("Value") if isinstance(value, dict) else value
                if chosen.type == "CNAME":
                    reply.add_answer(RR(str(request.q.qname), QTYPE.CNAME, ttl=ttl, rdata=CNAME(v)))
                elif chosen.type == "A":
                    reply.add_answer(RR(str(request.q.qname), QTYPE.A, ttl=ttl, rdata=A(v)))
        return reply


def start(port: int, lock: threading.RLock) -> list[DNSServer]:
    """Serves on 127.0.0.1:`port`, UDP and TCP, in daemon threads."""
    resolver = ZoneResolver(lock)
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data", prefix=False)
    servers = [DNSServer(resolver, port=port, address="127.0.0.1", tcp=tcp, logger=quiet) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    return servers
