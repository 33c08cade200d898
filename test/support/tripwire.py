"""Proof that a server never unpickles attacker data: unpickling a Tripwire records that it ran."""

TRIPWIRE_RAN: list[str] = []


def _tripwire(tag):
    TRIPWIRE_RAN.append(tag)
    return tag


class Tripwire:
    def __reduce__(self):
        return (_tripwire, ("server unpickled attacker data",))
