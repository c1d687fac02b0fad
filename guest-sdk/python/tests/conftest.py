# The SDK under test is the folder above, wherever pytest runs from.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
