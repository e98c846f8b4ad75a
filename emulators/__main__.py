"""``python -m emulators canvas --port 8900 ...``"""

import sys

from emulators.cli import main

sys.exit(main(sys.argv[1:]))
