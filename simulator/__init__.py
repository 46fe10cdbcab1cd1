"""The reference device client of the device protocol v1 (docs/device-protocol.md) and a load
generator: `devicecloud simulate`.

A client outside the server's import chain: it imports nothing of `api/`, `auth/` or `fleet/`
(only `core/`, for the form of a device ID), and speaks to the cloud over the wire only.

- `protocol`: close codes, limits and frame encoding as the client knows them (checked against
  the protocol document by a test, like the gateway's);
- `client`: one device's connection (auth, hello, pings, publishes with retransmission,
  answers to the cloud's calls and reads), and what the devices of a run share;
- `activities`: what a simulated thermostat does on its own and how it answers;
- `runner`: many devices at once, from a CSV file of credentials, with a fleet-wide rate;
- `report`: the counts, and their display while a run goes on;
- `cli`: the options of `devicecloud simulate`.
"""
