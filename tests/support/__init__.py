"""What the tests share: constants, clients, worlds, the permission-matrix harness, and the
fixtures (`tests.support.fixtures`, a pytest plugin the root `conftest.py` loads).

Test modules import from here, never from one another.
"""
