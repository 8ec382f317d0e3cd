"""A tiny msgpack encoder for test records (Debian's python3-msgpack is not needed)."""

import struct


def _str(s):
    b = s.encode()
    return bytes([0xd9, len(b)]) + b


def _value(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    return _str(v)


def encode_map(d):
    out = bytes([0x80 | len(d)])
    for k, v in d.items():
        out += _str(k) + _value(v)
    return out


def transaction(i, fraud):
    tx = {"id": f"mp-{i}", "card_id": f"card-{i:06d}", "ts": 1700000000000, "amount": 40.0,
          "currency": "EUR", "merchant_id": "m-1", "mcc": 5411, "country": "DE", "channel": "pos",
          "card_present": True, "distance_km": 3.0, "secs_since_last": 40000.0, "tx_last_hour": 0,
          "amount_avg_30d": 45.0}
    if fraud:
        tx.update(amount=700.0, mcc=5732, channel="online", card_present=False, distance_km=2000.0,
                  secs_since_last=120.0, tx_last_hour=3)
    return encode_map(tx)
