import os
import sys

# faultkit lives next to the tests; make it importable whatever pytest's import mode is.
sys.path.insert(0, os.path.dirname(__file__))
