"""EventBridge's part in the offline chain: deliver each domain event to the functions the
template's rules route it to, as EventBridge would, until nothing new is emitted.

Events are read from the observer queue (a catch-all rule on the emulated `rds-failover` bus);
the routing is `infra.targets`, i.e. the patterns in infra/template.yaml, matched by moto's own
EventBridge matcher. moto's delivered events lack the `account` key (AWS-EMULATION.md); it is
filled in with the emulated account, as EventBridge would have it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import InvokeError, LambdaEmulator
from infra import targets
from world import ACCOUNT, World


@dataclass
class Delivery:
    event: dict
    function: str
    response: dict | None = None
    error: InvokeError | None = None


@dataclass
class Chain:
    world: World
    emulator: LambdaEmulator
    deliveries: list[Delivery] = field(default_factory=list)
    seen: list[dict] = field(default_factory=list)

    def pump(self, max_rounds: int = 20, settle: bool = True) -> list[Delivery]:
        """Delivers everything on the bus, and what that emits, until the bus is quiet (or, with
        `settle=False`, for at most `max_rounds` rounds)."""
        done: list[Delivery] = []
        for _ in range(max_rounds):
            events = self.world.drain_events()
            if not events:
                return done
            for ev in events:
                ev.setdefault("account", ACCOUNT)
                self.seen.append(ev)
                for fn in sorted(targets(ev, "domain")):
                    done.append(self.deliver(fn, ev))
        if not settle:
            return done
        raise AssertionError(
            f"the chain did not settle in {max_rounds} rounds: {self.types_seen()}; "
            f"last answers: {[(d.function, d.response or str(d.error)) for d in self.deliveries[-2:]]}"
        )

    def deliver_routed(self, event: dict) -> list[Delivery]:
        """Delivers one event (already taken off the bus) to every function routed to it."""
        event.setdefault("account", ACCOUNT)
        self.seen.append(event)
        return [self.deliver(fn, event) for fn in sorted(targets(event, "domain"))]

    def deliver(self, function: str, event: dict) -> Delivery:
        d = Delivery(event, function)
        try:
            d.response = self.emulator.invoke(function, event)
        except InvokeError as e:
            d.error = e
        self.deliveries.append(d)
        return d

    def types_seen(self) -> list[str]:
        return [e["detail-type"] for e in self.seen]
