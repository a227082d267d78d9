"""Fort & Jastrzebski 2019's wedge model of the loss landscape, and the measurements behind
its predictions (`experiments.run_all`), cheap enough to run in seconds."""
from modeconn.toy.landscape import WedgeLandscape, WedgeSpec

__all__ = ["WedgeLandscape", "WedgeSpec"]
