"""restyle: flicker-free video restyling as plain functions on numpy arrays.

Conventions used across the package:

* images are ``uint8`` arrays of shape ``(H, W, 3)`` in **RGB** order;
* optical flow is ``float32`` of shape ``(H, W, 2)`` holding ``(dx, dy)`` in pixels:
  ``flow[y, x]`` is where pixel ``(x, y)`` of the first frame moves to in the second;
* frames are numbered from 0 and files are named ``%05d``.
"""

__version__ = "0.1.0"
