"""Python that Rasa itself loads: PainPath's input channels and NLU component.

Importing the package applies a measured performance fix (perf.py).
"""
from bot.painpath_rasa.perf import install as _install_perf_fix

_install_perf_fix()
