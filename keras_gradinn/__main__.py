"""`python -m keras_gradinn` runs the command line."""

import sys

from keras_gradinn.cli import main

sys.exit(main())
