import sys

from pyphys.cli import main

sys.exit(main())
