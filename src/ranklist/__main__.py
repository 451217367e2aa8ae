import sys

from ranklist.cli import main

sys.exit(main())
