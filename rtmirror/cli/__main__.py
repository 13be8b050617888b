import sys

from rtmirror.cli import main

sys.exit(main())
