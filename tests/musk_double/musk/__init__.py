"""INTERFACE DOUBLE of lilab-stanford/MUSK's ``musk`` package for cytoreg's tests (see ../README.md).

Not MUSK, and no code of it: the module names, function names and signatures that cytoreg's
``musk`` adapter calls, a tiny torchscale-free model, and a record of every call (``CALLS``) so
that tests can assert what the adapter passed."""

#: (function, keyword arguments) of every call into the double, in order
CALLS: list = []
